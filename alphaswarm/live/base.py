"""Live feeds: an async source of the same :class:`~alphaswarm.model.Bar` groups.

A :class:`LiveFeed` is a :class:`~alphaswarm.data.base.Feed` (its ``groups()`` and
``frame()`` serve the provider's *historical* bars, for backtests and warm-up) that
can also :meth:`~LiveFeed.stream` bars as the market makes them. A stream hands out
two kinds of items, in order:

* a :class:`BarGroup` -- a list of bars sharing a bar time, with the wall-clock
  arrival time of each bar beside it;
* a :class:`FeedEvent` -- ``gap``, ``stalled``, ``resumed``, ``connected``,
  ``disconnected``, ``reconnected``, ``waiting`` (market closed) or ``end``.

The connection is the subclass's business (:meth:`LiveFeed._open`,
:meth:`LiveFeed._receive`, :meth:`LiveFeed._close`); everything else lives here
and is the same for every provider: reconnect with exponential backoff and
jitter (the subclass resubscribes in ``_open``), de-duplication by
``(symbol, bar time)`` across reconnects, out-of-order bars dropped and counted,
malformed messages counted and skipped, gap detection by the market's calendar,
stall detection, and the visible :class:`FeedState`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from alphaswarm.data.base import Feed, FeedError
from alphaswarm.live.hours import AlwaysOpen, MarketHours

if TYPE_CHECKING:
    from collections.abc import Iterable

    from alphaswarm.live.recording import Recorder
    from alphaswarm.model import Bar

__all__ = [
    "BarGroup",
    "BarSequencer",
    "FeedAuthError",
    "FeedEvent",
    "FeedState",
    "LiveFeed",
    "LiveStream",
    "Malformed",
]

log = logging.getLogger(__name__)

#: Keys every live ``data:`` block may hold, beside the provider's own.
LIVE_KEYS = (
    "stall_seconds",
    "halt_on_stall",
    "group_grace",
    "gap_tolerance",
    "backoff_base",
    "backoff_max",
    "max_reconnects",
    "record",
)


class FeedAuthError(FeedError):
    """The provider refused the credentials; never retried."""


@dataclass(slots=True)
class Malformed:
    """A message the adapter could not read (counted and skipped)."""

    reason: str


@dataclass(slots=True)
class FeedEvent:
    """Something that happened to the feed, beside the bars.

    Parameters
    ----------
    kind : str
        ``gap``, ``stalled``, ``resumed``, ``connected``, ``disconnected``,
        ``reconnected``, ``waiting`` or ``end``.
    message : str
        A human sentence.
    at : float
        Wall-clock epoch seconds when it happened.
    symbol : str, optional
        The symbol concerned (gaps).
    data : dict
        Kind-specific details (``missing``, ``from_ts``, ``to_ts`` of a gap ...).
    """

    kind: str
    message: str
    at: float
    symbol: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class BarGroup(list):
    """Bars of one bar time (a plain list for the engine) with their arrival times.

    ``arrivals[i]`` is the wall-clock epoch seconds at which ``self[i]`` arrived.
    """

    __slots__ = ("arrivals",)

    def __init__(self, bars: Iterable[Bar] = (), arrivals: Iterable[float] = ()) -> None:
        super().__init__(bars)
        self.arrivals: list[float] = list(arrivals)

    @property
    def ts(self) -> datetime:
        """The bar time of the group."""
        return self[0].ts

    @property
    def arrived(self) -> float:
        """When the group was complete (the latest arrival)."""
        return max(self.arrivals) if self.arrivals else 0.0


@dataclass
class FeedState:
    """The visible state of a live feed (the session card shows it).

    Counters accumulate over the stream's life; ``last_bar_age`` is computed when
    read by :meth:`to_dict`.
    """

    connected: bool = False
    market_open: bool = True
    stalled: bool = False
    last_bar_ts: datetime | None = None
    last_bar_arrival: float | None = None
    next_bar_expected: datetime | None = None
    bars: int = 0
    groups: int = 0
    gaps: int = 0
    missing_bars: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    malformed: int = 0
    last_error: str = ""

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """JSON-friendly dict with ``last_bar_age`` (seconds since the last bar arrived)."""
        out = asdict(self)
        now = time.time() if now is None else now
        out["last_bar_age"] = (
            None if self.last_bar_arrival is None else max(0.0, now - self.last_bar_arrival)
        )
        for key in ("last_bar_ts", "next_bar_expected"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


class BarSequencer:
    """The provider-independent core: de-duplicate, order, group and find gaps.

    Pure Python, no clock of its own: :meth:`accept` and :meth:`tick` take the
    wall-clock time, so a test drives it bar by bar.

    Parameters
    ----------
    symbols : list of str
        Symbols of the stream; a group is complete when all of them arrived.
    interval_seconds : int
        Bar length.
    hours : MarketHours
        For gap counting (no gap while the market is closed).
    state : FeedState
        Counters to update.
    group_grace : float
        Seconds to wait for the other symbols of a bar time after its first bar.
    gap_tolerance : int
        Missing bars tolerated before a gap is reported.
    """

    def __init__(
        self,
        symbols: list[str],
        interval_seconds: int,
        hours: MarketHours,
        state: FeedState,
        *,
        group_grace: float = 2.0,
        gap_tolerance: int = 0,
    ) -> None:
        self.symbols = set(symbols)
        self.interval_seconds = interval_seconds
        self.hours = hours
        self.state = state
        self.group_grace = group_grace
        self.gap_tolerance = gap_tolerance
        self._last: dict[str, datetime] = {}
        self._emitted_ts: datetime | None = None
        self._pending: dict[datetime, dict[str, tuple[Bar, float]]] = {}
        self._first_arrival: dict[datetime, float] = {}
        self._seen: set[tuple[str, datetime]] = set()
        self._seen_order: deque[tuple[str, datetime]] = deque()

    def _remember(self, key: tuple[str, datetime]) -> None:
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > 20_000:
            self._seen.discard(self._seen_order.popleft())

    def accept(self, bar: Bar, arrival: float) -> list[BarGroup | FeedEvent]:
        """Take one closed bar; return the groups (and gap events) now complete."""
        state = self.state
        key = (bar.symbol, bar.ts)
        if bar.symbol not in self.symbols:
            state.malformed += 1
            return []
        if key in self._seen:
            state.duplicates += 1
            return []
        if self._emitted_ts is not None and bar.ts <= self._emitted_ts:
            state.out_of_order += 1
            return []
        self._remember(key)
        pending = self._pending.setdefault(bar.ts, {})
        self._first_arrival.setdefault(bar.ts, arrival)
        pending[bar.symbol] = (bar, arrival)
        out: list[BarGroup | FeedEvent] = []
        # a later bar time closes every earlier pending group
        for ts in sorted(t for t in self._pending if t < bar.ts):
            out.extend(self._emit(ts))
        if len(pending) == len(self.symbols):
            out.extend(self._emit(bar.ts))
        return out

    def tick(self, now: float) -> list[BarGroup | FeedEvent]:
        """Emit pending groups whose grace has run out."""
        out: list[BarGroup | FeedEvent] = []
        for ts in sorted(self._pending):
            if now - self._first_arrival[ts] >= self.group_grace:
                out.extend(self._emit(ts))
            else:
                break
        return out

    def _emit(self, ts: datetime) -> list[BarGroup | FeedEvent]:
        members = self._pending.pop(ts)
        self._first_arrival.pop(ts, None)
        state = self.state
        out: list[BarGroup | FeedEvent] = []
        group = BarGroup()
        for symbol in sorted(members):
            bar, arrival = members[symbol]
            prev = self._last.get(symbol)
            if prev is not None:
                missing = self.hours.expected_between(prev, ts, self.interval_seconds)
                if missing > self.gap_tolerance:
                    state.gaps += 1
                    state.missing_bars += missing
                    out.append(
                        FeedEvent(
                            "gap",
                            f"{symbol}: {missing} bar(s) missing between "
                            f"{prev.isoformat()} and {ts.isoformat()}",
                            arrival,
                            symbol,
                            {"missing": missing, "from_ts": prev, "to_ts": ts},
                        )
                    )
            self._last[symbol] = ts
            group.append(bar)
            group.arrivals.append(arrival)
        self._emitted_ts = ts
        state.bars += len(group)
        state.groups += 1
        state.last_bar_ts = ts
        state.last_bar_arrival = group.arrived
        out.append(group)
        return out


class LiveFeed(Feed):
    """A feed whose bars come when the market makes them.

    Parameters
    ----------
    symbols : list of str
        Symbols to stream.
    interval : str
        Bar interval (``1m`` ...).
    calendar : str
        ``equities`` or ``24x7`` (see :class:`~alphaswarm.data.base.Feed`).
    hours : MarketHours, optional
        When bars are expected; :class:`~alphaswarm.live.hours.AlwaysOpen` by default.
    stall_seconds : float
        Seconds without a bar, while the market is open, before a ``stalled`` event.
    halt_on_stall : bool
        Whether a session halts on a ``stalled`` event (the session reads it).
    group_grace : float
        Seconds to wait for the other symbols of a bar time.
    gap_tolerance : int
        Missing bars tolerated before a ``gap`` event.
    backoff_base, backoff_max : float
        Reconnect delays: after the n-th failed attempt in a row,
        ``min(backoff_max, backoff_base * 2**(n - 1))`` times a jitter factor drawn
        from ``[0.5, 1]``. An attempt fails until its first message arrives.
    max_reconnects : int, optional
        Give up (the stream fails with a :class:`FeedError`, the session with an
        ``error`` frame) after more than this many failed attempts in a row.
    record : str, optional
        Parquet file recording what the stream handed out (bars with arrival times,
        gaps, reconnects), replayable with ``data: {feed: recording, path: ...}``.
    """

    kind: ClassVar[str] = "live"
    #: False for recorded streams, whose timing follows the session's ``speed``.
    realtime: ClassVar[bool] = True
    #: True when ``_open`` itself exchanges messages with the server (connect, auth,
    #: subscribe acknowledged), so a returned ``_open`` is a connection; otherwise a
    #: connection counts only when ``_receive`` returns its first message.
    connects_in_open: ClassVar[bool] = False

    def __init__(
        self,
        symbols: Iterable[str],
        interval: str = "1m",
        calendar: str = "24x7",
        *,
        hours: MarketHours | None = None,
        stall_seconds: float = 120.0,
        halt_on_stall: bool = False,
        group_grace: float = 2.0,
        gap_tolerance: int = 0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_reconnects: int | None = None,
        record: str | None = None,
    ) -> None:
        super().__init__(symbols, interval, calendar)
        for name, value in (
            ("stall_seconds", stall_seconds),
            ("group_grace", group_grace),
            ("backoff_base", backoff_base),
            ("backoff_max", backoff_max),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise FeedError(f"data.{name}: expected a number >= 0, got {value!r}")
        if not isinstance(halt_on_stall, bool):
            raise FeedError(f"data.halt_on_stall: expected true or false, got {halt_on_stall!r}")
        self.hours: MarketHours = hours or AlwaysOpen()
        self.stall_seconds = float(stall_seconds)
        self.halt_on_stall = halt_on_stall
        self.group_grace = float(group_grace)
        self.gap_tolerance = int(gap_tolerance)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.max_reconnects = max_reconnects
        self.record = record
        self._state = FeedState()

    @property
    def bounded(self) -> bool:
        """Live feeds never end."""
        return False

    # -- what a provider implements --------------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect, authenticate and subscribe to every symbol (called on every reconnect).

        Raises
        ------
        FeedAuthError
            When the provider refuses the credentials (the stream fails at once).
        """

    @abc.abstractmethod
    async def _receive(self) -> list[Bar | Malformed]:
        """Wait for the next message(s); return the *closed* bars (and malformed markers).

        Any exception but :class:`FeedAuthError` means the connection is lost and
        triggers a reconnect.
        """

    @abc.abstractmethod
    async def _close(self) -> None:
        """Close the connection (never raises)."""

    @staticmethod
    async def _close_quietly(client: Any) -> None:
        """``await client.close()`` when there is a client; what it raises is dropped."""
        if client is None:
            return
        try:
            await client.close()
        except Exception:  # noqa: BLE001, S110 - closing never raises
            pass

    def _tick(self, now: float) -> list[Bar]:
        """Bars that close by the passing of time (trades aggregated, idle candles)."""
        return []

    def _public_config(self) -> dict[str, Any]:
        """The provider settings that identify the stream (no secrets)."""
        return {}

    # -- public API ----------------------------------------------------------------

    def fingerprint(self) -> str:
        """Hash of the provider, symbols, interval and public settings (never keys)."""
        ident = {
            "kind": self.kind,
            "symbols": self.symbols,
            "interval": self.interval,
            **self._public_config(),
        }
        blob = json.dumps(ident, sort_keys=True, default=str).encode()
        return f"{self.kind}:{hashlib.sha256(blob).hexdigest()[:16]}"

    def state(self) -> dict[str, Any]:
        """The feed's visible state: connected, last bar age, gaps, reconnects ...

        Returns
        -------
        dict
            :class:`FeedState` fields plus ``last_bar_age`` (seconds) and ``feed``.
        """
        return {"feed": self.kind, **self._state.to_dict()}

    def next_bar_expected(self, now: datetime | None = None) -> datetime:
        """When the next bar should arrive (the next open plus one interval when closed)."""
        now = now or datetime.now(UTC)
        opening = self.hours.next_open(now)
        step = self.interval_seconds
        if opening > now:
            return opening + timedelta(seconds=step)
        epoch = now.timestamp()
        return datetime.fromtimestamp((epoch // step + 1) * step, tz=UTC)

    def stream(self, speed: float = 1.0) -> LiveStream:
        """A new stream of this feed; ``async with`` it, then ``await next()``.

        Parameters
        ----------
        speed : float
            Ignored by real-time feeds; a recording replays at this speed.
        """
        self._state = FeedState()
        recorder = None
        if self.record:
            from alphaswarm.live.recording import Recorder

            recorder = Recorder(self.record, self)
        return LiveStream(self, recorder)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.symbols!r}, interval={self.interval!r})"


