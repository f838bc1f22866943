"""Market hours of a live feed: when bars are expected, and how many a gap lost.

* :class:`AlwaysOpen` -- crypto: bars around the clock, every day;
* :class:`ExchangeHours` -- an exchange calendar (``exchange_calendars``, e.g. ``XNYS``)
  with holidays, half days and daylight saving; falls back to the simple
  ``equities`` rule of :mod:`alphaswarm.data.base` (weekdays, 14:30--21:00 UTC)
  when ``exchange_calendars`` is not installed or a time lies outside its range.
"""

from __future__ import annotations

import abc
import contextlib
import math
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from alphaswarm.data.base import DAY, SESSION_OPEN_SECONDS, SESSION_SECONDS, FeedError

__all__ = ["AlwaysOpen", "ExchangeHours", "MarketHours", "market_hours"]


@contextlib.contextmanager
def _quiet() -> Any:
    """exchange_calendars trips pandas deprecation warnings; they are not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


class MarketHours(abc.ABC):
    """When a market trades: :class:`AlwaysOpen` (crypto) or :class:`ExchangeHours`."""

    name = "24x7"

    @abc.abstractmethod
    def is_open(self, when: datetime) -> bool:
        """True when ``when`` (UTC) lies inside a trading session."""

    @abc.abstractmethod
    def next_open(self, when: datetime) -> datetime:
        """The first trading minute at or after ``when``."""

    @abc.abstractmethod
    def expected_between(self, prev: datetime, ts: datetime, interval_seconds: int) -> int:
        """Number of bars the market should have made strictly between ``prev`` and ``ts``.

        Parameters
        ----------
        prev, ts : datetime
            Two consecutive bar times of one symbol (UTC, bar open times).
        interval_seconds : int
            Bar length.

        Returns
        -------
        int
            Missing bars, 0 when the bars are adjacent or the market was closed between.
        """


class AlwaysOpen(MarketHours):
    """A market that never closes (crypto)."""

    name = "24x7"

    def is_open(self, when: datetime) -> bool:
        """Always True."""
        return True

    def next_open(self, when: datetime) -> datetime:
        """``when`` itself."""
        return when

    def expected_between(self, prev: datetime, ts: datetime, interval_seconds: int) -> int:
        """Whole intervals between the two bars, minus one."""
        steps = (ts - prev).total_seconds() / interval_seconds
        return max(0, math.ceil(steps - 1e-9) - 1)


class ExchangeHours(MarketHours):
    """Trading sessions of an exchange calendar.

    Parameters
    ----------
    calendar : str
        An ``exchange_calendars`` name (``XNYS`` for US equities, ``XNAS``, ``XLON`` ...).
    """

    def __init__(self, calendar: str = "XNYS") -> None:
        self.name = calendar
        self._cal: Any = None
        try:
            with _quiet():
                import exchange_calendars as xcals
        except ImportError:  # the simple weekday rule below
            return
        try:
            with _quiet():
                self._cal = xcals.get_calendar(calendar)
                self._bounds = (self._cal.first_minute, self._cal.last_minute)
        except Exception as exc:  # noqa: BLE001 - any lookup failure names the calendar
            raise FeedError(f"calendar: {calendar!r} is not an exchange calendar ({exc})") from exc

    def _in_range(self, when: pd.Timestamp) -> bool:
        return self._cal is not None and self._bounds[0] <= when <= self._bounds[1]

    def is_open(self, when: datetime) -> bool:
        """True inside a session of the calendar (weekday 14:30--21:00 UTC without one)."""
        ts = pd.Timestamp(when).tz_convert(UTC).floor("min")
        if self._in_range(ts):
            with _quiet():
                return bool(self._cal.is_open_on_minute(ts))
        return _simple_open(ts.to_pydatetime())

    def next_open(self, when: datetime) -> datetime:
        """The next session open (``when`` itself while open)."""
        if self.is_open(when):
            return when
        ts = pd.Timestamp(when).tz_convert(UTC)
        if self._in_range(ts):
            with _quiet():
                return self._cal.next_open(ts).to_pydatetime()
        return _simple_next_open(ts.to_pydatetime())

    def expected_between(self, prev: datetime, ts: datetime, interval_seconds: int) -> int:
        """Open bars strictly between ``prev`` and ``ts`` by the calendar."""
        step = timedelta(seconds=interval_seconds)
        lo, hi = pd.Timestamp(prev + step), pd.Timestamp(ts - step)
        if hi < lo:
            return 0
        if interval_seconds >= DAY:
            if self._in_range(lo) and self._in_range(hi):
                with _quiet():
                    sessions = self._cal.sessions_in_range(
                        lo.tz_localize(None).normalize(), hi.tz_localize(None).normalize()
                    )
                return len(sessions) // (interval_seconds // DAY)
            days = pd.bdate_range(lo.normalize(), hi.normalize())
            return len(days) // (interval_seconds // DAY)
        if self._in_range(lo) and self._in_range(hi):
            with _quiet():
                minutes = self._cal.minutes_in_range(lo, hi)
            if interval_seconds <= 60:
                return len(minutes)
            return math.ceil(len(minutes) * 60 / interval_seconds)
        count, t = 0, lo.to_pydatetime()
        while t <= hi and count < 100_000:
            count += _simple_open(t)
            t += step
        return count


def _simple_open(when: datetime) -> bool:
    seconds = when.hour * 3600 + when.minute * 60 + when.second
    return (
        when.weekday() < 5
        and SESSION_OPEN_SECONDS <= seconds < SESSION_OPEN_SECONDS + SESSION_SECONDS
    )


def _simple_next_open(when: datetime) -> datetime:
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(8):
        opening = day + timedelta(seconds=SESSION_OPEN_SECONDS)
        if day.weekday() < 5 and opening >= when:
            return opening
        day += timedelta(days=1)
    return when


def market_hours(calendar: str | None) -> MarketHours:
    """The hours a ``calendar`` name stands for.

    Parameters
    ----------
    calendar : str or None
        ``24x7`` (or None) for :class:`AlwaysOpen`; ``equities`` for the NYSE calendar;
        any other name is looked up in ``exchange_calendars``.
    """
    if calendar in (None, "24x7"):
        return AlwaysOpen()
    return ExchangeHours("XNYS" if calendar == "equities" else calendar)
