"""Equity-curve points waiting to be written, as three columns of raw numbers.

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

import numpy as np

__all__ = ["EquityPoints"]

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

    def __init__(self, points: tuple[tuple[datetime, float, float], ...] = ()) -> None:
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

    def __iter__(self):  # noqa: ANN204 - a generator of plain tuples
        """The points as ``(ts, equity, cash)`` with aware UTC datetimes."""
        for s, e, c in zip(self.seconds, self.equity, self.cash, strict=True):
            yield datetime.fromtimestamp(s, UTC), e, c

    def __repr__(self) -> str:
        return f"EquityPoints({len(self)} points)"
