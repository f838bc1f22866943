"""Closing paper runs: finalised by their session, or marked crashed when it is gone.

Both recount a run from what the ledger holds: its fills (average-cost P&L through
:meth:`alphaswarm.model.Position.apply_fill`, the one fill-accounting routine) and
its last equity point.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update

from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.rows import fields
from alphaswarm.ledger.runs import update_run_row
from alphaswarm.ledger.schema import paper_equity, paper_fills, paper_trading_runs, utcnow
from alphaswarm.model import Position, Side

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sqlalchemy.engine import Connection


__all__ = ["RunClosing", "fill_order", "position_pnl"]

_TRAILING_DIGITS = re.compile(r"(\d+)$")


def fill_order(fill: Mapping[str, Any]) -> tuple[Any, int, str]:
    """Sort key of a fill: bar time, then the broker's fill sequence (``f10`` after ``f9``)."""
    found = _TRAILING_DIGITS.search(str(fill["id"]))
    return (fill["filled_at"], int(found.group(1)) if found else -1, str(fill["id"]))


def position_pnl(fills: Iterable[Mapping[str, Any]]) -> tuple[float, float, float]:
    """Return (realized, unrealized at the last fill price, commission) of a fill sequence.

    Average-cost accounting per symbol (shorts and position flips included), by the
    same :meth:`~alphaswarm.model.Position.apply_fill` the broker keeps its books with.
    """
    positions: dict[str, Position] = {}
    realized = commission = 0.0
    for fill in fills:
        price = float(fill["price"])
        commission += float(fill["commission"] or 0.0)
        position = positions.setdefault(fill["symbol"], Position(fill["symbol"]))
        realized += position.apply_fill(Side(str(fill["side"]).lower()), float(fill["qty"]), price)
        position.last_price = price
    unrealized = sum(p.unrealized_pnl for p in positions.values())
    return realized, unrealized, commission


def recompute(conn: Connection, run_id: str, starting_cash: float | None) -> dict:
    """P&L and fill count of a run from what the ledger holds about it."""
    fills = (
        conn.execute(
            select(
                paper_fills.c.symbol,
                paper_fills.c.side,
                paper_fills.c.qty,
                paper_fills.c.price,
                paper_fills.c.commission,
                paper_fills.c.filled_at,
                paper_fills.c.id,
            ).where(paper_fills.c.paper_run_id == run_id)
        )
        .mappings()
        .all()
    )
    fills = sorted(fills, key=fill_order)
    realized, unrealized, commission = position_pnl(fills)
    last_equity = conn.execute(
        select(paper_equity.c.equity)
        .where(paper_equity.c.paper_run_id == run_id)
        .order_by(paper_equity.c.ts.desc())
        .limit(1)
    ).scalar()
    if last_equity is not None and starting_cash is not None:
        total = float(last_equity) - float(starting_cash)
        final = float(last_equity)
    else:
        total = realized + unrealized - commission
        final = None if starting_cash is None else float(starting_cash) + total
        if last_equity is not None:
            final = float(last_equity)
    return {
        "total_pnl": total,
        "realized_pnl": realized - commission,
        "final_equity": final,
        "num_fills": len(fills),
    }


class RunClosing(Repository):
    """The final writes of paper runs."""

    def finalize_paper_run(self, run_id: str, *, recount: bool = False, **fields_: Any) -> None:
        """Close a paper run: status (default ``"stopped"``), ``ended_at`` now, and ``fields``.

        When neither ``fields`` nor the row has a ``total_pnl``, it is computed from the
        run's fills and last equity point, as :meth:`mark_crashed` does. With
        ``recount``, ``num_fills`` and the P&L columns always are (in the same
        transaction): the row then counts exactly the fills the ledger holds.

        Raises
        ------
        LedgerError
            For an unknown run or column.
        """
        values = fields(paper_trading_runs, fields_, "finalize_paper_run")
        now = utcnow()
        values.setdefault("status", "stopped")
        values.setdefault("ended_at", now)
        values.setdefault("last_heartbeat_at", now)
        with self.db.write() as conn:
            found = (
                conn.execute(
                    select(paper_trading_runs.c.total_pnl, paper_trading_runs.c.starting_cash)
                    .where(paper_trading_runs.c.id == run_id)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if found is None:
                raise LedgerError(f"finalize_paper_run: unknown paper run {run_id!r}")
            if recount or ("total_pnl" not in values and found["total_pnl"] is None):
                values = {**recompute(conn, run_id, found["starting_cash"]), **values}
            update_run_row(conn, run_id, values)

    def mark_crashed(
        self,
        older_than_seconds: float,
        exclude_owner: str | None = None,
        run_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Mark running runs whose heartbeat stopped as crashed.

        Runs with status ``running`` whose ``last_heartbeat_at`` (or ``started_at``
        when there is none) is older than ``older_than_seconds`` get status
        ``crashed``, ``ended_at`` now, ``stop_reason`` ``"crashed: process gone"``,
        ``num_fills`` recounted from ``paper_fills`` and ``total_pnl``,
        ``realized_pnl`` and ``final_equity`` recomputed from the fills and the last
        equity point.

        Parameters
        ----------
        older_than_seconds : float
            Heartbeat age, in seconds, after which a run counts as gone.
        exclude_owner : str, optional
            Skip the runs of this owner (e.g. this process, whose sessions are alive).
        run_ids : iterable of str, optional
            Only consider these runs.

        Returns
        -------
        list of str
            Ids of the runs marked crashed.
        """
        runs = paper_trading_runs
        cutoff = utcnow() - timedelta(seconds=float(older_than_seconds))
        stmt = select(runs.c.id, runs.c.starting_cash).where(
            runs.c.status == "running",
            func.coalesce(runs.c.last_heartbeat_at, runs.c.started_at) < cutoff,
        )
        if exclude_owner is not None:
            stmt = stmt.where(or_(runs.c.owner.is_(None), runs.c.owner != exclude_owner))
        if run_ids is not None:
            ids = list(run_ids)
            if not ids:
                return []
            stmt = stmt.where(runs.c.id.in_(ids))
        crashed: list[str] = []
        with self.db.write() as conn:
            for run_id, starting_cash in conn.execute(stmt.with_for_update()).all():
                values = recompute(conn, run_id, starting_cash)
                values.update(
                    status="crashed", ended_at=utcnow(), stop_reason="crashed: process gone"
                )
                done = conn.execute(
                    update(runs)
                    .where(runs.c.id == run_id, runs.c.status == "running")
                    .values(**values)
                ).rowcount
                if done:
                    crashed.append(run_id)
        return crashed
