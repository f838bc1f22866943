"""The ledger read as pandas DataFrames: what the UI, the API and notebooks query."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Boolean, Float, Integer, select, text

from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.frame_blocks import BLOCK_STAGES, decode_block
from alphaswarm.ledger.runs import runs_query
from alphaswarm.ledger.schema import (
    UTCDateTime,
    audit_log,
    backtest_runs,
    metadata,
    paper_equity,
    paper_fills,
    paper_frame_blocks,
    paper_frames,
    paper_orders,
    paper_trading_runs,
)
from alphaswarm.ledger.schema import risk_events as risk_events_table

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, CursorResult
    from sqlalchemy.sql import Select


__all__ = ["LedgerReads"]

_TIMESTAMP_COLUMNS = frozenset(
    column.name
    for table in metadata.tables.values()
    for column in table.columns
    if isinstance(column.type, UTCDateTime)
)


class LedgerReads(Repository):
    """Queries returning DataFrames (and the frame envelopes a client catches up with)."""

    def _frame(self, stmt: Select, table: Table) -> pd.DataFrame:
        with self.db.read() as conn:
            return _to_frame(conn.execute(stmt), table)

    def _of_run(self, table: Table, run_id: str, *order_by: Any) -> pd.DataFrame:
        stmt = select(table).where(table.c.paper_run_id == run_id).order_by(*order_by)
        return self._frame(stmt, table)

    def runs(self) -> pd.DataFrame:
        """Return all paper runs as a DataFrame, newest first."""
        return self._frame(runs_query(None, None, None), paper_trading_runs)

    def fills(self, run_id: str) -> pd.DataFrame:
        """Return the fills of a paper run in fill order."""
        return self._of_run(paper_fills, run_id, paper_fills.c.filled_at, paper_fills.c.id)

    def orders(self, run_id: str) -> pd.DataFrame:
        """Return the orders of a paper run (latest state of each) in creation order."""
        return self._of_run(paper_orders, run_id, paper_orders.c.created_at, paper_orders.c.id)

    def equity(self, run_id: str) -> pd.DataFrame:
        """Return the equity curve of a paper run: ``paper_run_id, ts, equity, cash``."""
        return self._of_run(paper_equity, run_id, paper_equity.c.ts)

    def frames(self, run_id: str, since_seq: int | None = None) -> pd.DataFrame:
        """Return the stored frames of a run in ``seq`` order.

        Frames stored as ``paper_frames`` rows and those stored in
        ``paper_frame_blocks`` (``bar.received``, ``equity.update``) alike.

        Parameters
        ----------
        run_id : str
            The paper run.
        since_seq : int, optional
            Only frames with ``seq > since_seq`` (the ones a client holding
            ``since_seq`` has not seen).

        Returns
        -------
        pandas.DataFrame
            ``paper_run_id, seq, stage, frame`` (``frame``: the envelope as a dict).
        """
        with self.db.read() as conn:
            stored = _stored_frames(conn, run_id, since_seq)
        return pd.DataFrame(
            {
                "paper_run_id": pd.Series([run_id] * len(stored), dtype=object),
                "seq": pd.Series([seq for seq, _, _ in stored], dtype="int64"),
                "stage": pd.Series([stage for _, stage, _ in stored], dtype=object),
                "frame": pd.Series([frame for _, _, frame in stored], dtype=object),
            }
        )

    def frames_after(
        self,
        run_id: str,
        seq: int,
        *,
        before: int | None = None,
        stages: Iterable[str] | None = None,
    ) -> list[dict]:
        """Return the frame envelopes of a run with ``seq`` greater than ``seq``, in order.

        Parameters
        ----------
        run_id : str
            The paper run.
        seq : int
            Only frames after this one.
        before : int, optional
            Only frames with a smaller ``seq``.
        stages : iterable of str, optional
            Only frames of these stages.
        """
        with self.db.read() as conn:
            stored = _stored_frames(conn, run_id, seq, before, stages)
        return [frame for _, _, frame in stored]

    def backtests(self, bot_id: str | None = None) -> pd.DataFrame:
        """Return backtest runs (of one bot, when given), newest first."""
        stmt = select(backtest_runs).order_by(
            backtest_runs.c.created_at.desc(), backtest_runs.c.id.desc()
        )
        if bot_id is not None:
            stmt = stmt.where(backtest_runs.c.bot_id == bot_id)
        return self._frame(stmt, backtest_runs)

    def risk_events(self, run_id: str | None = None) -> pd.DataFrame:
        """Return risk denials and breaches (of one run, when given), oldest first."""
        stmt = select(risk_events_table).order_by(risk_events_table.c.id)
        if run_id is not None:
            stmt = stmt.where(risk_events_table.c.paper_run_id == run_id)
        return self._frame(stmt, risk_events_table)

    def audit_rows(self, action: str | None = None) -> pd.DataFrame:
        """Return the audit log (one action only, when given), oldest first."""
        stmt = select(audit_log).order_by(audit_log.c.id)
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        return self._frame(stmt, audit_log)

    def sql(self, query: str, **params: Any) -> pd.DataFrame:
        """Run a SQL query with bound parameters and return the result as a DataFrame.

        Parameters
        ----------
        query : str
            SQL text; refer to parameters as ``:name``.
        **params
            Values bound to the ``:name`` parameters (never formatted into the text).

        Returns
        -------
        pandas.DataFrame
            Known timestamp columns (``started_at``, ``filled_at``, ``ts``, ...) are
            converted to timezone-aware UTC.

        Examples
        --------
        >>> ledger.sql(  # doctest: +SKIP
        ...     "SELECT order_id, qty, price FROM paper_fills WHERE paper_run_id = :run",
        ...     run="pr_123",
        ... )
        """
        with self.db.read() as conn:
            result = conn.execute(text(query), params)
            if not result.returns_rows:
                raise LedgerError("sql: the statement returns no rows; use it for queries only")
            return _to_frame(result, None)


def _stored_frames(
    conn: Connection,
    run_id: str,
    after: int | None = None,
    before: int | None = None,
    stages: Iterable[str] | None = None,
) -> list[tuple[int, str, dict[str, Any]]]:
    """``(seq, stage, envelope)`` of a run's frames, rows and blocks merged, in ``seq`` order."""
    wanted = None if stages is None else frozenset(stages)
    rows = paper_frames.c
    stmt = (
        select(rows.seq, rows.stage, rows.frame)
        .where(rows.paper_run_id == run_id)
        .order_by(rows.seq)
    )
    if after is not None:
        stmt = stmt.where(rows.seq > int(after))
    if before is not None:
        stmt = stmt.where(rows.seq < int(before))
    if wanted is not None:
        stmt = stmt.where(rows.stage.in_(sorted(wanted)))
    stored = [(seq, stage, frame) for seq, stage, frame in conn.execute(stmt)]
    if wanted is not None and wanted.isdisjoint(BLOCK_STAGES):
        return stored
    blocks = paper_frame_blocks.c
    stmt = (
        select(blocks.data, blocks.encoding)
        .where(blocks.paper_run_id == run_id)
        .order_by(blocks.first_seq)
    )
    if after is not None:
        stmt = stmt.where(blocks.last_seq > int(after))
    if before is not None:
        stmt = stmt.where(blocks.first_seq < int(before))
    lo = -(2**63) if after is None else int(after)
    hi = 2**63 if before is None else int(before)
    blocked = [
        (f["seq"], f["stage"], f)
        for data, encoding in conn.execute(stmt)
        for f in decode_block(data, encoding, run_id)
        if lo < f["seq"] < hi and (wanted is None or f["stage"] in wanted)
    ]
    if not blocked:
        return stored
    if not stored:
        return sorted(blocked, key=_first) if len(blocked) > 1 else blocked
    return list(heapq.merge(stored, sorted(blocked, key=_first), key=_first))


def _first(item: tuple[int, str, dict[str, Any]]) -> int:
    return item[0]


def _to_frame(result: CursorResult, table: Table | None) -> pd.DataFrame:
    """Build a DataFrame with dtypes taken from the table (or column names, for raw SQL)."""
    keys = list(result.keys())
    df = pd.DataFrame.from_records(list(result.fetchall()), columns=keys)
    for name in keys:
        column = table.c.get(name) if table is not None else None
        kind = column.type if column is not None else None
        if isinstance(kind, UTCDateTime) or (kind is None and name in _TIMESTAMP_COLUMNS):
            try:
                df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601")
            except (ValueError, TypeError):
                pass  # not timestamps after all (an alias in raw SQL): leave as is
        elif isinstance(kind, Boolean):
            df[name] = df[name].astype("boolean" if column.nullable else bool)
        elif isinstance(kind, Integer):
            df[name] = df[name].astype("Int64" if column.nullable else "int64")
        elif isinstance(kind, Float):
            df[name] = df[name].astype("float64")
    return df
