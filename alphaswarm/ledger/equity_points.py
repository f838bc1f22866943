"""Equity-curve points waiting to be written, as three columns of raw numbers, and their writes.

A paper session makes one ``paper_equity`` row per bar and writes them in batches
(thousands at a time in a fast replay). Held as tuples, each point was three Python
objects read back from all over the heap when its batch was written; here a point
is three doubles appended to arrays (epoch seconds, equity, cash). The batch writer
takes the arrays as they are: the times become the stored text with numpy, the
numbers go to the driver as one list each.
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.rows import plain, row
from alphaswarm.ledger.schema import paper_equity, to_utc
from alphaswarm.ledger.tablewrites import upsert_columns

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from sqlalchemy.engine import Connection

__all__ = ["POINT_COLUMNS", "EquityPoints", "split_equity", "upsert_points"]

#: The columns of the ``paper_equity`` rows a batch's points are written as.
POINT_COLUMNS = ("paper_run_id", "ts", "equity", "cash")
#: Number types an equity point's values are stored as they are.
_NUMBERS = frozenset({float, int})

#: Epoch seconds within which a double holds every microsecond (the year 2255).
_EXACT_SECONDS = 2**53 / 1e6


def _seconds(ts: datetime) -> float:
    """Epoch seconds of ``ts`` (a naive time is UTC, as the ledger reads it)."""
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).timestamp()


class EquityPoints:
    """Points ``(ts, equity, cash)`` in order, as columns.

    ``ts`` is kept as epoch seconds, which hold a time to the microsecond until
    the year 2255.

    Parameters
    ----------
    points : iterable of (datetime, float, float), optional
        Points to start with.
    """

    __slots__ = ("cash", "equity", "seconds")

    def __init__(self, points: Iterable[tuple[datetime, float, float]] = ()) -> None:
        #: Epoch seconds of each point's time.
        self.seconds = array("d")
        #: Equity of each point.
        self.equity = array("d")
        #: Cash of each point.
        self.cash = array("d")
        for ts, equity, cash in points:
            self.append(ts, equity, cash)

    def append(self, ts: datetime, equity: float, cash: float) -> None:
        """Add the point of ``ts`` at the end.

        Raises
        ------
        TypeError
            When ``ts`` is not a datetime or a number is not a real number.
        ValueError
            When ``ts`` is more than 2**53 microseconds from 1970 (past 2255).
        """
        if type(ts) is datetime and ts.tzinfo is UTC:
            seconds = ts.timestamp()
        elif isinstance(ts, datetime):
            seconds = _seconds(ts)
        else:
            raise TypeError(f"equity point: ts must be a datetime, got {type(ts).__name__}")
        if not -_EXACT_SECONDS < seconds < _EXACT_SECONDS:
            raise ValueError(f"equity point: {ts} is past the year 2255")
        self.seconds.append(seconds)
        self.equity.append(equity)
        self.cash.append(cash)

    def __len__(self) -> int:
        return len(self.seconds)

    def copy(self) -> EquityPoints:
        """A copy (the arrays copied)."""
        out = EquityPoints()
        out.seconds, out.equity, out.cash = self.seconds[:], self.equity[:], self.cash[:]
        return out

    def drop_first(self, n: int) -> None:
        """Forget the first ``n`` points (written)."""
        del self.seconds[:n], self.equity[:n], self.cash[:n]

    def set_last(self, ts: datetime, equity: float, cash: float) -> None:
        """Make ``(ts, equity, cash)`` the last point: it replaces a last point of ``ts``."""
        if len(self) and self.seconds[-1] == _seconds(ts):
            self.drop_last()
        self.append(ts, equity, cash)

    def drop_last(self) -> None:
        """Forget the last point."""
        del self.seconds[-1], self.equity[-1], self.cash[-1]

    def times(self) -> np.ndarray:
        """The points' times as ``datetime64[us]`` (UTC instants)."""
        seconds = np.frombuffer(self.seconds, np.float64) if len(self) else np.empty(0)
        return np.rint(seconds * 1e6).astype(np.int64).astype("M8[us]")

    def __iter__(self) -> Iterator[tuple[datetime, float, float]]:
        """The points as ``(ts, equity, cash)`` with aware UTC datetimes."""
        for s, e, c in zip(self.seconds, self.equity, self.cash, strict=True):
            yield datetime.fromtimestamp(s, UTC), e, c

    def __repr__(self) -> str:
        return f"EquityPoints({len(self)} points)"