class LiveStream:
    """One run of a live feed: a reader task, a watchdog and a queue of items.

    Use as an async context manager; :meth:`next` returns the next
    :class:`BarGroup` or :class:`FeedEvent`, or None after ``timeout`` seconds.
    A fatal error (refused credentials, too many failed reconnects) is raised
    from :meth:`next`.
    """

    def __init__(self, feed: LiveFeed, recorder: Recorder | None = None) -> None:
        self.feed = feed
        self.state = feed._state
        self.recorder = recorder
        self.sequencer = BarSequencer(
            feed.symbols,
            feed.interval_seconds,
            feed.hours,
            self.state,
            group_grace=feed.group_grace,
            gap_tolerance=feed.gap_tolerance,
        )
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._fatal: BaseException | None = None
        self._closed = False
        self._last_bar_wall = time.time()
        self._was_open: bool | None = None
        self._connected_once = False
        #: Every reconnect delay slept, in order (seconds).
        self.retry_delays: list[float] = []

    async def __aenter__(self) -> LiveStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start reading (returns at once; connection errors come through :meth:`next`)."""
        now = time.time()
        self._last_bar_wall = now
        self._check_hours(now, initial=True)
        self._tasks = [
            asyncio.create_task(self._reader(), name=f"{self.feed.kind}-reader"),
            asyncio.create_task(self._watchdog(), name=f"{self.feed.kind}-watchdog"),
        ]

    async def next(self, timeout: float | None = None) -> BarGroup | FeedEvent | None:
        """The next item, or None when ``timeout`` seconds pass without one."""
        if self._queue.empty() and self._fatal is not None:
            raise self._fatal
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            if self._fatal is not None:
                raise self._fatal from None
            return None
        if isinstance(item, BaseException):
            raise item
        if self.recorder is not None:
            self.recorder.add(item)
        return item

    async def close(self) -> None:
        """Stop the tasks, close the connection and write the recording."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.feed._close()
        self.state.connected = False
        if self.recorder is not None:
            self.recorder.close()

    # -- internals -------------------------------------------------------------------

    def _put(self, items: Iterable[BarGroup | FeedEvent]) -> None:
        for item in items:
            if isinstance(item, BarGroup):
                self._last_bar_wall = time.time()
                if self.state.stalled:
                    self.state.stalled = False
                    self._queue.put_nowait(
                        FeedEvent("resumed", "bars resumed", time.time(), data=self._counts())
                    )
            self._queue.put_nowait(item)

    def _counts(self) -> dict[str, Any]:
        s = self.state
        return {
            "gaps": s.gaps,
            "reconnects": s.reconnects,
            "duplicates": s.duplicates,
            "out_of_order": s.out_of_order,
            "malformed": s.malformed,
        }

    def _accept(self, received: list[Any], arrival: float) -> None:
        for item in received:
            if isinstance(item, Malformed):
                self.state.malformed += 1
                log.debug("%s: skipped a malformed message: %s", self.feed.kind, item.reason)
                continue
            self._put(self.sequencer.accept(item, arrival))

    def _fail(self, exc: BaseException) -> None:
        self._fatal = exc
        self.state.last_error = str(exc)
        self._queue.put_nowait(exc)

    async def _reader(self) -> None:
        """Connect, read, and reconnect with backoff until closed or given up.

        A connection counts as made only when its first message arrives: an
        ``_open`` that returns before any socket exists (ccxt connects on the first
        ``watch_*``) and then fails is a failed attempt, not a reconnect. Failed
        attempts in a row grow the delay (:meth:`_backoff`); more than
        ``max_reconnects`` of them fail the stream with a :class:`FeedError`.
        """
        feed, state = self.feed, self.state
        failures = 0  # attempts in a row that brought no message
        while not self._closed:
            got_message = False
            try:
                await feed._open()
                if feed.connects_in_open:
                    got_message, failures = True, 0
                    self._on_connected()
                while not self._closed:
                    received = await feed._receive()
                    if not got_message:
                        got_message = True
                        failures = 0
                        self._on_connected()
                    self._accept(received, time.time())
            except FeedAuthError as exc:
                self._fail(exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed or lost connection is retried
                state.connected = False
                state.last_error = f"{type(exc).__name__}: {exc}"
                if got_message:
                    log.info("%s stream lost (%s); reconnecting", feed.kind, state.last_error)
                    self._put(
                        [FeedEvent("disconnected", f"{feed.kind} disconnected: {exc}", time.time())]
                    )
                failures += 1
                state.failed_attempts = failures
                if not got_message and self._give_up(failures):
                    return
                with contextlib.suppress(Exception):
                    await feed._close()
                delay = self._backoff(failures)
                self.retry_delays.append(delay)
                await asyncio.sleep(delay)

    def _on_connected(self) -> None:
        """The first message of a connection arrived: connected (or reconnected)."""
        feed, state = self.feed, self.state
        state.connected = True
        state.failed_attempts = 0
        if self._connected_once:
            state.reconnects += 1
            self._put(
                [
                    FeedEvent(
                        "reconnected",
                        f"{feed.kind} reconnected (reconnect #{state.reconnects})",
                        time.time(),
                        data=self._counts(),
                    )
                ]
            )
        self._connected_once = True

    def _give_up(self, failures: int) -> bool:
        """Fail the stream when ``failures`` in a row exceed ``max_reconnects``."""
        feed = self.feed
        if feed.max_reconnects is None or failures <= feed.max_reconnects:
            return False
        self._fail(
            FeedError(
                f"{feed.kind}: gave up after {failures} failed connection attempts in a row "
                f"(max_reconnects={feed.max_reconnects}); last error: {self.state.last_error}"
            )
        )
        return True

    def _backoff(self, failures: int) -> float:
        """Delay before the next attempt after ``failures`` failed attempts in a row.

        ``min(backoff_max, backoff_base * 2**(failures - 1))`` times a jitter factor
        drawn from ``[0.5, 1]``: 1st failure about ``backoff_base``, then doubling,
        capped at ``backoff_max``.
        """
        feed = self.feed
        capped = min(feed.backoff_max, feed.backoff_base * 2 ** min(failures - 1, 60))
        return capped * random.uniform(0.5, 1.0)

    def _check_hours(self, now: float, *, initial: bool = False) -> bool:
        feed, state = self.feed, self.state
        when = datetime.fromtimestamp(now, tz=UTC)
        is_open = feed.hours.is_open(when)
        state.market_open = is_open
        if is_open and self._was_open is False:
            self._last_bar_wall = now  # the clock of a stall starts at the open
        if not is_open and (initial or self._was_open):
            expected = feed.next_bar_expected(when)
            state.next_bar_expected = expected
            self._queue.put_nowait(
                FeedEvent(
                    "waiting",
                    f"market closed ({feed.hours.name}); next bar expected at "
                    f"{expected.isoformat()}",
                    now,
                    data={"next_bar_expected": expected},
                )
            )
        elif is_open:
            state.next_bar_expected = None
        self._was_open = is_open
        return is_open

    async def _watchdog(self) -> None:
        feed, state = self.feed, self.state
        period = max(0.02, min(0.25, feed.stall_seconds / 4 or 0.25, feed.group_grace / 2 or 0.25))
        while not self._closed:
            await asyncio.sleep(period)
            now = time.time()
            closed = feed._tick(now)
            if closed:
                self._accept(closed, now)
            self._put(self.sequencer.tick(now))
            if not self._check_hours(now):
                continue
            idle = now - self._last_bar_wall
            if feed.stall_seconds and idle >= feed.stall_seconds and not state.stalled:
                state.stalled = True
                self._queue.put_nowait(
                    FeedEvent(
                        "stalled",
                        f"no bar for {idle:.0f} s while the market is open "
                        f"(stall_seconds={feed.stall_seconds:g})",
                        now,
                        data={"idle_seconds": idle, **self._counts()},
                    )
                )
