"""Feed base class: the one interface every source of bars implements.

A feed holds (or generates) OHLCV bars of a fixed set of symbols on one interval
and calendar. It hands them out two ways:

* :meth:`Feed.frame` -- a long pandas DataFrame, for vectorised research;
* :meth:`Feed.groups` -- lists of :class:`~alphaswarm.model.Bar` sharing a
  timestamp, in time order, for the engine's bar loop;
* :meth:`Feed.arrays` -- the same bars as one array per field and symbol, with
  the group (timestamp) each bar belongs to, for the vectorized backtest.

Internally every feed produces *blocks*: column arrays (int64 epoch nanoseconds,
symbols, float prices) sorted by ``(ts, symbol)`` and holding whole timestamp
groups. ``frame`` and ``groups`` are built on blocks, so a subclass only has to
implement :meth:`Feed._blocks`.
"""

from __future__ import annotations

import abc
import functools
import math
import re
from array import array
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from alphaswarm.model import Bar

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "CALENDARS",
    "Feed",
    "FeedArrays",
    "FeedError",
    "GroupCursor",
    "SymbolArrays",
    "format_interval",
    "parse_interval",
]

CALENDARS = ("equities", "24x7")
"""Calendars a feed can follow.

``equities`` means weekdays only and, for intraday intervals, bars between 14:30 and
21:00 UTC (390 one-minute bars a day; holidays and daylight saving are ignored).
``24x7`` means bars around the clock, every day.
"""

DAY = 86_400
SESSION_OPEN_SECONDS = 14 * 3600 + 30 * 60  # 14:30 UTC
SESSION_SECONDS = 390 * 60  # 14:30 -> 21:00
TRADING_DAYS_PER_YEAR = 252
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
_INTERVAL_RE = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)


class FeedError(ValueError):
    """Raised for every data problem: bad files, bad columns, bad rows, bad settings.

    The message names the file (or source), the column and the row when they apply.
    """


