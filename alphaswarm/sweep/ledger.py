"""Sweep records in the ledger: the ``sweeps`` row and its finished ``sweep_trials``.

The client writes finished trials in batches, one transaction per batch, with an
upsert on ``(sweep_id, trial_key)``: a crash leaves whole batches or nothing, and a
resumed sweep never duplicates a trial. Running a sweep again by name reads the keys
already finished and skips them.

A running sweep records its owner (``host:pid``) and a heartbeat in its ``config``
(``owner``, ``heartbeat_at``, ``heartbeat_seconds``). :meth:`SweepStore.recover`
marks ``interrupted`` the ``running`` sweeps whose process is gone -- the rule of
paper runs (:mod:`alphaswarm.paper.recovery`): on this host, the owner's pid is dead; on
another host, the heartbeat is older than three beats; on PostgreSQL, the owner's
advisory lock is free. Sweeps run it when they start, and so does
``alphaswarm sweep status``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from alphaswarm.ledger.schema import sweep_trials, sweeps, utcnow

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

__all__ = ["OOS_PREFIX", "SweepStore", "TrialWriter"]

#: Trial keys of walk-forward out-of-sample runs start with this (not counted in N).
OOS_PREFIX = "oos-"
#: Statuses of a trial that is finished and is not run again on resume.
FINISHED = ("done", "invalid")
#: Seconds between two heartbeats of a running sweep.
HEARTBEAT_SECONDS = 10.0

log = logging.getLogger(__name__)


class Heartbeat:
    """A daemon thread that stamps ``config.heartbeat_at`` of a running sweep.

    Parameters
    ----------
    store : SweepStore
        The store.
    sweep_id : str
        The sweep.
    every : float
        Seconds between beats.
    """

    def __init__(self, store: SweepStore, sweep_id: str, every: float) -> None:
        self.store, self.sweep_id, self.every = store, sweep_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"sweep-heartbeat-{sweep_id}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.store.beat(self.sweep_id)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried
                log.warning("sweep %s: heartbeat not written: %s", self.sweep_id, exc)

    def stop(self) -> None:
        """Stop beating (the sweep ended)."""
        self._stop.set()
        self._thread.join(timeout=5)


class SweepStore:
    """Read and write one ledger's sweeps.

    Parameters
    ----------
    ledger : Ledger
        The ledger.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # -- sweeps ------------------------------------------------------------------------
    def _owned(self, config: dict[str, Any]) -> dict[str, Any]:
        from alphaswarm.ledger.store import process_owner

        self.ledger.hold_owner_lock()  # PostgreSQL: the lock tells survivors we are alive
        return {
            **config,
            "owner": self.ledger.owner or process_owner(),
            "heartbeat_at": utcnow().isoformat(),
            "heartbeat_seconds": HEARTBEAT_SECONDS,
        }

    def open(self, name: str, bot_id: str | None, config: dict[str, Any]) -> str:
        """Create the sweep ``name`` or reopen it (status back to ``running``); its id.

        The row records this process as its owner, with a first heartbeat.
        """
        config = self._owned(config)
        with self.ledger._write() as conn:
            row = conn.execute(select(sweeps.c.id).where(sweeps.c.name == name)).first()
            if row is not None:
                conn.execute(
                    update(sweeps)
                    .where(sweeps.c.id == row.id)
                    .values(status="running", config=config, bot_id=bot_id)
                )
                return row.id
            sweep_id = f"sw-{uuid.uuid4().hex[:12]}"
            conn.execute(
                insert(sweeps).values(
                    id=sweep_id,
                    name=name,
                    bot_id=bot_id,
                    config=config,
                    status="running",
                    created_at=utcnow(),
                )
            )
            return sweep_id

    def set_status(self, sweep_id: str, status: str) -> None:
        """Set a sweep's status (``running``, ``done``, ``cancelled``, ``failed``)."""
        with self.ledger._write() as conn:
            conn.execute(update(sweeps).where(sweeps.c.id == sweep_id).values(status=status))

    def beat(self, sweep_id: str) -> None:
        """Stamp the sweep's heartbeat (``config.heartbeat_at``) with the time now."""
        with self.ledger._write() as conn:
            config = conn.execute(select(sweeps.c.config).where(sweeps.c.id == sweep_id)).scalar()
            config = {**(config or {}), "heartbeat_at": utcnow().isoformat()}
            conn.execute(update(sweeps).where(sweeps.c.id == sweep_id).values(config=config))

    def heartbeat(self, sweep_id: str, every: float = HEARTBEAT_SECONDS) -> Heartbeat:
        """Start beating for a running sweep; call ``.stop()`` on the result when it ends."""
        return Heartbeat(self, sweep_id, every)

    def recover(self) -> list[str]:
        """Mark ``interrupted`` the running sweeps whose owner process is gone; their names.

        Same rule as paper runs (:func:`alphaswarm.paper.recovery.recover_orphans`): an
        owner on this host whose pid is dead is gone at once; on PostgreSQL an owner
        whose advisory lock is free (and that is not a live pid here) is gone; an
        owner on another host is gone when its heartbeat is older than three beats.
        Sweeps this process runs are never touched.
        """
        from alphaswarm.ledger.store import process_owner
        from alphaswarm.paper.recovery import owner_gone

        me = self.ledger.owner or process_owner()
        with self.ledger._read() as conn:
            rows = conn.execute(
                select(sweeps.c.id, sweeps.c.name, sweeps.c.config, sweeps.c.created_at).where(
                    sweeps.c.status == "running"
                )
            ).all()
        now = datetime.now(UTC)
        dead: list[tuple[str, str]] = []
        for row in rows:
            cfg = row.config or {}
            owner = cfg.get("owner")
            if owner == me:
                continue
            gone = owner_gone(owner)
            if self.ledger.dialect == "postgresql" and owner and gone is not False:
                if not self.ledger.owner_alive(owner):
                    dead.append((row.id, row.name))
                continue
            if gone is True:
                dead.append((row.id, row.name))
            elif gone is None:
                last = _parse_time(cfg.get("heartbeat_at")) or row.created_at
                beat = float(cfg.get("heartbeat_seconds") or HEARTBEAT_SECONDS)
                if last is not None and (now - _aware(last)).total_seconds() > 3 * beat:
                    dead.append((row.id, row.name))
        if not dead:
            return []
        with self.ledger._write() as conn:
            for sweep_id, _ in dead:
                conn.execute(
                    update(sweeps)
                    .where(and_(sweeps.c.id == sweep_id, sweeps.c.status == "running"))
                    .values(status="interrupted")
                )
        for _, name in dead:
            log.warning(
                "sweep %s was left running by a process that is gone: marked interrupted "
                "(`alphaswarm sweep resume %s` continues it)",
                name,
                name,
            )
        return [name for _, name in dead]

    def get(self, name: str) -> dict[str, Any] | None:
        """The sweep row named ``name`` (or with that id), with trial counts."""
        with self.ledger._read() as conn:
            row = conn.execute(
                select(sweeps).where((sweeps.c.name == name) | (sweeps.c.id == name))
            ).first()
            if row is None:
                return None
            out = dict(row._mapping)
            counts = conn.execute(
                select(sweep_trials.c.status, func.count())
                .where(sweep_trials.c.sweep_id == out["id"])
                .group_by(sweep_trials.c.status)
            ).all()
        out["counts"] = {status: int(n) for status, n in counts}
        return out

    def list(self) -> list[dict[str, Any]]:
        """Every sweep, newest first, with its number of finished trials."""
        with self.ledger._read() as conn:
            n = (
                select(sweep_trials.c.sweep_id, func.count().label("trials"))
                .group_by(sweep_trials.c.sweep_id)
                .subquery()
            )
            rows = conn.execute(
                select(
                    sweeps.c.id,
                    sweeps.c.name,
                    sweeps.c.bot_id,
                    sweeps.c.status,
                    sweeps.c.created_at,
                    func.coalesce(n.c.trials, 0).label("trials"),
                )
                .select_from(sweeps.outerjoin(n, n.c.sweep_id == sweeps.c.id))
                .order_by(sweeps.c.created_at.desc())
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- trials ------------------------------------------------------------------------
    def finished(self, sweep_id: str) -> dict[str, dict[str, Any]]:
        """Finished trials of a sweep by key: ``{key: {params, metrics, status, error}}``."""
        with self.ledger._read() as conn:
            rows = conn.execute(
                select(
                    sweep_trials.c.trial_key,
                    sweep_trials.c.params,
                    sweep_trials.c.metrics,
                    sweep_trials.c.status,
                    sweep_trials.c.error,
                ).where(
                    and_(
                        sweep_trials.c.sweep_id == sweep_id,
                        sweep_trials.c.status.in_(FINISHED),
                    )
                )
            ).all()
        return {
            r.trial_key: {
                "params": r.params,
                "metrics": r.metrics,
                "status": r.status,
                "error": r.error,
            }
            for r in rows
        }

    def trials(self, sweep_id: str) -> pd.DataFrame:
        """All trial rows of a sweep (``params`` and ``metrics`` as dicts)."""
        with self.ledger._read() as conn:
            rows = conn.execute(
                select(sweep_trials).where(sweep_trials.c.sweep_id == sweep_id)
            ).all()
        return pd.DataFrame(
            [dict(r._mapping) for r in rows],
            columns=[c.name for c in sweep_trials.columns],
        )

    def family_trials(self, bot_id: str | None) -> int:
        """Distinct finished in-sample trial keys of every sweep of ``bot_id`` (the honest ``N``).

        A trial run by several sweeps (same key: same bot version, parameters, data
        and slice) counts once.
        """
        if bot_id is None:
            return 0
        with self.ledger._read() as conn:
            n = conn.execute(
                select(func.count(sweep_trials.c.trial_key.distinct()))
                .select_from(sweep_trials.join(sweeps, sweeps.c.id == sweep_trials.c.sweep_id))
                .where(
                    and_(
                        sweeps.c.bot_id == bot_id,
                        sweep_trials.c.status == "done",
                        ~sweep_trials.c.trial_key.startswith(OOS_PREFIX),
                    )
                )
            ).scalar_one()
        return int(n)

    def write(self, sweep_id: str, rows: list[dict[str, Any]]) -> None:
        """Upsert finished trial rows in one transaction.

        Parameters
        ----------
        sweep_id : str
            The sweep.
        rows : list of dict
            ``trial_key``, ``params``, ``metrics``, ``status``, ``error``.
        """
        if not rows:
            return
        now = utcnow()
        values = [
            {
                "sweep_id": sweep_id,
                "trial_key": r["trial_key"],
                "params": r["params"],
                "metrics": r.get("metrics"),
                "status": r["status"],
                "error": r.get("error"),
                "created_at": now,
            }
            for r in rows
        ]
        with self.ledger._write() as conn:
            name = conn.dialect.name
            if name in ("sqlite", "postgresql"):
                dialect_insert = sqlite.insert if name == "sqlite" else postgresql.insert
                stmt = dialect_insert(sweep_trials)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["sweep_id", "trial_key"],
                    set_={c: stmt.excluded[c] for c in ("params", "metrics", "status", "error")},
                )
                conn.execute(stmt, values)
                return
            for v in values:  # other dialects: update, else insert
                where = and_(
                    sweep_trials.c.sweep_id == sweep_id, sweep_trials.c.trial_key == v["trial_key"]
                )
                changed = {k: v[k] for k in ("params", "metrics", "status", "error")}
                if not conn.execute(update(sweep_trials).where(where).values(changed)).rowcount:
                    conn.execute(insert(sweep_trials), v)


class TrialWriter:
    """Buffer finished trials and write them in batches (by count or age).

    Parameters
    ----------
    store : SweepStore or None
        Where to write (``None``: nowhere).
    sweep_id : str
        The sweep.
    batch : int
        Rows per transaction at most.
    every : float
        Seconds after which a partial batch is written.
    """

    def __init__(
        self, store: SweepStore | None, sweep_id: str, batch: int = 500, every: float = 1.0
    ) -> None:
        self.store, self.sweep_id, self.batch, self.every = store, sweep_id, batch, every
        self._rows: list[dict[str, Any]] = []
        self._last = time.monotonic()
        self.written = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows; write when the batch is full or old enough."""
        self._rows.extend(rows)
        if len(self._rows) >= self.batch or time.monotonic() - self._last >= self.every:
            self.flush()

    def flush(self) -> None:
        """Write everything queued."""
        self._last = time.monotonic()
        rows, self._rows = self._rows, []
        if self.store is None or not rows:
            return
        for i in range(0, len(rows), self.batch):
            self.store.write(self.sweep_id, rows[i : i + self.batch])
        self.written += len(rows)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