def split_equity(
    run_id: str, equity: Iterable[Any]
) -> tuple[list[dict[str, Any]], list[tuple[Sequence[Any], ...]]]:
    """Equity rows given as mappings; the points given as ``(ts, equity, cash)`` tuples.

    A paper session hands its points as tuples, one per bar: they are validated and
    written column by column, without a dict per row. The points come back as a list
    of one chunk of :data:`POINT_COLUMNS` (a write of several batches joins the
    chunks), or an empty list.
    """
    if isinstance(equity, EquityPoints):  # a session's points, as columns already
        n = len(equity)
        if not n:
            return [], []
        # the arrays themselves: a group commit holds each session's chunk until it commits
        return [], [((run_id,) * n, equity.times(), equity.equity, equity.cash)]
    rows: list[dict[str, Any]] = []
    points: list[tuple[Any, ...]] = []
    fixed = {"paper_run_id": run_id}
    for e in equity:
        if type(e) is tuple:
            points.append(e)
        else:
            rows.append(row(paper_equity, e, "equity point", fixed=fixed))
    return rows, [_equity_columns(run_id, points)] if points else []


def _equity_columns(run_id: str, points: list[tuple[Any, ...]]) -> tuple[Sequence[Any], ...]:
    """The columns (:data:`POINT_COLUMNS`) of ``(ts, equity, cash)`` tuples."""
    if set(map(len, points)) != {3}:
        raise LedgerError("equity point: a tuple must be (ts, equity, cash)")
    ts, equity, cash = zip(*points, strict=True)
    if not all(type(t) is datetime and t.tzinfo is UTC for t in ts):
        try:
            ts = tuple(map(to_utc, ts))
        except ValueError as exc:
            raise LedgerError(f"equity point: {exc}") from None
        if None in ts:
            raise LedgerError("equity point: 'ts' is required")
    if not _NUMBERS.issuperset(map(type, equity)):
        equity = tuple(map(plain, equity))
    if not _NUMBERS.issuperset(map(type, cash)):
        cash = tuple(map(plain, cash))
    return (run_id,) * len(ts), ts, equity, cash


def upsert_points(conn: Connection, chunks: list[tuple[Sequence[Any], ...]]) -> None:
    """Upsert the equity points of one or more batches (chunks of columns) at once."""
    run_ids, times, equity, cash = (
        list(chain.from_iterable(column)) if k != 1 else column
        for k, column in enumerate(zip(*chunks, strict=True))
    )
    columns = {"paper_run_id": run_ids, "ts": _joined_times(times, conn.dialect.name)}
    upsert_columns(conn, paper_equity, {**columns, "equity": equity, "cash": cash})


def _joined_times(chunks: tuple[Sequence[Any], ...], dialect: str) -> Sequence[Any]:
    """The times of several chunks as one column.

    A chunk of a session's :class:`EquityPoints` holds ``datetime64[us]`` instants:
    SQLite's binding formats them at once; anywhere else they become datetimes.
    """
    if dialect == "sqlite" and all(isinstance(c, np.ndarray) for c in chunks):
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    return list(
        chain.from_iterable(_datetimes(c) if isinstance(c, np.ndarray) else c for c in chunks)
    )


def _datetimes(micros: np.ndarray) -> list[datetime]:
    """Aware UTC datetimes of ``datetime64[us]`` instants."""
    return [d.replace(tzinfo=UTC) for d in micros.astype(object)]
