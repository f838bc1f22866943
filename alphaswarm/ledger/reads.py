"""The ledger read as pandas DataFrames: what the UI, the API and notebooks query."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Boolean, Float, Integer, select, text

from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.runs import runs_query
from alphaswarm.ledger.schema import (
    UTCDateTime,
    audit_log,
    backtest_runs,
    metadata,
    paper_equity,
    paper_fills,
    paper_frames,
    paper_orders,
    paper_trading_runs,
)
from alphaswarm.ledger.schema import risk_events as risk_events_table

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import CursorResult
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

        Parameters
        ----------
        run_id : str
            The paper run.
        since_seq : int, optional
            Only frames with ``seq > since_seq`` (the ones a client holding
            ``since_seq`` has not seen).
        """
        return self._frame(_frames_query(run_id, since_seq), paper_frames)

    def frames_after(self, run_id: str, seq: int) -> list[dict]:
        """Return the frame envelopes of a run with ``seq`` greater than ``seq``, in order."""
        with self.db.read() as conn:
            stmt = _frames_query(run_id, seq).with_only_columns(paper_frames.c.frame)
            return list(conn.execute(stmt).scalars())

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


def _frames_query(run_id: str, since_seq: int | None) -> Select:
    stmt = (
        select(paper_frames)
        .where(paper_frames.c.paper_run_id == run_id)
        .order_by(paper_frames.c.seq)
    )
    if since_seq is not None:
        stmt = stmt.where(paper_frames.c.seq > int(since_seq))
    return stmt


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
