"""The replay and live drivers of a paper session: pacing, feed events, heartbeats, polls."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from alphaswarm.live import FeedEvent, is_live
from alphaswarm.paper.commits import _GroupCommit
from alphaswarm.paper.halts import _yield_to_halts
from alphaswarm.paper.pacer import Pacer

if TYPE_CHECKING:
    from alphaswarm.model import Bar

log = logging.getLogger("alphaswarm.paper.session")

_OUTPUT_EVERY = 0.1  # seconds between updates of the Param outputs during fast replays
_MIN_SLEEP = 0.002
# Wall seconds between polls of one waiting session, at least: the kill switch re-reads
# its shared state at most once a second, and a stop or kill wakes a session at once.
_MIN_POLL = 1.0
_MAX_BEHIND = 1.0  # seconds a paced session may run behind its schedule before re-anchoring
# A paced schedule starts on a tick of the loop's clock: sessions at the same pace then
# wake in the same loop turn and share one commit (see _GroupCommit).
_PACE_TICK = 0.1
_REPLAY_FLUSH_SECONDS = 0.05
#: Bars of a speed-0 replay committed together at most (the 50 ms come first at speed).
_REPLAY_FLUSH_BARS = 2000


class SessionDriver:
    """The loop that feeds a session its bars (a mixin of :class:`PaperSession`)."""

    #: Whether the feed streams in real time (then the session's clock is the wall
    #: clock); set once the session runs, read per bar through :attr:`_clock`.
    _realtime: bool = False

    async def _run(self) -> None:
        feed = self._feed
        self._realtime = bool(is_live(feed) and feed.realtime)
        loop = asyncio.get_running_loop()
        self._pacer = Pacer.of(loop)
        self._commits = _GroupCommit.of(loop)
        try:
            await self._trade()
        except Exception as exc:  # noqa: BLE001 - every way out writes the final row
            log.exception("paper session %s failed", self.paper_run_id)
            self._finish(
                "failed", f"error: {type(exc).__name__}", error=f"{type(exc).__name__}: {exc}"
            )
        finally:
            if not self._finished:
                self._finish("stopped", "session task ended")

    async def _trade(self) -> None:
        if is_live(self._feed):
            await self._trade_live()
            return
        # The next bar's time is read before its wait, the bar itself made after it:
        # a bar made first would outlive the young collections during the wait.
        cursor = self._feed.cursor(start=self.start_at, limit=self.max_bars)
        duration = (
            timedelta(minutes=self.duration_minutes) if self.duration_minutes is not None else None
        )
        first_ts: datetime | None = None
        prev_ts: datetime | None = None
        loop = asyncio.get_running_loop()
        due: float | None = None
        yield_every = 20
        n = 0
        # Read once, not per bar: the runtime's halt events and account check.
        runtime = self.runtime
        registry = runtime.registry
        halting, engaging = registry.halting, runtime.kill_switch.engaging
        check_account = registry.check_account
        lock = self._lock
        process = self._process
        self._speed = self.speed
        # The first bar is read off the engine loop: building the feed's first block (tens
        # of ms for a synthetic feed) must not delay the bars of the sessions already running.
        await loop.run_in_executor(None, cursor.peek)
        self._last_bar_wall = self._last_heartbeat = time.monotonic()
        while not self._finished:
            ts = cursor.peek()
            if ts is None:
                reached_max = self.max_bars is not None and n >= self.max_bars
                why = f"max_bars {self.max_bars} reached" if reached_max else "end of data"
                self._finish("completed", why)
                return
            if first_ts is None:
                first_ts = ts
            if duration is not None and ts >= first_ts + duration:
                self._finish("completed", f"duration of {self.duration_minutes:g} minutes reached")
                return
            # ``speed`` is read per bar while paced, every ``yield_every`` bars at speed 0
            speed = self._speed
            if speed > 0:
                speed = self._speed = self.speed
            if speed > 0 and prev_ts is not None:
                gap = (ts - prev_ts).total_seconds()
                if self.max_idle_seconds is not None:
                    gap = min(gap, self.max_idle_seconds)  # nights and weekends pass quickly
                # pace against an absolute schedule so per-bar work does not add up as drift
                now = loop.time()
                due = (due or _next_tick(now)) + gap / speed
                if now - due > _MAX_BEHIND:  # far behind (a pause, a busy machine): re-anchor
                    due = _next_tick(now)
                # the wait is inlined: a coroutine per bar would outlive the young collections
                while (waiter := self._pace_wait(due)) is not None:
                    try:
                        await waiter
                    finally:
                        self._waiter = None
                    self._poll()
                if self._finished:
                    return
            if halting.is_set() or engaging.is_set():
                await _yield_to_halts(runtime)
            if self._behind_since is not None:
                await self._catch_up()
            with lock:
                if self._finished:
                    return
                process(cursor.take())
            prev_ts = ts
            engine = self._engine
            if engine.halted is not None:
                self._finish("halted", f"risk limit {engine.halted.limit}: {engine.halted.message}")
                return
            check_account()
            n += 1
            if speed == 0 and n % yield_every == 0:
                await asyncio.sleep(0)
                self._speed = self.speed

    @property
    def _clock(self) -> float:
        """Session seconds per wall second: 1 on a real-time feed (``speed`` is ignored)."""
        return 1.0 if self._realtime else self._speed

    async def _trade_live(self) -> None:
        """Trade the bars a live feed streams, turning its events into ``feed.*`` frames.

        The stream (and its recording) is closed before the final row is written.
        """
        feed = self._feed
        duration = (
            timedelta(minutes=self.duration_minutes) if self.duration_minutes is not None else None
        )
        reached = f"duration of {self.duration_minutes or 0:g} minutes reached"
        first_ts: datetime | None = None
        n = 0
        ending: tuple[str, str] | None = None
        started = self._last_bar_wall = self._last_heartbeat = time.monotonic()
        self._speed = self.speed
        timeout = self.poll_interval / self._clock if self._clock > 0 else self.poll_interval
        async with feed.stream(speed=self.speed) as stream:
            while not self._finished and ending is None:
                item = await stream.next(timeout)
                if self._finished:
                    break
                if item is None or isinstance(item, FeedEvent):
                    if item is not None and item.kind == "end":
                        ending = ("completed", "end of data")
                    elif item is not None:
                        ending = self._feed_event(item)
                    self._poll()
                    if self._behind_since is not None and ending is None:
                        await self._catch_up()
                    if feed.realtime and duration is not None:
                        if time.monotonic() - started >= duration.total_seconds():
                            ending = ending or ("completed", reached)
                    continue
                ts = item[0].ts
                first_ts = first_ts or ts
                if duration is not None and ts >= first_ts + duration:
                    ending = ("completed", reached)
                    break
                await _yield_to_halts(self.runtime)
                if self._behind_since is not None:
                    await self._catch_up()
                with self._lock:
                    if self._finished:
                        break
                    self._process(item)
                halted = self._engine.halted
                if halted is not None:
                    ending = ("halted", f"risk limit {halted.limit}: {halted.message}")
                    break
                self.runtime.registry.check_account()
                n += 1
                if self.max_bars is not None and n >= self.max_bars:
                    ending = ("completed", f"max_bars of {self.max_bars} reached")
                    break
                if self._clock > 0 or n % 20 == 0:
                    self._poll()
                    await asyncio.sleep(0)
        if ending is not None:
            self._finish(*ending)

    def _feed_event(self, event: FeedEvent) -> tuple[str, str] | None:
        """A feed event → a ``feed.<kind>`` frame (a gap also → a ``risk_events`` row).

        Returns the session's ending when the event halts it (a stall with ``halt_on_stall``).
        """
        feed = self._feed
        with self._lock:
            if self._finished:
                return None
            self._frame(
                f"feed.{event.kind}",
                event.message,
                feed=feed.kind,
                symbol=event.symbol,
                detail=event.data,
                feed_state=feed.state(),
            )
            risk = []
            if event.kind == "gap":
                risk.append(
                    {
                        "at": event.data.get("to_ts") or datetime.now(UTC),
                        "order_id": None,
                        "limit": "feed.gap",
                        "value": float(event.data.get("missing", 0)),
                        "threshold": float(getattr(feed, "gap_tolerance", 0)),
                        "action": "feed.gap",
                        "message": event.message,
                    }
                )
            # with the bars not committed yet, if any; kept until a write commits them
            self._engine.risk_events.extend(risk)
            if self._behind_since is None:
                self._flush()
        if event.kind == "stalled" and feed.halt_on_stall:
            return ("halted", f"feed stalled: {event.message}")
        return None

    def _pace_wait(self, deadline: float) -> asyncio.Future[None] | None:
        """The next wait before ``deadline`` (loop time); None once it is reached or finished.

        The simulated broker, stop and kill state are polled (:meth:`_poll`, after each
        wait) every ``poll_interval`` of session time, but at most once a wall-clock
        second per session (a stop or kill wakes the session at once anyway), and once
        when the deadline is reached. The wait's timer is shared with every session due
        at the same moment.
        """
        if self._finished:
            return None
        now = self._pacer.time()
        if now >= deadline:
            return None
        poll = max(self.poll_interval / self.speed, _MIN_POLL)
        heartbeat = max(self._heartbeat_due() - time.monotonic(), _MIN_SLEEP)
        waiter = self._waiter = self._pacer.wait_until(min(deadline, now + min(poll, heartbeat)))
        return waiter

    def _heartbeat_due(self) -> float:
        """Monotonic time of the next heartbeat if no bar comes before it.

        A live stream's silence counts from its last bar. A replay's schedule is known,
        so its silence counts from when the next bar is due: a replay of minute bars
        does not send a heartbeat between every two bars.
        """
        clock = max(self._clock, 1e-9)
        if is_live(self._feed):
            expected = self._last_bar_wall
        else:
            interval = getattr(self._feed, "interval_seconds", 60) or 60
            expected = self._last_bar_wall + interval / clock
        quiet_since = max(expected, self._last_heartbeat)
        return quiet_since + self.heartbeat_seconds / clock

    def _poll(self) -> None:
        """Between bars: heartbeats and the kill switch's state."""
        if self._finished:
            return
        now = time.monotonic()
        if is_live(self._feed):
            self._set_outputs(feed_state=self._feed.state())
        if now >= self._heartbeat_due() and self._behind_since is None:
            # no bar for heartbeat_seconds past its due time (a session behind its ledger
            # sends none: its catch-up write comes first)
            with self._lock:
                if self._finished:
                    return
                # A paced session's heartbeat goes with the loop's group commit, like its
                # bars: when the loop falls behind (a busy machine), every session is late
                # at once, and a commit of its own per heartbeat on the loop's thread would
                # put it further behind, and so on.
                grouped = self._clock > 0 and self._commits is not None
                if self._unflushed and not grouped:  # bars waiting: theirs comes first
                    self._flush_bars()
                    if self._behind_since is not None:
                        return
                self._last_heartbeat = now
                idle = (now - self._last_bar_wall) * self._clock
                self._frame(
                    "heartbeat",
                    f"no bar for {idle:.0f} s of session time",
                    idle_seconds=idle,
                    last_bar_ts=self._last_bar_ts.isoformat() if self._last_bar_ts else None,
                )
                if grouped:
                    self._commits.add(self)
                else:
                    heartbeat = {
                        "frames": list(self._pending),
                        "run_update": {"last_heartbeat_at": datetime.now(UTC)},
                    }
                    if self._write(heartbeat):
                        self._publish_pending()
        # refreshes the shared state at most once a second
        self.runtime.kill_switch.order_mode(self.bot_id)

    def _process(self, group: list[Bar]) -> None:
        engine = self._engine
        engine.step(group)
        self._equity_points.append(engine.last_ts, engine.state.equity, engine.broker.cash)
        self._last_bar_ts = group[0].ts
        now = self._last_bar_wall = time.monotonic()
        self._unflushed += 1
        # A paced session's bar is committed in the next loop turn, in one transaction
        # with the bars of every other session of this loop processed in this turn; a
        # speed-0 replay commits every 50 ms or _REPLAY_FLUSH_BARS bars. Frames are always
        # published after the commit that holds their rows (and a halt's final batch
        # takes them).
        paced = self._clock > 0
        if paced and self._commits is not None and engine.halted is None:
            if self._unflushed == 1:
                self._commits.add(self)
            return
        if (
            paced
            or self._unflushed >= _REPLAY_FLUSH_BARS
            or now - self._last_flush >= _REPLAY_FLUSH_SECONDS
            or engine.halted is not None
        ):
            self._flush_bars()
        elif now - self._last_output >= _OUTPUT_EVERY:
            self._last_output = now
            self._update_outputs()


def _next_tick(t: float) -> float:
    """The first tick of :data:`_PACE_TICK` at or after loop time ``t``."""
    return math.ceil(t / _PACE_TICK) * _PACE_TICK
