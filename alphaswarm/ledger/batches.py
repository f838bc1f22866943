"""Batches of running sessions: orders, fills, equity, frames and risk events in one commit.

:meth:`BatchWriter.write_batch` writes one session's batch; :meth:`BatchWriter.write_batches`
several sessions' batches (group commit, kill switch, stop-all) with one statement per
table. Every row is validated (:func:`prepare_batch`) before any SQL runs.

A batch's ``bar.received`` and ``equity.update`` frame envelopes are stored as one
``paper_frame_blocks`` row (:mod:`alphaswarm.ledger.frame_blocks`); its other frames
as ``paper_frames`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, update

from alphaswarm.frame_records import as_frames
from alphaswarm.ledger.bulk import execute_many
from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.equity_points import split_equity, upsert_points
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.frame_blocks import (
    BLOCK_STAGES,
    ENCODING,
    RECORDS_ENCODING,
    decode_block,
    encode_block,
    encode_records,
)
from alphaswarm.ledger.rows import as_mapping, fields, plain, row
from alphaswarm.ledger.runs import update_run_row
from alphaswarm.ledger.schema import (
    paper_equity,
    paper_fills,
    paper_frame_blocks,
    paper_frames,
    paper_orders,
    paper_trading_runs,
    utcnow,
)
from alphaswarm.ledger.schema import risk_events as risk_events_table
from alphaswarm.ledger.tablewrites import insert_many, upsert_many

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection

    from alphaswarm.ledger.connection import Database


__all__ = ["BATCH_KEYS", "BatchWriter", "prepare_batch"]

#: The row kinds of a batch, beside ``run_update``.
_ROW_KINDS = ("orders", "fills", "equity", "frames", "risk_events")
#: The kinds of rows written per table (the frames of a batch give ``frame_blocks`` too).
_TABLE_KINDS = (*_ROW_KINDS, "frame_blocks", "equity_points")

#: The keys a batch of :meth:`BatchWriter.write_batches` may hold.
BATCH_KEYS = frozenset({*_ROW_KINDS, "run_update"})


def prepare_batch(
    run_id: str,
    orders: Iterable[Any],
    fills: Iterable[Any],
    equity: Iterable[Any],
    frames: Iterable[Any],
    risk_events: Iterable[Any],
    run_update: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """Validate one batch before any SQL runs."""
    fixed = {"paper_run_id": run_id}
    # A kind with no rows (most kinds of a paced session's batch) stays the shared empty
    # tuple: a group commit holds every session's prepared batch until it has committed.
    order_rows = _rows(paper_orders, orders, "order", {"order_id": "id"}, fixed)
    fill_rows = _rows(paper_fills, fills, "fill", {"fill_id": "id"}, fixed)
    for rows in (order_rows, fill_rows):
        for r in rows:
            if not r.get("id"):
                raise LedgerError(f"write_batch: every order and fill needs an 'id': {r}")
    values = fields(paper_trading_runs, run_update or {}, "run_update")
    values.setdefault("last_heartbeat_at", now)
    frame_rows, blocked, block_seqs = _split_frames(run_id, frames)
    equity_rows, points = split_equity(run_id, equity)
    return {
        "run_id": run_id,
        "run_update": values,
        "orders": order_rows,
        "fills": fill_rows,
        "equity": equity_rows or (),
        "equity_points": points or (),
        "frames": frame_rows or (),
        "frame_blocks": (_block_row(run_id, blocked, block_seqs),) if blocked else (),
        "risk_events": _rows(risk_events_table, risk_events, "risk event", None, fixed),
        "new_seqs": ([r["seq"] for r in frame_rows] if frame_rows else (), block_seqs),
    }


def _rows(
    table: Any,
    items: Iterable[Any],
    what: str,
    aliases: Mapping[str, str] | None,
    fixed: Mapping[str, Any],
) -> list[dict[str, Any]] | tuple[()]:
    """The validated rows of ``items`` (see :func:`~alphaswarm.ledger.rows.row`); () if none."""
    out = [row(table, item, what, aliases=aliases, fixed=fixed) for item in items]
    return out or ()


def _split_frames(
    run_id: str, frames: Iterable[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any] | tuple], list[int]]:
    """``paper_frames`` rows; the frames of :data:`BLOCK_STAGES` for one block, and their seqs.

    A frame of those stages may be an envelope or a record
    (:mod:`alphaswarm.frame_records`); records, two per bar of a session, are checked
    column by column.
    """
    rows: list[dict[str, Any]] = []
    records: list[tuple] = []
    envelopes: list[dict[str, Any]] = []
    for f in frames:
        if type(f) is tuple:
            records.append(f)
        elif type(f) is dict and f.get("stage") in BLOCK_STAGES and "frame" not in f:
            seq = f.get("seq")
            if type(seq) is not int:
                seq = plain(seq)
                if isinstance(seq, bool) or not isinstance(seq, int):
                    raise LedgerError(f"frame: 'seq' must be an integer, got {seq!r}")
                f = {**f, "seq": int(seq)}
            envelopes.append(f)
        else:
            rows.append(_frame_row(run_id, f))
    if not records:
        return rows, envelopes, [f["seq"] for f in envelopes]
    if min(map(len, records)) < 2:
        raise LedgerError(f"frame: not a frame record: {min(records, key=len)!r}")
    seqs = list(map(_SEQ, records))
    if not BLOCK_STAGES.issuperset(map(_STAGE, records)) or set(map(type, seqs)) != {int}:
        bad = next(r for r in records if r[0] not in BLOCK_STAGES or type(r[1]) is not int)
        raise LedgerError(f"frame: not a frame record: {bad[:2]!r}")
    if not envelopes:
        return rows, records, seqs
    blocked = sorted([*records, *envelopes], key=_seq_of)
    return rows, blocked, [_seq_of(f) for f in blocked]


_STAGE, _SEQ = itemgetter(0), itemgetter(1)


def _seq_of(frame: dict[str, Any] | tuple) -> int:
    """The ``seq`` of an envelope or a record."""
    return frame[1] if type(frame) is tuple else frame["seq"]


def _block_row(
    run_id: str, frames: list[dict[str, Any] | tuple], seqs: list[int]
) -> dict[str, Any]:
    """One ``paper_frame_blocks`` row: records as records, envelopes (or a mix) as envelopes."""
    if all(type(f) is tuple for f in frames):
        encoding, data = RECORDS_ENCODING, encode_records(run_id, frames)
    else:
        encoding, data = ENCODING, encode_block(as_frames(run_id, frames))
    return {
        "paper_run_id": run_id,
        "first_seq": min(seqs),
        "last_seq": max(seqs),
        "frames": len(frames),
        "encoding": encoding,
        "data": data,
    }


#: Runs whose highest stored frame ``seq`` a writer remembers (forgotten past this).
_KNOWN_HIGHS = 10_000
_NO_SEQ = -(2**63)


def _stored_high(conn: Connection, run_id: str) -> int:
    """The highest frame ``seq`` stored for ``run_id``, in rows or blocks (indexed look-ups)."""
    rows, blocks = paper_frames.c, paper_frame_blocks.c
    highs = [
        conn.execute(select(func.max(rows.seq)).where(rows.paper_run_id == run_id)).scalar(),
        conn.execute(
            select(func.max(blocks.last_seq)).where(blocks.paper_run_id == run_id)
        ).scalar(),
    ]
    return max((h for h in highs if h is not None), default=_NO_SEQ)


def _refuse_stored(conn: Connection, run_id: str, new: set[int], blocked: set[int]) -> None:
    """Refuse new frame seqs of ``run_id`` already stored in a block or, blocked ones, as a row.

    ``blocked`` are the new seqs going into a block. A new row stored twice as a row is
    the primary key's to refuse; a block holds many seqs, so the blocks whose range meets
    the new seqs are decoded and looked into.
    """
    lo, hi = min(new), max(new)
    blocks = paper_frame_blocks.c
    stored = conn.execute(
        select(blocks.data, blocks.encoding).where(
            blocks.paper_run_id == run_id, blocks.first_seq <= hi, blocks.last_seq >= lo
        )
    ).all()
    twice = new & {
        f["seq"] for data, encoding in stored for f in decode_block(data, encoding, run_id)
    }
    if blocked:
        rows = paper_frames.c
        twice.update(
            blocked
            & set(
                conn.execute(
                    select(rows.seq).where(
                        rows.paper_run_id == run_id,
                        rows.seq >= min(blocked),
                        rows.seq <= max(blocked),
                    )
                ).scalars()
            )
        )
    if twice:
        raise LedgerError(
            f"frames of run {run_id!r}: seq {sorted(twice)[:5]} already stored; nothing was written"
        )


def _frame_row(run_id: str, data: Any) -> dict[str, Any]:
    frame = dict(as_mapping(data, "frame"))
    if "frame" in frame and isinstance(frame["frame"], Mapping):
        out = row(paper_frames, frame, "frame", fixed={"paper_run_id": run_id})
        out.setdefault("stage", out["frame"].get("stage"))
        out.setdefault("seq", out["frame"].get("seq"))
    else:  # a frame envelope
        out = {
            "paper_run_id": run_id,
            "seq": frame.get("seq"),
            "stage": frame.get("stage"),
            "frame": frame,
        }
    seq = out.get("seq")
    if isinstance(seq, bool) or not isinstance(plain(seq), int):
        raise LedgerError(f"frame: 'seq' must be an integer, got {seq!r}")
    out["seq"] = int(plain(seq))
    if not out.get("stage"):
        raise LedgerError(f"frame {out['seq']}: 'stage' is required")
    return out


def _write_rows(conn: Connection, rows: Mapping[str, list[dict[str, Any]]]) -> None:
    """The orders, fills, equity points, frames and risk events of one or more batches."""
    if rows["orders"]:
        upsert_many(conn, paper_orders, rows["orders"], keep=("created_at",))
    if rows["fills"]:
        insert_many(conn, paper_fills, rows["fills"])
    if rows["equity"]:
        upsert_many(conn, paper_equity, rows["equity"])
    if rows["equity_points"]:
        upsert_points(conn, rows["equity_points"])
    if rows["frames"]:
        insert_many(conn, paper_frames, rows["frames"])
    if rows["frame_blocks"]:
        insert_many(conn, paper_frame_blocks, rows["frame_blocks"])
    if rows["risk_events"]:
        insert_many(conn, risk_events_table, rows["risk_events"])


def _update_runs(conn: Connection, prepared: list[dict[str, Any]]) -> None:
    """The ``run_update`` of several batches, one executemany per set of columns."""
    runs = paper_trading_runs
    by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for batch in prepared:
        values = batch["run_update"]
        by_keys.setdefault(tuple(sorted(values)), []).append(
            {"_run_id": batch["run_id"], **{f"_v_{k}": v for k, v in values.items()}}
        )
    for keys, params in by_keys.items():
        found = execute_many(
            conn,
            ("update runs", keys),
            lambda keys=keys: (
                update(runs)
                .where(runs.c.id == bindparam("_run_id"))
                .values({k: bindparam(f"_v_{k}") for k in keys})
            ),
            params,
        )
        if found != len(params):
            missing = [p["_run_id"] for p in params]
            raise LedgerError(f"write_batches: unknown paper run among {missing}")


class BatchWriter(Repository):
    """Writes the batches of running sessions.

    A frame ``seq`` stored twice for a run is refused. A session's frames only ever
    grow in ``seq``, so the writer remembers the highest ``seq`` it committed per run
    (read from the ledger the first time it writes that run): new frames above it need
    no look-up. One process writes a run's frames (its owner).
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._highs: dict[str, int] = {}

    def _check_frames(
        self, conn: Connection, seqs: Mapping[str, tuple[list[int], list[int]]]
    ) -> dict[str, int]:
        """Refuse frame seqs given twice or stored already; the runs' new highest seqs.

        ``seqs`` maps a run to the seqs of its new frame rows and of its new blocked
        frames.
        """
        highs: dict[str, int] = {}
        for run_id, (row_seqs, block_seqs) in seqs.items():
            given = [*row_seqs, *block_seqs]
            if not given:
                continue
            new = set(given)
            if len(new) != len(given):
                raise LedgerError(
                    f"frames of run {run_id!r}: a 'seq' is given twice; nothing was written"
                )
            high = self._highs.get(run_id)
            if high is None:
                high = _stored_high(conn, run_id)
            if min(new) <= high:
                _refuse_stored(conn, run_id, new, set(block_seqs))
            highs[run_id] = max(high, max(new))
        return highs

    def _committed(self, highs: dict[str, int]) -> None:
        """After a commit: remember the runs' highest frame seqs."""
        if len(self._highs) + len(highs) > _KNOWN_HIGHS:
            self._highs.clear()
        self._highs.update(highs)

    def write_batch(
        self,
        run_id: str,
        *,
        orders: Iterable[Any] = (),
        fills: Iterable[Any] = (),
        equity: Iterable[Any] = (),
        frames: Iterable[Any] = (),
        risk_events: Iterable[Any] = (),
        run_update: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one batch of a running session in ONE transaction.

        Parameters
        ----------
        run_id : str
            The paper run; it must exist.
        orders : iterable of dict
            Order snapshots, upserted by ``id`` (``order_id`` is accepted for ``id``,
            so ``Order.to_dict()`` works): a later snapshot updates status, fills and
            ``updated_at``; ``created_at`` keeps its first value.
        fills : iterable of dict
            New fills (``fill_id`` is accepted for ``id``).
        equity : iterable of dict or tuple, or EquityPoints
            ``{ts, equity, cash}`` points, upserted by ``ts``; a point may also be a
            ``(ts, equity, cash)`` tuple (a conflict then updates both numbers), and
            the points may come as one
            :class:`~alphaswarm.ledger.equity_points.EquityPoints`.
        frames : iterable of dict
            ``{seq, stage, frame}`` rows, or frame envelopes themselves (their
            ``seq`` and ``stage`` are used and the whole envelope is stored).
            Envelopes of the stages in
            :data:`~alphaswarm.ledger.frame_blocks.BLOCK_STAGES` go into one
            ``paper_frame_blocks`` row; the others are ``paper_frames`` rows.
        risk_events : iterable of dict
            ``{at, order_id, limit, value, threshold, action, message}`` rows.
        run_update : dict, optional
            Columns of the run to update, e.g. counters and P&L. ``last_heartbeat_at``
            is set to now unless given.

        Raises
        ------
        LedgerError
            For an unknown run, an unknown column, a duplicate fill or frame, or a value
            that cannot be stored; then nothing of the batch is written.
        """
        batch = prepare_batch(
            run_id, orders, fills, equity, frames, risk_events, run_update, utcnow()
        )
        with self.db.write() as conn:
            update_run_row(conn, batch["run_id"], batch["run_update"])
            highs = self._check_frames(conn, {batch["run_id"]: batch["new_seqs"]})
            _write_rows(conn, batch)
        self._committed(highs)

    def write_batches(self, batches: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Write the batches of several runs in ONE transaction.

        Used to stop many sessions at once (kill switch, stop-all) with one commit.

        Parameters
        ----------
        batches : iterable of (str, dict)
            ``(run_id, batch)`` pairs; ``batch`` holds the keyword arguments of
            :meth:`write_batch` (``orders``, ``fills``, ``equity``, ``frames``,
            ``risk_events``, ``run_update``).

        Raises
        ------
        LedgerError
            If any batch is bad; then nothing of any batch is written.
        """
        now = utcnow()
        prepared = []
        for run_id, batch in batches:
            unknown = set(batch) - BATCH_KEYS
            if unknown:
                raise LedgerError(
                    f"write_batches: unknown keys {sorted(unknown)} for run {run_id!r}; "
                    f"allowed: {sorted(BATCH_KEYS)}"
                )
            rows = {kind: batch.get(kind, ()) for kind in _ROW_KINDS}
            prepared.append(
                prepare_batch(run_id, **rows, run_update=batch.get("run_update"), now=now)
            )
        if not prepared:
            return
        merged: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _TABLE_KINDS}
        seqs: dict[str, tuple[list[int], list[int]]] = {}
        for batch in prepared:
            for kind, rows in merged.items():
                rows.extend(batch[kind])
            row_seqs, block_seqs = seqs.setdefault(batch["run_id"], ([], []))
            row_seqs.extend(batch["new_seqs"][0])
            block_seqs.extend(batch["new_seqs"][1])
        with self.db.write() as conn:
            _update_runs(conn, prepared)
            highs = self._check_frames(conn, seqs)
            _write_rows(conn, merged)
        self._committed(highs)
