"""The paper-runs repository: runs created, updated, stopped and listed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from alphaswarm.ledger.backtests import latest_bot_version
from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.killswitch_row import refuse_when_killed
from alphaswarm.ledger.rows import IN_LIST_CHUNK, chunks, fields, row
from alphaswarm.ledger.schema import paper_orders, paper_trading_runs, utcnow
from alphaswarm.model import OrderStatus

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import Select

    from alphaswarm.ledger.cluster import ClusterRepository
    from alphaswarm.ledger.connection import Database

__all__ = ["RunRepository", "runs_query", "update_run_row"]


def update_run_row(conn: Connection, run_id: str, values: Mapping[str, Any]) -> None:
    """Update columns of one run (or check it exists, when there are none)."""
    if not values:
        found = conn.execute(
            select(paper_trading_runs.c.id).where(paper_trading_runs.c.id == run_id)
        ).first()
    else:
        found = conn.execute(
            update(paper_trading_runs).where(paper_trading_runs.c.id == run_id).values(**values)
        ).rowcount
    if not found:
        raise LedgerError(f"unknown paper run {run_id!r}")


def runs_query(status: str | None, bot_id: str | None, limit: int | None) -> Select:
    """Paper runs, newest first, filtered by status and bot, at most ``limit``."""
    runs = paper_trading_runs
    stmt = select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc())
    if status is not None:
        stmt = stmt.where(runs.c.status == status)
    if bot_id is not None:
        stmt = stmt.where(runs.c.bot_id == bot_id)
    if limit is not None:
        stmt = stmt.limit(int(limit))
    return stmt


class RunRepository(Repository):
    """Rows of ``paper_trading_runs`` (and the open orders a stop cancels).

    Parameters
    ----------
    db : Database
        The ledger database.
    cluster : ClusterRepository
        Holds the owner's advisory lock while this process owns runs.
    """

    def __init__(self, db: Database, cluster: ClusterRepository) -> None:
        super().__init__(db)
        self.cluster = cluster

    def create_paper_run(self, row: dict, *, check_kill_switch: bool = False) -> None:
        """Record a new paper-trading run.

        Parameters
        ----------
        row : dict
            Columns of ``paper_trading_runs``; ``id`` and ``bot_id`` are required.
            Defaults: ``status="running"``, ``bot_version`` the bot's latest version,
            ``started_at`` and ``last_heartbeat_at`` now,
            ``task_id=id``, ``owner`` this ledger's :attr:`owner`, zero counters and
            P&L, ``final_equity=starting_cash``.
        check_kill_switch : bool
            Read the kill-switch row in the same transaction (``FOR SHARE`` on
            PostgreSQL) and refuse while it is engaged or halts this bot. An engagement
            updates that row ``FOR UPDATE``, so every start is ordered either before an
            engagement (and is then killed by it) or after it (and is refused), on
            every server process sharing the ledger.

        Raises
        ------
        KillSwitchRefusal
            With ``check_kill_switch``, while the kill switch is engaged.
        LedgerError
            On a missing id or bot id, an id that exists already, or bad values.
        """
        values = self._new_run_row(row)
        # PostgreSQL: the owner's advisory lock tells survivors this process is alive.
        self.cluster.hold_owner_lock()
        with self.db.write() as conn:
            if check_kill_switch:
                refuse_when_killed(conn, values["bot_id"])
            if "bot_version" not in values:
                values["bot_version"] = latest_bot_version(conn, values["bot_id"])
            conn.execute(insert(paper_trading_runs), values)

    def _new_run_row(self, data: dict) -> dict[str, Any]:
        values = row(paper_trading_runs, data, "create_paper_run")
        for key in ("id", "bot_id"):
            if not values.get(key):
                raise LedgerError(f"create_paper_run: {key!r} is required")
        values.setdefault("status", "running")
        values.setdefault("started_at", utcnow())
        values.setdefault("last_heartbeat_at", values["started_at"])
        values.setdefault("task_id", values["id"])
        values.setdefault("owner", self.cluster.owner())
        for key in ("num_fills", "bars_seen", "orders_submitted"):
            values.setdefault(key, 0)
        values.setdefault("total_pnl", 0.0)
        values.setdefault("realized_pnl", 0.0)
        values.setdefault("final_equity", values.get("starting_cash"))
        return values

    def update_run(self, run_id: str, **fields_: Any) -> None:
        """Update columns of a paper run.

        Raises
        ------
        LedgerError
            For an unknown run or column.
        """
        values = fields(paper_trading_runs, fields_, "update_run")
        with self.db.write() as conn:
            update_run_row(conn, run_id, values)

    def stop_runs(
        self,
        run_ids: list[str],
        *,
        status: str,
        reason: str,
        at: datetime,
        cancel_orders: tuple[str, str] | None = None,
    ) -> int:
        """Set the final status of several paper runs, and cancel their open orders.

        One transaction with one statement per table, whatever the number of runs:
        the first, short write of a kill switch or a stop-all. The runs' closing
        batches (counters, state, frames) follow with :meth:`Ledger.write_batches`.

        Parameters
        ----------
        run_ids : list of str
            The paper runs; every one must exist.
        status, reason : str
            The runs' final ``status`` and ``stop_reason``.
        at : datetime
            Their ``ended_at`` (and ``last_heartbeat_at``).
        cancel_orders : (str, str), optional
            ``(reason_code, reason)``: their ``new``, ``accepted`` and
            ``partially_filled`` orders become ``cancelled`` with these.

        Returns
        -------
        int
            The number of runs updated.

        Raises
        ------
        LedgerError
            For an unknown run or a bad value; then nothing is written.
        """
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return 0
        values = fields(
            paper_trading_runs,
            {"status": status, "stop_reason": reason, "ended_at": at, "last_heartbeat_at": at},
            "stop_runs",
        )
        runs, orders = paper_trading_runs, paper_orders
        open_statuses = [s.value for s in OrderStatus if s.is_open]
        with self.db.write() as conn:
            found = 0
            for chunk in chunks(ids, IN_LIST_CHUNK):
                found += conn.execute(
                    update(runs).where(runs.c.id.in_(chunk)).values(values)
                ).rowcount
                if cancel_orders is not None:
                    code, why = cancel_orders
                    conn.execute(
                        update(orders)
                        .where(orders.c.paper_run_id.in_(chunk), orders.c.status.in_(open_statuses))
                        .values(status="cancelled", reason_code=code, reason=why, updated_at=at)
                    )
            if found != len(ids):
                raise LedgerError(f"stop_runs: unknown paper run among {ids}")
        return found

    def get_run(self, run_id: str) -> dict | None:
        """Return one paper run as a dict, or ``None``."""
        return self._by_id(paper_trading_runs, run_id)

    def list_runs(
        self, status: str | None = None, bot_id: str | None = None, limit: int | None = None
    ) -> list[dict]:
        """Return paper runs, newest first.

        Parameters
        ----------
        status : str, optional
            Only runs with this status.
        bot_id : str, optional
            Only runs of this bot.
        limit : int, optional
            At most this many.
        """
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(runs_query(status, bot_id, limit)).mappings()]

    def running_runs(self) -> list[dict]:
        """Return the runs whose status is ``running``, newest first."""
        return self.list_runs(status="running")