def parse_interval(interval: Any) -> int:
    """Return the length of a bar interval in seconds.

    Parameters
    ----------
    interval : str
        ``"<n><unit>"`` with unit ``s``, ``m`` (or ``min``), ``h``, ``d`` or ``w``,
        e.g. ``"1m"``, ``"5m"``, ``"1h"``, ``"1d"``.

    Returns
    -------
    int
        Seconds per bar, > 0.

    Raises
    ------
    FeedError
        If the string is not a valid interval.
    """
    match = _INTERVAL_RE.match(interval) if isinstance(interval, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise FeedError(
            f"interval: {interval!r} is not an interval; use <n><unit> with unit s, m, h, d "
            "or w, e.g. '1m', '5m', '1h', '1d'"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_interval(seconds: int) -> str:
    """Return the canonical interval string for a number of seconds (``60 -> "1m"``)."""
    for unit, size in (("w", 7 * DAY), ("d", DAY), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def bars_per_session(interval_seconds: int) -> int:
    """Number of intraday bars of an equities session (390 for ``1m``, 1 for daily)."""
    if interval_seconds >= DAY:
        return 1
    return math.ceil(SESSION_SECONDS / interval_seconds)


def to_ns(value: Any, *, name: str, end: bool = False) -> int:
    """Convert a date/timestamp bound to epoch nanoseconds (UTC).

    Naive values are taken as UTC. With ``end=True`` a bare date (a ``date`` object
    or a string without a time part) means the *end* of that day, so ``end`` bounds
    are inclusive of the whole day.
    """
    try:
        day_only = (isinstance(value, date) and not isinstance(value, datetime)) or (
            isinstance(value, str) and len(value.strip()) <= 10
        )
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise FeedError(f"{name}: cannot interpret {value!r} as a date or timestamp") from exc
    if ts is pd.NaT:
        raise FeedError(f"{name}: cannot interpret {value!r} as a date or timestamp")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    ns = int(ts.as_unit("ns").value)
    if end and day_only:
        ns += DAY * 10**9 - 1
    return ns


@dataclass(frozen=True, slots=True)
class Block:
    """Column arrays of whole timestamp groups, sorted by ``(ts, symbol)``.

    ``ts`` is int64 epoch nanoseconds (UTC); ``symbol`` an object array of str; the
    price and volume columns float64.
    """

    ts: np.ndarray
    symbol: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: Any) -> Block:
        """Return the rows selected by a slice, mask or index array."""
        return Block(
            self.ts[index],
            self.symbol[index],
            self.open[index],
            self.high[index],
            self.low[index],
            self.close[index],
            self.volume[index],
        )

    @staticmethod
    def concat(blocks: list[Block]) -> Block:
        """Concatenate blocks (in order)."""
        if not blocks:
            empty = np.empty(0)
            return Block(np.empty(0, np.int64), np.empty(0, object), *(empty,) * 5)
        if len(blocks) == 1:
            return blocks[0]
        cols = ("ts", "symbol", "open", "high", "low", "close", "volume")
        return Block(*(np.concatenate([getattr(b, c) for b in blocks]) for c in cols))


def group_starts(ts: np.ndarray) -> np.ndarray:
    """Indices where a new timestamp group starts in a sorted ts array."""
    if len(ts) == 0:
        return np.empty(0, np.intp)
    return np.concatenate(([0], np.flatnonzero(ts[1:] != ts[:-1]) + 1))


#: Rows of a block turned into Bar objects at a time by :meth:`Feed.groups` (bounds memory).
GROUPS_SLICE = 1 << 16


@dataclass(frozen=True, slots=True)
class SymbolArrays:
    """The bars of one symbol as arrays, with the group each bar belongs to.

    Attributes
    ----------
    symbol : str
        The symbol.
    group : ndarray or None
        Index (into :attr:`FeedArrays.ts`) of the group of each bar, increasing;
        ``None`` when the symbol has a bar in every group (bar ``i`` is in group ``i``).
    open, high, low, close, volume : ndarray
        float64 fields, one value per bar (possibly strided views).
    """

    symbol: str
    group: np.ndarray | None
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.close)

    def groups(self) -> np.ndarray:
        """Group index of each bar (``arange`` when the symbol is in every group)."""
        return np.arange(len(self.close)) if self.group is None else self.group


@dataclass(frozen=True, slots=True)
class FeedArrays:
    """Bars of a read as arrays, aligned on the union of timestamps.

    ``ts[g]`` is the time of group ``g``: the bars :meth:`Feed.groups` would yield
    as its ``g``-th list, in the same order (symbols sorted within a group).

    Attributes
    ----------
    ts : ndarray
        int64 epoch nanoseconds (UTC) of each group, strictly increasing.
    symbols : list of SymbolArrays
        One entry per symbol present, sorted by symbol (the order within a group).
    n_bars : int
        Number of bars, all symbols together.
    """

    ts: np.ndarray
    symbols: list[SymbolArrays]
    n_bars: int

    @property
    def aligned(self) -> bool:
        """True when every symbol has a bar in every group."""
        return all(s.group is None for s in self.symbols)

    def take_groups(self, lo: int, hi: int) -> FeedArrays:
        """The bars of groups ``lo .. hi - 1`` (renumbered from 0), as views where possible."""
        out = []
        n_bars = 0
        for s in self.symbols:
            if s.group is None:
                a, b, group = lo, hi, None
            else:
                a, b = (int(i) for i in np.searchsorted(s.group, [lo, hi]))
                group = s.group[a:b] - lo
                if len(group) == hi - lo:
                    group = None
            if b > a:
                fields = (s.open, s.high, s.low, s.close, s.volume)
                out.append(SymbolArrays(s.symbol, group, *(f[a:b] for f in fields)))
                n_bars += b - a
        return FeedArrays(self.ts[lo:hi], out, n_bars)


class Feed(abc.ABC):
    """Source of OHLCV bars for a fixed set of symbols.

    Parameters
    ----------
    symbols : list of str
        Symbols the feed serves.
    interval : str
        Bar interval, e.g. ``"1m"`` or ``"1d"``.
    calendar : str
        ``"equities"`` (weekdays, 14:30--21:00 UTC intraday) or ``"24x7"``.

    Notes
    -----
    Bars with an interval of a day or longer are stamped at 00:00 UTC of their date.
    """

    kind: ClassVar[str] = "feed"
    #: Whether :meth:`arrays` serves exactly what :meth:`groups` yields, so a backtest
    #: may run on arrays (the vectorized path); feeds with their own delivery keep False.
    supports_arrays: ClassVar[bool] = False

    def __init__(self, symbols: Iterable[str], interval: str, calendar: str) -> None:
        self.symbols: list[str] = check_symbols(symbols)
        self.interval_seconds: int = parse_interval(interval)
        self.interval: str = format_interval(self.interval_seconds)
        if calendar not in CALENDARS:
            raise FeedError(f"calendar: {calendar!r} is not one of {', '.join(CALENDARS)}")
        self.calendar: str = calendar
        if self.interval_seconds >= DAY and self.interval_seconds % DAY:
            raise FeedError(
                f"interval: {interval!r} is longer than a day but not a whole number of days"
            )

    # -- derived properties -------------------------------------------------------

    @property
    def periods_per_year(self) -> float:
        """Bars per year, for annualising returns (1m equities = 252 * 390)."""
        if self.calendar == "24x7":
            return 365 * DAY / self.interval_seconds
        if self.interval_seconds >= DAY:
            return TRADING_DAYS_PER_YEAR / (self.interval_seconds // DAY)
        return float(TRADING_DAYS_PER_YEAR * bars_per_session(self.interval_seconds))

    @property
    def bounded(self) -> bool:
        """False when the feed can deliver bars forever (unbounded synthetic feed)."""
        return True

    # -- the interface subclasses implement ----------------------------------------

    @abc.abstractmethod
    def _blocks(self, start: int | None, end: int | None) -> Iterator[Block]:
        """Yield blocks with ``start <= ts <= end`` (epoch ns, None = open) in time order.

        Every block holds whole timestamp groups, so a group never straddles blocks.
        """

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Short content hash of the feed's identity, for caches and sweep keys."""

    # -- public API ----------------------------------------------------------------

    def covers(self, symbols: Iterable[str]) -> list[str]:
        """Return the symbols of ``symbols`` this feed cannot serve (empty = all served).

        Parameters
        ----------
        symbols : iterable of str
            Symbols a bot trades.

        Returns
        -------
        list of str
            The missing ones, in the order given.
        """
        have = set(self.symbols)
        return [s for s in symbols if s not in have]

    def frame(self, start: Any = None, end: Any = None, limit: int | None = None) -> pd.DataFrame:
        """Bars as a long DataFrame.

        Parameters
        ----------
        start, end : str, datetime, date or pandas.Timestamp, optional
            Inclusive bounds; a bare date as ``end`` includes that whole day.
        limit : int, optional
            Maximum number of timestamps (groups) to return.

        Returns
        -------
        pandas.DataFrame
            Columns ``ts`` (datetime64[ns, UTC]), ``symbol``, ``open``, ``high``,
            ``low``, ``close``, ``volume``, sorted by ``(ts, symbol)``.
        """
        block = Block.concat(list(self._read(start, end, limit)))
        ts = pd.DatetimeIndex(block.ts.view("M8[ns]")).tz_localize("UTC")
        return pd.DataFrame(
            {
                "ts": ts,
                "symbol": pd.array(block.symbol, dtype="str"),
                "open": block.open,
                "high": block.high,
                "low": block.low,
                "close": block.close,
                "volume": block.volume,
            }
        )

    def groups(
        self, start: Any = None, end: Any = None, limit: int | None = None
    ) -> Iterator[list[Bar]]:
        """Yield the bars of all symbols sharing a timestamp, one list per timestamp.

        Parameters
        ----------
        start, end : str, datetime, date or pandas.Timestamp, optional
            Inclusive bounds; a bare date as ``end`` includes that whole day.
        limit : int, optional
            Maximum number of groups (timestamps) to yield.

        Yields
        ------
        list of Bar
            Bars of one timestamp, sorted by symbol, in time order.
        """
        for big in self._read(start, end, limit, stream=True):
            for block in _slices(big, GROUPS_SLICE):
                yield from _bar_groups(block)

    def cursor(self, start: Any = None, end: Any = None, limit: int | None = None) -> GroupCursor:
        """The groups :meth:`groups` yields, with the next one's time known before it is made.

        A paced session waits between two bars knowing only when the next one is
        due; its bars are made when the wait is over, so nothing made for them
        outlives the young garbage collections during the wait.

        Parameters
        ----------
        start, end : str, datetime, date or pandas.Timestamp, optional
            Inclusive bounds; a bare date as ``end`` includes that whole day.
        limit : int, optional
            Maximum number of groups (timestamps).

        Returns
        -------
        GroupCursor
            ``peek()`` gives the next group's time (None after the last group),
            ``take()`` the group itself.
        """
        blocks = self._read(start, end, limit, stream=True)
        return GroupCursor(
            _BarGroups(block) for big in blocks for block in _slices(big, GROUPS_SLICE)
        )

    def replay_groups(
        self, start: Any = None, end: Any = None, limit: int | None = None
    ) -> Iterator[list[Bar]]:
        """The groups :meth:`groups` yields, from generators, for a full-speed run.

        The same bars in the same order, each made when asked for, for a consumer
        that runs through them as fast as it can (a backtest): resuming the
        generator costs less per timestamp than :meth:`groups`' iterator, whose
        smaller suspended state suits a paced session that holds it for hours.

        Parameters
        ----------
        start, end : str, datetime, date or pandas.Timestamp, optional
            Inclusive bounds; a bare date as ``end`` includes that whole day.
        limit : int, optional
            Maximum number of groups (timestamps) to yield.

        Yields
        ------
        list of Bar
            Bars of one timestamp, sorted by symbol, in time order.
        """
        # chained in C: a generator delegating with ``yield from`` costs a resumption of
        # its own for every group
        return chain.from_iterable(self._group_streams(start, end, limit))

    def _group_streams(self, start: Any, end: Any, limit: int | None) -> Iterator[Any]:
        """One generator of groups per slice of the bars read (see :meth:`replay_groups`)."""
        for big in self._read(start, end, limit, stream=True):
            for block in _slices(big, GROUPS_SLICE):
                yield _BarGroups(block).stream()

    def arrays(self, start: Any = None, end: Any = None, limit: int | None = None) -> FeedArrays:
        """The bars :meth:`groups` would yield, as arrays per symbol (no Bar objects).

        Parameters
        ----------
        start, end : str, datetime, date or pandas.Timestamp, optional
            Inclusive bounds; a bare date as ``end`` includes that whole day.
        limit : int, optional
            Maximum number of groups (timestamps).

        Returns
        -------
        FeedArrays
            Group timestamps and, per symbol, its fields and the group of each bar.

        Raises
        ------
        FeedError
            For an unbounded read (give ``limit`` or ``end``) and bad bounds.
        """
        block = Block.concat(list(self._read(start, end, limit)))
        ts = block.ts
        starts = group_starts(ts)
        n_groups = len(starts)
        fields = ("open", "high", "low", "close", "volume")
        if len(block) == 0:
            return FeedArrays(np.empty(0, np.int64), [], 0)
        if len(self.symbols) == 1 and n_groups == len(block):
            cols = [getattr(block, f) for f in fields]
            return FeedArrays(ts, [SymbolArrays(str(block.symbol[0]), None, *cols)], len(block))
        k = len(self.symbols)
        names = sorted(self.symbols)
        if len(block) == n_groups * k and block.symbol[:k].tolist() == names:
            # k distinct symbols (a group never repeats one) out of the feed's k in every
            # group, sorted: column j of a (groups, k) view is the j-th symbol
            shaped = [getattr(block, f).reshape(n_groups, k) for f in fields]
            out = [SymbolArrays(s, None, *(a[:, j] for a in shaped)) for j, s in enumerate(names)]
            return FeedArrays(ts[starts], out, len(block))
        codes, uniques = pd.factorize(block.symbol)
        names = [str(u) for u in uniques]
        counts = np.bincount(codes, minlength=len(names))
        ranked = sorted(range(len(names)), key=names.__getitem__)
        out: list[SymbolArrays] = []
        if len(block) == n_groups * len(names) and bool((counts == n_groups).all()):
            # every group holds every symbol, sorted: column j of a (groups, k) view is
            # the j-th symbol in sorted order
            k = len(names)
            shaped = [getattr(block, f).reshape(n_groups, k) for f in fields]
            for j, code in enumerate(ranked):
                out.append(SymbolArrays(names[code], None, *(a[:, j] for a in shaped)))
            return FeedArrays(ts[starts], out, len(block))
        group = np.repeat(np.arange(n_groups), np.diff(np.append(starts, len(ts))))
        order = np.argsort(codes, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for code in ranked:
            rows = order[bounds[code] : bounds[code + 1]]
            grp = group[rows]
            out.append(
                SymbolArrays(
                    names[code],
                    None if len(rows) == n_groups else grp,
                    *(getattr(block, f)[rows] for f in fields),
                )
            )
        return FeedArrays(ts[starts], out, len(block))

    # -- helpers -------------------------------------------------------------------

    def _read(
        self, start: Any, end: Any, limit: int | None, *, stream: bool = False
    ) -> Iterator[Block]:
        """Blocks within the bounds, cut after ``limit`` timestamps.

        Without ``stream`` an unbounded read (unbounded feed, no ``limit``, no ``end``)
        is refused instead of running forever.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0
        ):
            raise FeedError(f"limit: expected an integer >= 0, got {limit!r}")
        lo = None if start is None else to_ns(start, name="start")
        hi = None if end is None else to_ns(end, name="end", end=True)
        if lo is not None and hi is not None and lo > hi:
            raise FeedError(f"start/end: start {start!r} is after end {end!r}")
        if limit is None and hi is None and not stream and not self.bounded:
            raise FeedError(f"{self!r} is unbounded: give limit= or end= (or build it with bars=)")
        if limit == 0:
            return
        remaining = limit
        for block in self._blocks(lo, hi):
            if len(block) == 0:
                continue
            if remaining is not None:
                starts = group_starts(block.ts)
                if len(starts) >= remaining:
                    cut = starts[remaining] if len(starts) > remaining else len(block)
                    yield block.take(slice(0, cut))
                    return
                remaining -= len(starts)
            yield block

    def __repr__(self) -> str:
        syms = ",".join(self.symbols[:5]) + (",..." if len(self.symbols) > 5 else "")
        return f"{type(self).__name__}([{syms}], interval={self.interval!r})"


class _BarGroups:
    """The Bar lists of a block, one per timestamp: an iterator with slots.

    A paced session holds its block for hours, and the block's arrays are shared
    with every other session and backtest of the same feed. The bars are made
    :data:`STAMP_CHUNK` timestamps at a time: that chunk's timestamps become
    datetimes (an object array, which the garbage collector does not track) and
    its prices and volumes are copied into one ``array.array`` of raw numbers,
    five per bar (open, high, low, close, volume; the collector never walks it,
    and it indexes to plain floats), so a session holds one chunk of its own, not
    a copy of the block.

    A class rather than a generator: a suspended generator keeps a frame, its
    closure cells and an iterator per column alive for every running session, each
    one an object a full collection visits.
    """

    __slots__ = ("_block", "_width", "_r0", "_stamps", "_values", "_names", "_codes", "_edges",
                 "_g", "_n")  # fmt: skip

    def __init__(self, block: Block) -> None:
        ts = block.ts
        self._block: Block | None = block
        # rows per chunk: STAMP_CHUNK times the first group's size
        self._width = STAMP_CHUNK * int(np.searchsorted(ts, ts[0], "right")) if len(ts) else 0
        self._r0 = 0
        self._stamps: np.ndarray = _NO_STAMPS
        self._values: array | None = None
        self._names: tuple[str, ...] = ()
        self._codes: array | None = None
        self._edges: array | None = None  # None: one symbol, one bar per timestamp
        self._g = 0
        self._n = 0

    def __iter__(self) -> _BarGroups:
        return self

    def __next__(self) -> list[Bar]:
        g = self._g
        if g >= self._n:
            self._next_chunk()
            g = 0
        self._g = g + 1
        ts = self._stamps[g]
        v = self._values
        edges = self._edges
        if edges is None:
            i = 5 * g
            bar = _new(Bar)  # Bar.trusted inlined: one call less per bar
            bar.symbol, bar.ts = self._names[0], ts
            bar.open, bar.high, bar.low, bar.close, bar.volume = (
                v[i], v[i + 1], v[i + 2], v[i + 3], v[i + 4]
            )  # fmt: skip
            return [bar]
        names, code, trusted = self._names, self._codes, Bar.trusted
        return [
            trusted(names[code[i]], ts, v[5 * i], v[5 * i + 1], v[5 * i + 2], v[5 * i + 3],
                    v[5 * i + 4])
            for i in range(edges[g], edges[g + 1])
        ]  # fmt: skip

    def peek(self) -> datetime | None:
        """The time of the next group, or None after the last (no Bar is made)."""
        if self._g >= self._n:
            try:
                self._next_chunk()
            except StopIteration:
                return None
        return self._stamps[self._g]

    def stream(self) -> Iterator[list[Bar]]:
        """The remaining groups from a generator (see :meth:`Feed.replay_groups`).

        Resuming a generator costs less than a call of :meth:`__next__`; each bar
        is still made when its group is asked for and dropped after it, so nothing
        piles up for the garbage collector.
        """
        new, trusted = _new, Bar.trusted
        while True:
            try:
                self._next_chunk()
            except StopIteration:
                return
            stamps = self._stamps.tolist()
            self._g = self._n  # this chunk is handed out by the generator
            v, edges, names = self._values, self._edges, self._names
            if edges is None:  # one symbol, one bar per timestamp
                symbol = names[0]
                columns = (v[k::5].tolist() for k in range(5))
                for ts, o, h, lo, c, vol in zip(stamps, *columns, strict=True):
                    bar = new(Bar)  # one store per field: no tuple built and unpacked
                    bar.symbol = symbol
                    bar.ts = ts
                    bar.open = o
                    bar.high = h
                    bar.low = lo
                    bar.close = c
                    bar.volume = vol
                    yield [bar]
            else:
                code = self._codes
                for g, ts in enumerate(stamps):
                    yield [
                        trusted(names[code[i]], ts, v[5 * i], v[5 * i + 1], v[5 * i + 2],
                                v[5 * i + 3], v[5 * i + 4])
                        for i in range(edges[g], edges[g + 1])
                    ]  # fmt: skip

    def _next_chunk(self) -> None:
        """Convert the next :data:`STAMP_CHUNK` groups; StopIteration after the last."""
        block = self._block
        n = 0 if block is None else len(block)
        r0 = self._r0
        if block is None or r0 >= n:
            self._block = self._values = self._codes = self._edges = None
            self._stamps, self._n = _NO_STAMPS, 0
            raise StopIteration
        ts = block.ts
        r1 = min(r0 + self._width, n)
        if r1 < n:  # back to a group boundary; a group larger than the window is one window
            r1 = r0 + int(np.searchsorted(ts[r0:r1], ts[r1], "left"))
            if r1 == r0:
                r1 = r0 + int(np.searchsorted(ts[r0:], ts[r0], "right"))
        self._r0 = r1
        ts_ns = ts[r0:r1]
        starts = group_starts(ts_ns)
        self._stamps = _chunk_datetimes(ts_ns[starts])
        self._n = len(starts)
        cols = (block.open, block.high, block.low, block.close, block.volume)
        self._values = _numbers("d", np.column_stack([col[r0:r1] for col in cols]))
        self._names, codes = _symbol_codes(block.symbol[r0:r1])
        if len(self._names) == 1 and len(starts) == r1 - r0:
            self._codes = self._edges = None
        else:
            self._codes = _numbers("q", codes)
            self._edges = _numbers("q", np.append(starts, r1 - r0))
        self._g = 0


_new = object.__new__
_NO_STAMPS = np.empty(0, dtype=object)


class GroupCursor:
    """A feed's groups, one at a time, with the next group's time readable first.

    Made by :meth:`Feed.cursor`.
    """

    __slots__ = ("_parts", "_part")

    def __init__(self, parts: Iterator[_BarGroups]) -> None:
        self._parts = parts
        self._part: _BarGroups | None = None

    def peek(self) -> datetime | None:
        """The time of the next group, or None after the last one."""
        while True:
            part = self._part
            if part is not None:
                ts = part.peek()
                if ts is not None:
                    return ts
            part = self._part = next(self._parts, None)
            if part is None:
                return None

    def take(self) -> list[Bar] | None:
        """The next group's bars (sorted by symbol), or None after the last one."""
        if self.peek() is None:
            return None
        return next(self._part)


def _bar_groups(block: Block) -> Iterator[list[Bar]]:
    """The Bar lists of a block, one per timestamp (see :class:`_BarGroups`)."""
    return _BarGroups(block)


#: Group timestamps turned into Bar inputs at a time by :func:`_bar_groups`.
#: One conversion of a whole 65,536-group block took 34 ms and 3 MiB before a paced
#: session's first bar; a chunk costs well under a millisecond, and as little per stamp.
STAMP_CHUNK = 1024


def _chunk_datetimes(ts_ns: np.ndarray) -> np.ndarray:
    """UTC datetimes of nanosecond timestamps, in an object array (not GC-tracked).

    Whole-second stamps (every bar interval the feeds serve) are made without
    pandas, about a third faster; stamps on a grid of a common step (minute bars,
    gaps included) are the first stamp plus a cached offset, a third of the time
    again (``datetime + timedelta`` costs less than ``datetime.fromtimestamp``).
    """
    seconds, rest = np.divmod(ts_ns, 1_000_000_000)
    if rest.any():
        return pd.DatetimeIndex(ts_ns.view("M8[ns]")).tz_localize(UTC).to_pydatetime()
    n = len(seconds)
    offsets = seconds - seconds[0] if n else seconds
    step = int(np.gcd.reduce(offsets)) if n > 1 else 0
    # fromiter: a tenth of the time of assigning a list into an object array
    if step > 0 and offsets[-1] // step < MAX_GRID_OFFSETS:
        base = datetime.fromtimestamp(int(seconds[0]), UTC)
        grid = _grid_offsets(step)
        return np.fromiter((base + grid[k] for k in (offsets // step).tolist()), object, n)
    from_seconds = datetime.fromtimestamp
    return np.fromiter((from_seconds(s, UTC) for s in seconds.tolist()), object, n)


#: Longest grid of cached offsets (steps from a chunk's first stamp): 16,384 minutes
#: cover a chunk of minute bars across weekends and holidays.
MAX_GRID_OFFSETS = 16_384


@functools.lru_cache(maxsize=4)
def _grid_offsets(step: int) -> tuple[timedelta, ...]:
    """``timedelta(seconds=k * step)`` for every k below :data:`MAX_GRID_OFFSETS`."""
    return tuple(timedelta(seconds=k * step) for k in range(MAX_GRID_OFFSETS))


def _symbol_codes(symbols: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """The distinct symbols of a block and each row's index into them (a hash, no sort)."""
    if len(symbols) and (symbols == symbols[0]).all():
        return (str(symbols[0]),), np.zeros(len(symbols), np.int64)
    codes, names = pd.factorize(symbols)
    return tuple(str(name) for name in names), codes


def _numbers(typecode: str, values: np.ndarray) -> array:
    """``values`` as an ``array.array`` of ``typecode`` (``"d"`` float64, ``"q"`` int64)."""
    out = array(typecode)
    dtype = np.float64 if typecode == "d" else np.int64
    out.frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return out


def _slices(block: Block, size: int) -> Iterator[Block]:
    """Cut ``block`` into pieces of about ``size`` rows holding whole timestamp groups."""
    if len(block) <= size:
        yield block
        return
    starts = group_starts(block.ts)
    at = np.searchsorted(starts, np.arange(size, len(block), size))  # first group at/after
    cuts = starts[at[at < len(starts)]]
    edges = np.unique(np.concatenate(([0], cuts, [len(block)]))).tolist()
    del starts, at, cuts  # held while the slices are handed out otherwise
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        yield block.take(slice(a, b))


def check_symbols(symbols: Any) -> list[str]:
    if isinstance(symbols, str):
        symbols = [symbols]
    try:
        out = list(symbols)
    except TypeError:
        raise FeedError(f"symbols: expected a list of strings, got {symbols!r}") from None
    if not out:
        raise FeedError("symbols: at least one symbol is required")
    for s in out:
        if not isinstance(s, str) or not s.strip():
            raise FeedError(f"symbols: expected non-empty strings, got {s!r}")
    dupes = sorted({s for s in out if out.count(s) > 1})
    if dupes:
        raise FeedError(f"symbols: duplicated {', '.join(dupes)}")
    return out
