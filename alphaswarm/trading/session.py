"""PaperSession: the tutorial's paper-trading session as one Param object.

gate → start → frames → fills → risk halt, stop or kill → final ledger row.
``start()`` returns at once; the session runs on the caller's asyncio loop
(Jupyter) or on the shared engine loop. Every way out (duration reached, end
of data, stop, risk halt, kill switch, exception) writes the final
``paper_trading_runs`` row with a non-NULL ``total_pnl``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
import weakref
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

import param

from alphaswarm import tuning
from alphaswarm.bots import Bot
from alphaswarm.broker.ledger_ids import with_broker_order_ids
from alphaswarm.broker.spec import make_session_broker
from alphaswarm.data.live import FeedEvent, is_live
from alphaswarm.frames import FrameBus, make_frame
from alphaswarm.killswitch import KillSwitchEngaged, kill_switch
from alphaswarm.ledger.connection import bounded_writes
from alphaswarm.ledger.store import KillSwitchRefusal, LedgerUnavailable
from alphaswarm.model import ModelError
from alphaswarm.runtime import engine_loop, get_ledger
from alphaswarm.trading.engine import Engine
from alphaswarm.trading.final_writes import final_writes
from alphaswarm.trading.gate import GateRefused, GateResult, check_gate
from alphaswarm.trading.registry import registry

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from alphaswarm.data.base import Feed
    from alphaswarm.ledger import Ledger
    from alphaswarm.model import Bar

log = logging.getLogger(__name__)

_OUTPUTS = (
    "paper_run_id", "bot_id", "bot_version", "status", "equity", "cash", "positions",
    "num_fills", "bars_seen", "total_pnl", "realized_pnl", "last_frame", "stop_reason",
    "error", "gate", "started_at", "ended_at", "ledger_behind",
)  # fmt: skip
FINAL_STATUSES = ("completed", "stopped", "halted", "killed", "failed", "refused")
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
# A session whose ledger is out of reach retries its write after this many seconds,
# doubling the wait after each failure up to _RETRY_MAX.
_RETRY_FIRST = 0.2
_RETRY_MAX = 5.0


class PaperSession(param.Parameterized):
    """A paper-trading session of one bot.

    Configure with the params, call :meth:`start`, watch the read-only outputs
    (``status``, ``equity``, ``positions`` ...), subscribe to ``frames`` (a
    :class:`~alphaswarm.frames.FrameBus`) and read the ledger through the
    DataFrame properties. Displayed in a notebook, it renders the live
    dashboard components.
    """

    bot = param.ClassSelector(class_=Bot, doc="The bot to trade.")
    # Finite upper bounds everywhere: param's bounds refuse NaN but let infinity through.
    starting_cash = param.Number(
        default=100_000.0,
        bounds=(0, 1e15),
        inclusive_bounds=(False, True),
        doc="Initial cash (finite, at most 1e15).",
    )
    duration_minutes = param.Number(
        default=60,
        allow_None=True,
        bounds=(0, 10 * 365 * 1440),
        inclusive_bounds=(False, True),
        doc="Session length in minutes of bar time; None runs until stopped or the data ends.",
    )
    speed = param.Number(
        default=1.0,
        bounds=(0, 1e6),
        doc="1 = real time; 60 = a minute bar per second; 0 = as fast as bars come.",
    )
    poll_interval = param.Number(
        default=1.0,
        bounds=(0, 86_400),
        inclusive_bounds=(False, True),
        doc="Seconds of session time between polls of the simulated broker, stop and kill state.",
    )
    heartbeat_seconds = param.Number(
        default=30.0,
        bounds=(0, 86_400),
        inclusive_bounds=(False, True),
        doc="Emit a heartbeat frame when no bar has arrived for this many seconds of session time.",
    )
    max_idle_seconds = param.Number(
        default=300.0,
        allow_None=True,
        bounds=(0, None),
        doc="In a paced replay, a gap between bars longer than this (seconds of bar time, "
        "e.g. a night or a weekend) is compressed to it; None paces every gap in full.",
    )
    state_flush_every = param.Integer(
        default=10, bounds=(1, None), doc="Write the state snapshot every N bars."
    )
    max_bars = param.Integer(
        default=None, allow_None=True, bounds=(1, None), doc="Stop after this many bar groups."
    )
    start_at = param.Parameter(
        default=None, doc="Replay from this bar time (date-like); the feed's start by default."
    )
    run_name = param.String(default="", doc="A label for the run.")
    force = param.Boolean(default=False, doc="Override a gate refusal (needs a reason).")
    reason = param.String(default="", doc="Why the gate is forced; written to the audit log.")
    gate_rules = param.Dict(
        default={}, doc="Gate thresholds overriding the defaults (min_sharpe, max_drawdown ...)."
    )
    backtest_id = param.String(
        default=None,
        allow_None=True,
        doc="The backtest the gate judges (of the bot's current version); the newest otherwise.",
    )
    feed = param.Parameter(default=None, doc="Feed override; the bot's data block otherwise.")
    ledger = param.Parameter(default=None, doc="Ledger override; the process default otherwise.")
    ledger_outage_seconds = param.Number(
        default=60.0,
        bounds=(0, 86_400),
        inclusive_bounds=(False, True),
        doc="How long the session waits, trading paused, for a ledger it cannot write to "
        "before it fails closed (status failed); what it holds is written when the "
        "ledger returns.",
    )

    paper_run_id = param.String(default="", constant=True, doc="The run id (also the task_id).")
    bot_id = param.String(default="", constant=True, doc="The bot's ledger id.")
    bot_version = param.Integer(default=None, allow_None=True, constant=True, doc="Bot version.")
    status = param.Selector(
        default="created",
        objects=["created", "gating", "running", "stopping", *FINAL_STATUSES],
        constant=True,
        doc="Lifecycle: created → gating → running → stopping → a final status.",
    )
    equity = param.Number(default=0.0, constant=True, doc="Cash plus positions.")
    cash = param.Number(default=0.0, constant=True, doc="Cash.")
    positions = param.Dict(default={}, constant=True, doc="Open positions by symbol.")
    num_fills = param.Integer(default=0, constant=True, doc="Fills so far.")
    bars_seen = param.Integer(default=0, constant=True, doc="Bars processed so far.")
    total_pnl = param.Number(default=0.0, constant=True, doc="Equity minus starting cash.")
    realized_pnl = param.Number(default=0.0, constant=True, doc="Realised P&L net of commission.")
    last_frame = param.Dict(default={}, constant=True, doc="The latest frame.")
    stop_reason = param.String(default="", constant=True, doc="Why the session ended.")
    error = param.String(default="", constant=True, doc="The exception of a failed session.")
    gate = param.Dict(default={}, constant=True, doc="The paper gate's result.")
    feed_state = param.Dict(
        default={},
        constant=True,
        doc="A live feed's state: connected, last_bar_age, gaps, reconnects (empty otherwise).",
    )
    ledger_behind = param.Boolean(
        default=False,
        constant=True,
        doc="True while the ledger has not taken the session's latest rows (trading paused).",
    )
    started_at = param.Date(default=None, allow_None=True, constant=True, doc="Start (UTC).")
    ended_at = param.Date(default=None, allow_None=True, constant=True, doc="End (UTC).")

    def __init__(self, bot: Bot | dict | str | None = None, **params: Any) -> None:
        if bot is not None:
            params["bot"] = Bot.coerce(bot)
        super().__init__(**params)
        for name in _OUTPUTS:  # instance copies now, not on the kill switch's clock
            self.param[name]
        self.frames = FrameBus()
        self._lock = threading.RLock()
        self._seq = 0
        self._pending: list[dict[str, Any]] = []  # frames not committed yet
        self._unpublished: list[dict[str, Any]] = []  # committed, not published yet
        self._engine: Engine | None = None
        self._finished = False
        # guards _finished alone: a halt claims a session whose lock a write holds
        self._finish_lock = threading.Lock()
        self._done = threading.Event()
        self._stop_requested = False
        self._wake: asyncio.Event | None = None
        self._commits: _GroupCommit | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: Any = None
        self._fills_written = 0
        self._last_output = 0.0
        self._last_bar_ts: datetime | None = None
        self._last_bar_wall = 0.0
        self._last_heartbeat = 0.0
        self._ledger: Ledger | None = None
        self._unflushed = 0
        self._equity_points: list[dict[str, Any]] = []
        self._last_flush = 0.0
        self._state_flushed_at = -1
        # What the batch being written holds (consumed only when it commits).
        self._mark: tuple[list[str], int, int, int, int] | None = None
        # Monotonic time the ledger first refused a write (None: the ledger is current).
        self._behind_since: float | None = None
        self._ledger_error = ""
        self._final_written = False

    def _set_outputs(self, **values: Any) -> None:
        """Set read-only outputs, unlocking only those params.

        ``edit_constant`` and ``param.update`` walk every parameter; on the kill
        switch's clock, with hundreds of sessions, plain setattr in one watcher batch
        is several times cheaper.
        """
        # unchanged values are skipped: no watcher would fire for them anyway
        values = {k: v for k, v in values.items() if getattr(self, k) != v}
        if not values:
            return
        params = [self.param[name] for name in values]
        for p in params:
            p.constant = False
        try:
            with param.parameterized.batch_call_watchers(self):
                for name, value in values.items():
                    setattr(self, name, value)
        finally:
            for p in params:
                p.constant = True

    # -- properties -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the session has stopped trading (it has a final status)."""
        return self._finished

    @property
    def final_row_written(self) -> bool:
        """True once the final batch (and run row) is committed to the ledger."""
        return self._final_written

    @property
    def engine(self) -> Engine | None:
        """The engine (after start)."""
        return self._engine

    @property
    def ledger_(self) -> Ledger:
        """The ledger this session writes to."""
        if self._ledger is None:
            self._ledger = self.ledger or get_ledger()
        return self._ledger

    @property
    def fills(self) -> pd.DataFrame:
        """Fills of this run, from the ledger."""
        return self.ledger_.fills(self.paper_run_id)

    @property
    def orders(self) -> pd.DataFrame:
        """Orders of this run, from the ledger."""
        return self.ledger_.orders(self.paper_run_id)

    @property
    def equity_curve(self) -> pd.DataFrame:
        """Equity points of this run, from the ledger."""
        return self.ledger_.equity(self.paper_run_id)

    @property
    def frames_df(self) -> pd.DataFrame:
        """Frames of this run, from the ledger."""
        return self.ledger_.frames(self.paper_run_id)

    @property
    def run(self) -> dict[str, Any] | None:
        """The ``paper_trading_runs`` row."""
        return self.ledger_.get_run(self.paper_run_id)

    # -- frames -----------------------------------------------------------------------
    def _positions_snapshot(self) -> dict[str, dict[str, float]]:
        engine = self._engine
        if engine is None:
            return {}
        return {
            s: {
                "qty": p.qty,
                "avg_price": p.avg_price,
                "last_price": p.last_price,
                "unrealized_pnl": p.unrealized_pnl,
                "realized_pnl": p.realized_pnl,
            }
            for s, p in engine.broker.positions.items()
            if p.qty
        }

    def _frame(self, stage: str, message: str, **extras: Any) -> dict[str, Any]:
        self._seq += 1
        if self._engine is not None:
            if "equity" not in extras:
                extras["equity"] = self._engine.broker.equity
            if "positions" not in extras:
                extras["positions"] = self._positions_snapshot()
        else:  # before the account exists (the gate): its starting cash, no positions
            extras.setdefault("equity", self.starting_cash)
            extras.setdefault("positions", {})
        frame = make_frame(self.paper_run_id, stage, message, self._seq, **extras)
        self._pending.append(frame)
        return frame

    def _listener(self, stage: str, message: str, extras: dict[str, Any]) -> None:
        self._frame(stage, message, **extras)

    def _publish_pending(self) -> None:
        """Under the lock, after the commit of the pending frames: publish them."""
        frames = self._take_committed()
        for frame in frames:
            self.frames.publish(frame)
        if frames:
            self._set_outputs(last_frame=frames[-1])

    def _take_committed(self) -> list[dict[str, Any]]:
        """Under the lock: the frames to publish now, oldest first.

        Those committed by a group commit and not published yet, then the pending
        ones, which the caller has just committed.
        """
        frames = self._unpublished + self._pending if self._unpublished else self._pending
        self._unpublished, self._pending = [], []
        return frames

    # -- start ------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> PaperSession:
        """Gate the bot, create the run row and start trading; returns at once.

        Parameters
        ----------
        loop : asyncio loop, optional
            Where to run. By default the shared engine loop, a background thread, so
            the call returns at once in a notebook cell, a script or a server, and
            :meth:`wait` works everywhere. Pass ``asyncio.get_running_loop()`` to run
            on the caller's loop instead (then use ``await session.wait_async()``).

        Raises
        ------
        GateRefused
            When the paper gate refuses (``.result.errors`` lists every rule).
        KillSwitchEngaged
            While the kill switch is engaged.
        """
        if self.status != "created":
            raise ModelError(f"status: this session is already {self.status}; create a new one")
        if self.bot is None:
            raise ModelError("bot: a PaperSession needs a bot")
        if self.force and not self.reason.strip():
            raise ModelError("reason: forcing the gate needs a non-empty reason")
        ledger = self.ledger_
        bot = self.bot
        bot_id, version, _ = ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
        kill_switch().check_start(bot_id)
        feed = self.feed if self.feed is not None else bot.make_feed()
        self._feed: Feed = feed
        run_id = f"paper-{uuid.uuid4().hex[:10]}"
        self.frames.task_id = run_id
        self._set_outputs(paper_run_id=run_id, bot_id=bot_id, bot_version=version, status="gating")
        result = check_gate(
            bot, ledger, feed, bot_id=bot_id, bot_version=version,
            backtest_id=self.backtest_id, **self.gate_rules,
        )  # fmt: skip
        if result.errors and self.force:
            result.forced, result.reason = True, self.reason
        self._set_outputs(gate=result.to_frame_extras())
        gate_frame = self._gate_frame(result)
        if not result.passed:
            self._pending.clear()
            self.frames.publish(gate_frame)
            self.frames.close()
            self._set_outputs(status="refused", last_frame=gate_frame, stop_reason="gate")
            raise GateRefused(result)
        try:
            self._create_run(ledger, result)
        except KillSwitchRefusal as exc:
            # Engaged (maybe by another process) before our run row could be written:
            # nothing was written; follow the row here too, then refuse.
            kill_switch().refresh(force=True)
            self._pending.clear()
            self.frames.close()
            self._set_outputs(status="refused", stop_reason="kill switch")
            raise KillSwitchEngaged(str(exc)) from None
        ks = kill_switch()
        if ks.engaged and ks.mode in ("cancel", "flatten"):
            # The kill committed after our run row (the row lock orders them) but its
            # fan-out may have listed this process's sessions before we registered:
            # stop now. registry().add() happens before this read, and an engagement
            # sets ``engaged`` before listing, so one of the two always sees the other.
            self._finish("killed", ks.reason or "kill switch", ks.mode)
        return self._launch(loop)

    def _gate_frame(self, result: GateResult) -> dict[str, Any]:
        if result.forced:
            message = f"paper gate forced: {self.reason} (overrode {len(result.errors)} rule(s))"
        elif result.errors:
            message = "paper gate refused: " + "; ".join(result.errors)
        else:
            message = f"paper gate {result.status}" + (
                ": " + "; ".join(result.warnings) if result.warnings else ""
            )
        return self._frame("metadata_gate", message, **result.to_frame_extras())

    def _create_run(self, ledger: Ledger, gate: GateResult) -> None:
        bot = self.bot
        now = datetime.now(UTC)
        broker_config = bot.broker_config()
        config = {
            "bot": bot.spec,
            "spec_hash": bot.spec_hash,
            "starting_cash": self.starting_cash,
            "duration_minutes": self.duration_minutes,
            "speed": self.speed,
            "poll_interval": self.poll_interval,
            "heartbeat_seconds": self.heartbeat_seconds,
            "max_bars": self.max_bars,
            "start_at": str(self.start_at) if self.start_at is not None else None,
            "broker": broker_config.to_dict(),
            "fill_rule": broker_config.intrabar_rule,
            "feed": self._feed.fingerprint(),
            "gate": gate.to_frame_extras(),
        }
        ledger.create_paper_run(
            {
                "id": self.paper_run_id,
                "bot_id": self.bot_id,
                "bot_version": self.bot_version,
                "task_id": self.paper_run_id,
                "run_name": self.run_name or f"{bot.name} {now:%Y-%m-%d %H:%M}",
                "status": "running",
                "starting_cash": self.starting_cash,
                "final_equity": self.starting_cash,
                "total_pnl": 0.0,
                "realized_pnl": 0.0,
                "started_at": now,
                "last_heartbeat_at": now,
                "config": config,
            },
            # Row-lock ordering with the kill switch, across every process on the ledger.
            check_kill_switch=True,
        )
        if gate.forced:
            ledger.audit(
                "python",
                "paper_gate.forced",
                {
                    "paper_run_id": self.paper_run_id,
                    "bot_id": self.bot_id,
                    "reason": self.reason,
                    "errors": gate.errors,
                },
            )
        broker = make_session_broker(
            bot.spec.get("broker"),
            self.starting_cash,
            broker_config,
            id_prefix=f"{self.paper_run_id}-",
        )
        bot_id = self.bot_id
        ks = kill_switch()
        self._engine = Engine(
            bot.make_strategy(),
            broker,
            bot.risk_limits(),
            listener=self._listener,
            order_gate=lambda: ks.order_mode(bot_id),
            record_equity=False,
        )
        self._frame(
            "session.started",
            f"paper session {self.paper_run_id} started for {bot.name} "
            f"with {self.starting_cash:,.0f} cash",
            run_id=self.paper_run_id,
            bot_id=self.bot_id,
            bot_version=self.bot_version,
            starting_cash=self.starting_cash,
            duration_minutes=self.duration_minutes,
            speed=self.speed,
            cash=self.starting_cash,
        )
        ledger.write_batch(self.paper_run_id, frames=list(self._pending))
        self._set_outputs(
            status="running", started_at=now, equity=self.starting_cash, cash=self.starting_cash
        )
        self._publish_pending()
        registry().add(self)
        # Other processes' engagements on this ledger reach this session at once.
        ks.watch(lambda: not self._finished)

    def _launch(self, loop: asyncio.AbstractEventLoop | None) -> PaperSession:
        loop = loop or engine_loop()
        self._loop = loop
        try:
            running_here = asyncio.get_running_loop() is loop
        except RuntimeError:
            running_here = False
        if running_here:
            self._task = loop.create_task(self._run())
        else:
            self._task = asyncio.run_coroutine_threadsafe(self._run(), loop)
        return self

    # -- the loop ---------------------------------------------------------------------
    async def _run(self) -> None:
        self._wake = asyncio.Event()
        self._commits = _GroupCommit.of(asyncio.get_running_loop())
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
        groups = self._feed.groups(start=self.start_at, limit=self.max_bars)
        duration = (
            timedelta(minutes=self.duration_minutes) if self.duration_minutes is not None else None
        )
        first_ts: datetime | None = None
        prev_ts: datetime | None = None
        loop = asyncio.get_running_loop()
        due: float | None = None
        yield_every = 20
        n = 0
        # The first bar is read off the engine loop: building the feed's first block (tens
        # of ms for a synthetic feed) must not delay the bars of the sessions already running.
        first = await asyncio.get_running_loop().run_in_executor(None, next, groups, None)
        self._last_bar_wall = self._last_heartbeat = time.monotonic()
        while not self._finished:
            group, first = (first, None) if first is not None else (next(groups, None), None)
            if group is None:
                reached_max = self.max_bars is not None and n >= self.max_bars
                why = f"max_bars {self.max_bars} reached" if reached_max else "end of data"
                self._finish("completed", why)
                return
            ts = group[0].ts
            if first_ts is None:
                first_ts = ts
            if duration is not None and ts >= first_ts + duration:
                self._finish("completed", f"duration of {self.duration_minutes:g} minutes reached")
                return
            if self.speed > 0 and prev_ts is not None:
                gap = (ts - prev_ts).total_seconds()
                if self.max_idle_seconds is not None:
                    gap = min(gap, self.max_idle_seconds)  # nights and weekends pass quickly
                # pace against an absolute schedule so per-bar work does not add up as drift
                now = loop.time()
                due = (due or _next_tick(now)) + gap / self.speed
                if now - due > _MAX_BEHIND:  # far behind (a pause, a busy machine): re-anchor
                    due = _next_tick(now)
                await self._pace(due)
                if self._finished:
                    return
            await _yield_to_halts()
            if self._behind_since is not None:
                await self._catch_up()
            with self._lock:
                if self._finished:
                    return
                self._process(group)
            prev_ts = ts
            engine = self._engine
            if engine.halted is not None:
                self._finish("halted", f"risk limit {engine.halted.limit}: {engine.halted.message}")
                return
            registry().check_account()
            n += 1
            if self.speed == 0 and n % yield_every == 0:
                await asyncio.sleep(0)

    @property
    def _clock(self) -> float:
        """Session seconds per wall second: 1 on a real-time feed (``speed`` is ignored)."""
        feed = getattr(self, "_feed", None)
        return 1.0 if is_live(feed) and feed.realtime else self.speed

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
                await _yield_to_halts()
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
                registry().check_account()
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

    async def _pace(self, deadline: float) -> None:
        """Wait until ``deadline`` (loop time), polling stop, kill and heartbeats meanwhile.

        The simulated broker, stop and kill state are polled every ``poll_interval``
        of session time, but at most once a wall-clock second per session (a stop or
        kill wakes the session at once anyway), and once when the deadline is reached.
        """
        loop = asyncio.get_running_loop()
        poll = max(self.poll_interval / self.speed, _MIN_POLL)
        while not self._finished:
            now = loop.time()
            if now >= deadline:
                return
            heartbeat = max(self._heartbeat_due() - time.monotonic(), _MIN_SLEEP)
            self._wake.clear()
            try:  # one timer, and no task per wait (asyncio.wait_for makes one)
                async with asyncio.timeout_at(min(deadline, now + min(poll, heartbeat))):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._poll()

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
                if self._unflushed:  # bars waiting for the group commit: theirs comes first
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
                heartbeat = {
                    "frames": list(self._pending),
                    "run_update": {"last_heartbeat_at": datetime.now(UTC)},
                }
                if self._write(heartbeat):
                    self._publish_pending()
        kill_switch().order_mode(self.bot_id)  # refreshes the shared state at most once a second

    def _process(self, group: list[Bar]) -> None:
        engine = self._engine
        engine.step(group)
        self._equity_points.append(
            {"ts": engine.last_ts, "equity": engine.state.equity, "cash": engine.broker.cash}
        )
        self._last_bar_ts = group[0].ts
        now = self._last_bar_wall = time.monotonic()
        self._unflushed += 1
        # A paced session's bar is committed in the next loop turn, in one transaction
        # with the bars of every other session of this loop processed in this turn; a
        # speed-0 replay commits every 50 ms or 500 bars. Frames are always published
        # after the commit that holds their rows (and a halt's final batch takes them).
        if self._clock > 0 and self._commits is not None and engine.halted is None:
            if self._unflushed == 1:
                self._commits.add(self)
            return
        if (
            self._clock > 0
            or self._unflushed >= 500
            or now - self._last_flush >= _REPLAY_FLUSH_SECONDS
            or engine.halted is not None
        ):
            self._flush_bars()
        elif now - self._last_output >= _OUTPUT_EVERY:
            self._last_output = now
            self._update_outputs()

    def _batch(
        self,
        run_update: dict[str, Any] | None = None,
        flush_state: bool = False,
        positions: dict[str, dict[str, float]] | None = None,
        summary: dict[str, Any] | None = None,
    ) -> dict:
        """Under the lock: everything not committed yet, as one ``write_batch``.

        Nothing is consumed here: :meth:`_consume` drops what the batch held once its
        transaction has committed, so a failed write loses nothing and the next batch
        (or the final one) carries it again.
        """
        engine = self._engine
        broker = engine.broker
        orders = [o.to_dict() for o in broker.dirty_orders.values()]
        for o, order in zip(orders, broker.dirty_orders.values(), strict=True):
            o["updated_at"] = order.updated_at
            o["created_at"] = order.created_at
        with_broker_order_ids(broker, orders)  # a real broker's ids beside ours
        n_fills = len(broker.fills)
        fills = [{**f.to_dict(), "filled_at": f.ts} for f in broker.fills[self._fills_written :]]
        risk_events = list(engine.risk_events)
        if summary is None:
            summary = engine.summary()
        update = {
            "bars_seen": summary["bars_seen"],
            "orders_submitted": summary["orders_submitted"],
            "num_fills": summary["num_fills"],
            "total_pnl": summary["total_pnl"],
            "realized_pnl": summary["realized_pnl"],
            "final_equity": summary["final_equity"],
            "max_drawdown": summary["max_drawdown"],
            "last_heartbeat_at": datetime.now(UTC),
        }
        if flush_state:
            update["state"] = self._state_snapshot(positions)
        update.update(run_update or {})
        equity = list(self._equity_points)
        self._mark = (
            list(broker.dirty_orders),
            n_fills,
            len(equity),
            len(risk_events),
            engine.bar_index // self.state_flush_every if flush_state else self._state_flushed_at,
        )
        if engine.last_ts is not None:  # the latest value (after a flatten, say) wins
            if equity and equity[-1]["ts"] == engine.last_ts:
                equity.pop()
            point = {"ts": engine.last_ts, "equity": summary["final_equity"], "cash": broker.cash}
            equity.append(point)
        return {
            "orders": orders,
            "fills": fills,
            "equity": equity,
            "frames": list(self._pending),
            "risk_events": [{**r, "paper_run_id": self.paper_run_id} for r in risk_events],
            "run_update": update,
        }

    def _state_snapshot(
        self, positions: dict[str, dict[str, float]] | None = None
    ) -> dict[str, Any]:
        engine = self._engine
        broker = engine.broker
        return {
            "cash": broker.cash,
            "equity": broker.equity,
            "positions": self._positions_snapshot() if positions is None else positions,
            "bars_seen": engine.bars_seen,
            "orders_submitted": engine.orders_submitted,
            "num_fills": len(broker.fills),
            "open_orders": [o.id for o in broker.open_orders],
            "last_bar_ts": engine.last_ts.isoformat() if engine.last_ts else None,
            "peak_equity": engine.state.peak_equity,
            "mode": engine.trading_mode(),
            # a real broker: its order ids beside ours
            **({"broker": broker.to_dict()} if hasattr(broker, "to_dict") else {}),
        }

    def _consume(self) -> None:
        """Under the lock, after the commit of the last :meth:`_batch`: drop what it held."""
        mark, self._mark = self._mark, None
        if mark is None:
            return
        order_ids, n_fills, n_equity, n_risk, state_at = mark
        engine = self._engine
        dirty = engine.broker.dirty_orders
        for order_id in order_ids:
            dirty.pop(order_id, None)
        self._fills_written = max(self._fills_written, n_fills)
        del self._equity_points[:n_equity]
        del engine.risk_events[:n_risk]
        self._state_flushed_at = max(self._state_flushed_at, state_at)
        self._unflushed = 0
        self._last_flush = time.monotonic()

    def _write(self, batch: dict[str, Any]) -> bool:
        """Under the lock: commit ``batch``; False when the ledger is out of reach.

        Then nothing is consumed and the session falls behind (see :meth:`_catch_up`);
        any other failure raises.
        """
        try:
            self.ledger_.write_batch(self.paper_run_id, **batch)
        except LedgerUnavailable as exc:
            self._fall_behind(exc)
            return False
        return True

    def _fall_behind(self, exc: BaseException) -> None:
        """The ledger refused a write it may take later: pause trading until it does.

        A ``ledger.behind`` frame is queued (it is published with the catch-up commit,
        like every frame, after its row); ``ledger_behind`` shows it at once.
        """
        with self._lock:
            self._ledger_error = f"{type(exc).__name__}: {exc}"
            if self._behind_since is not None or self._finished:
                return
            self._behind_since = time.monotonic()
            log.warning(
                "paper session %s: the ledger refused a write (%s); trading paused, retrying",
                self.paper_run_id,
                exc,
            )
            self._frame(
                "ledger.behind",
                "ledger unavailable: trading paused until the session's rows are committed",
                error=self._ledger_error,
                outage_limit_seconds=self.ledger_outage_seconds,
            )
        self._set_outputs(ledger_behind=True)

    async def _catch_up(self) -> None:
        """While the ledger is behind: no bar, no order; retry with backoff, or fail closed.

        The write runs on a worker thread (a locked SQLite file blocks it for the busy
        timeout); a stop or kill wakes the wait. Past ``ledger_outage_seconds`` the
        session ends ``failed``; its final batch is then retried in the background.
        """
        loop = asyncio.get_running_loop()
        delay = _RETRY_FIRST
        while self._behind_since is not None and not self._finished:
            behind = time.monotonic() - self._behind_since
            if behind >= self.ledger_outage_seconds:
                self._finish(
                    "failed",
                    f"ledger unavailable for {behind:.0f} s "
                    f"(limit {self.ledger_outage_seconds:g} s)",
                    error=self._ledger_error,
                )
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(min(delay, self.ledger_outage_seconds - behind)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            if self._finished:
                return
            await loop.run_in_executor(None, self._write_behind)
            delay = min(delay * 2, _RETRY_MAX)

    def _write_behind(self) -> None:
        """Retry the write of everything the ledger has not taken yet (one transaction)."""
        with self._lock:
            if self._finished or self._behind_since is None:
                return
            if not self._write(self._batch(flush_state=True)):
                return
            self._consume()
            behind = time.monotonic() - self._behind_since
            self._behind_since = None
            self._bars_committed()  # publishes ledger.behind and the rest, after their rows
            self._frame(
                "ledger.caught_up",
                f"ledger available again after {behind:.1f} s: trading resumed",
                behind_seconds=behind,
            )
        self._set_outputs(ledger_behind=False)
        log.warning("paper session %s: ledger caught up after %.1f s", self.paper_run_id, behind)

    def _flush(self, flush_state: bool = False) -> None:
        if self._write(self._batch(flush_state=flush_state)):
            self._consume()
            self._publish_pending()

    def _bars_batch(self) -> dict[str, Any]:
        """Under the lock: the batch of the bars processed since the last commit.

        It carries the state snapshot every ``state_flush_every`` bars.
        """
        engine = self._engine
        state_at = engine.bar_index // self.state_flush_every
        return self._batch(flush_state=state_at > self._state_flushed_at)

    def _bars_committed(self) -> None:
        """Under the lock, after the commit of :meth:`_bars_batch`: publish, update outputs."""
        frames = self._take_committed()
        for frame in frames:
            self.frames.publish(frame)
        values = self._output_values()
        if frames:
            values["last_frame"] = frames[-1]
        self._last_output = self._last_flush
        self._set_outputs(**values)

    def _flush_bars(self) -> None:
        """Under the lock: commit the bars processed so far on their own, then publish."""
        if self._write(self._bars_batch()):
            self._consume()
            self._bars_committed()

    def _output_values(self) -> dict[str, Any]:
        engine = self._engine
        if engine is None:
            return {}
        broker = engine.broker
        equity = broker.equity
        return {
            "equity": equity,
            "cash": broker.cash,
            "positions": self._positions_snapshot(),
            "num_fills": len(broker.fills),
            "bars_seen": engine.bars_seen,
            "total_pnl": equity - self.starting_cash,
            "realized_pnl": broker.realized_pnl,
        }

    def _update_outputs(self) -> None:
        values = self._output_values()
        if values:
            self._set_outputs(**values)

    # -- ending -----------------------------------------------------------------------
    def _prepare_finish(
        self,
        status: str,
        reason: str,
        mode: str = "cancel",
        error: str = "",
        *,
        announce: bool = True,
        claimed: bool = False,
        at: datetime | None = None,
    ) -> dict[str, Any] | None:
        """Under the lock: cancel, flatten, build the final batch. None if already done.

        ``announce`` shows ``stopping`` while one session stops; a bulk stop skips it,
        its sessions reach their final status within the same call. ``claimed``: the
        caller has already marked the session finished (:meth:`_claim_finish`). ``at``
        is the end time (now by default).
        """
        with self._lock:
            if not claimed and not self._claim_finish():
                return None
            engine = self._engine
            if announce:
                self._set_outputs(status="stopping")
            cancelled = engine.cancel_all(_cancel_code(status), reason) if engine else []
            flattened = engine.flatten(reason) if engine and mode == "flatten" else []
            cancelled_ids = [o.id for o in cancelled]
            flattened_symbols = [f.symbol for f in flattened]
            halt = engine.halt_action if engine else None
            if halt is not None:  # a risk halt cancelled and flattened first: agree with it
                mode = "flatten" if "flatten" in (mode, halt["mode"]) else halt["mode"]
                cancelled_ids = [*halt["orders_cancelled"], *cancelled_ids]
                flattened_symbols = [*halt["positions_flattened"], *flattened_symbols]
            if error:
                self._frame("error", error, error=error)
            summary = engine.summary() if engine else {}
            positions = self._positions_snapshot()  # after a flatten; shared by the rows below
            shared = {"positions": positions, "equity": summary["final_equity"]} if engine else {}
            result = {
                "paper_run_id": self.paper_run_id,
                "status": status,
                "stop_reason": reason,
                **summary,
                "error": error or None,
            }
            self._frame(
                "session.stopped",
                f"session {status}: {reason}",
                status=status,
                reason=reason,
                mode=mode,
                orders_cancelled=cancelled_ids,
                positions_flattened=flattened_symbols,
                cash=engine.broker.cash if engine else self.starting_cash,
                **shared,
            )
            self._frame("done", f"session {status}", result=result, **shared)
            now = at or datetime.now(UTC)
            batch = self._batch(
                run_update={
                    "status": status,
                    "stop_reason": reason,
                    "ended_at": now,
                    "error": error or None,
                },
                flush_state=True,
                positions=positions,
                summary=summary or None,
            )
            unpublished, self._unpublished = self._unpublished, []
            return {
                "batch": batch,
                "status": status,
                "reason": reason,
                "error": error,
                "at": now,
                "unpublished": unpublished,  # committed before; published before the batch
            }

    def _claim_finish(self) -> bool:
        """Mark the session finished: no bar is processed after this. False if it was.

        It does not take the session's lock, which a write waiting for the ledger may
        hold: a halt never waits for the ledger to stop a session.
        """
        with self._finish_lock:
            if self._finished:
                return False
            self._finished = True
            return True

    def _complete_finish(
        self,
        prepared: dict[str, Any],
        wake_loop: bool = True,
        notify: bool = True,
        committed: bool = True,
    ) -> None:
        """After the final batch: publish, update outputs, wake waiters.

        ``wake_loop`` and ``notify`` (tell the registry) are left to the caller of a
        bulk stop, which does each once for all its sessions. When the final batch is
        not ``committed`` yet (the ledger is out of reach), the session has its final
        status but its last frames wait for the commit (:meth:`_final_committed`).
        """
        with self._lock:
            committed_before, pending, self._pending = prepared["unpublished"], self._pending, []
        frames = committed_before + pending if committed else committed_before
        for frame in frames:
            self.frames.publish(frame)
        outputs = self._output_values()
        if frames:
            outputs["last_frame"] = frames[-1]
        if committed:
            self._final_written = True
            self.frames.close()
        else:
            prepared["frames"] = pending  # published by _final_committed
            outputs["ledger_behind"] = True
        self._set_outputs(
            **outputs,
            status=prepared["status"],
            stop_reason=prepared["reason"],
            error=prepared["error"],
            ended_at=prepared["at"],
        )
        release = getattr(self._engine.broker, "close", None) if self._engine else None
        if release is not None:  # a real broker's connections; off the kill switch's clock
            threading.Thread(target=release, name="broker-close", daemon=True).start()
        if not committed:  # before waiters wake: they find it queued
            final_writes().submit(self, prepared)
        self._done.set()
        if wake_loop:
            self._wake_runner()
        if notify:
            registry().ended(self)

    def _final_committed(self, prepared: dict[str, Any]) -> None:
        """The final batch committed late (the ledger came back): publish the last frames."""
        with self._lock:
            frames = prepared.pop("frames", [])
            self._final_written = True
        for frame in frames:
            self.frames.publish(frame)
        self.frames.close()
        outputs: dict[str, Any] = {"ledger_behind": False}
        if frames:
            outputs["last_frame"] = frames[-1]
        self._set_outputs(**outputs)
        log.warning("paper session %s: final batch committed late", self.paper_run_id)

    def _wake_runner(self) -> None:
        """Wake the session's task if it waits between bars (it then sees it finished)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _finish(self, status: str, reason: str, mode: str = "cancel", error: str = "") -> bool:
        prepared = self._prepare_finish(status, reason, mode, error)
        if prepared is None:
            return False
        committed = self._write_final(prepared)
        self._complete_finish(prepared, committed=committed)
        return True

    def _write_final(self, prepared: dict[str, Any], *, retry: bool = False) -> bool:
        """Commit the final batch; True once it (or the final row alone) is committed.

        While the ledger is out of reach :meth:`_complete_finish` hands the batch to
        :func:`~alphaswarm.trading.final_writes.final_writes`, which calls this again
        (``retry``) until it commits, then publishes the last frames. A batch the
        ledger rejects for its content is replaced by the final row alone, its
        counters recounted from the fills the ledger holds: a run row never counts a
        fill the ledger does not have, and never stays ``running``.
        """
        try:
            self.ledger_.write_batch(self.paper_run_id, **prepared["batch"])
        except LedgerUnavailable as exc:
            if not retry:
                log.warning(
                    "final batch of %s: ledger unavailable (%s); retrying in the background",
                    self.paper_run_id,
                    exc,
                )
            return False
        except Exception:  # noqa: BLE001 - never leave a running row behind
            log.exception(
                "final batch of %s failed; writing the final row alone", self.paper_run_id
            )
            if not self._write_final_row_only(prepared):
                return False
        if retry:
            self._final_committed(prepared)
        return True

    def _write_final_row_only(self, prepared: dict[str, Any]) -> bool:
        """The final status alone, counters recounted from the ledger; False if not written."""
        update = {
            k: v
            for k, v in prepared["batch"]["run_update"].items()
            if k in ("status", "stop_reason", "ended_at", "error")
        }
        try:
            self.ledger_.finalize_paper_run(self.paper_run_id, recount=True, **update)
        except LedgerUnavailable:
            return False
        except Exception:  # noqa: BLE001
            log.exception("could not finalise paper run %s", self.paper_run_id)
        prepared["batch"] = {"run_update": {}}  # a retry only checks the row exists
        return True

    @staticmethod
    def finish_many(
        sessions: list[PaperSession],
        status: str,
        reason: str,
        mode: str = "cancel",
        on_committed: Callable[[int], None] | None = None,
        on_closed: Callable[[int], None] | None = None,
    ) -> int:
        """Stop several sessions: their stop first, then their closing rows.

        1. Every session is marked finished (it processes no bar after this) and one
           transaction per ledger sets their run rows' final ``status``,
           ``stop_reason`` and ``ended_at`` and cancels their open orders in the
           ledger. ``on_committed(count)`` is called at its commit.
        2. Each session then cancels (or flattens) in memory and builds its closing
           batch (the bars not committed yet, the cancelled orders, its last frames,
           counters and state), all written in one more transaction per ledger;
           ``on_closed(count)`` is called at that commit. The sessions then publish
           their last frames and update their outputs.

        A stop that step 1 could not commit is committed by step 2 with the rest.

        The ledger never delays the stop itself: each session shows its final
        ``status`` as soon as it is marked finished, its writes here wait at most
        :data:`HALT_WRITE_WAIT` for a lock held elsewhere (what the ledger does not
        take then is retried in the background by
        :func:`~alphaswarm.trading.final_writes.final_writes`), and a session whose own
        write is waiting for the ledger (it holds its lock meanwhile) is finished by a
        helper thread once that write returns.
        """
        with tuning.latency_critical():  # no collection on the halt's clock, if tuned
            claimed = [s for s in sessions if s._claim_finish()]
            for s in claimed:  # halted: no bar from now on, and the status says so
                s._set_outputs(status=status, stop_reason=reason)
            at = datetime.now(UTC)
            with bounded_writes(HALT_WRITE_WAIT):
                stopped = _commit_stops(claimed, status, reason, mode, at)
                if on_committed is not None and claimed and stopped:
                    on_committed(len(claimed))
                prepared = []
                busy = []
                lock_deadline = time.monotonic() + HALT_LOCK_WAIT  # for all of them
                for s in claimed:
                    wait = max(0.0, lock_deadline - time.monotonic())
                    if not s._lock.acquire(timeout=wait):
                        busy.append(s)  # its own write waits for the ledger: finished later
                        continue
                    try:
                        prepared.append(
                            (s, s._prepare_finish(status, reason, mode, announce=False,
                                                  claimed=True, at=at))  # fmt: skip
                        )
                    finally:
                        s._lock.release()
                late: set[int] = set()  # sessions whose ledger did not take the final batch
                for group in _by_ledger(prepared):
                    late |= _write_final_group(group)
            if busy:
                _finish_later(busy, status, reason, mode, at)
            closed = len(prepared) - len(late)  # the others' rows wait for their ledger
            if on_committed is not None and closed and not stopped:
                on_committed(closed)
            if on_closed is not None and closed:
                on_closed(closed)
        loops: dict[int, tuple[asyncio.AbstractEventLoop, list[PaperSession]]] = {}
        for s, p in prepared:
            s._complete_finish(p, wake_loop=False, notify=False, committed=id(s) not in late)
            if s._loop is not None and not s._loop.is_closed():
                loops.setdefault(id(s._loop), (s._loop, []))[1].append(s)
        for loop, group in loops.values():  # one wake-up per loop, not one per session
            loop.call_soon_threadsafe(_wake_all, group)
        if prepared:
            registry().ended(prepared[0][0])  # one version bump for the whole stop
        return len(claimed)

    def stop(self, reason: str = "stopped by user") -> bool:
        """Stop now: cancel open orders, write the final row (status ``stopped``)."""
        if self.status in ("created",):
            raise ModelError("status: the session has not started")
        return self._finish("stopped", reason)

    def kill(self, reason: str = "kill switch", mode: str = "cancel") -> bool:
        """Stop now with status ``killed`` (what the kill switch does to each session)."""
        return self._finish("killed", reason, mode)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the session has finished (True) or ``timeout`` passed (False)."""
        if not self._done.is_set() and self._loop is not None:
            try:
                here = asyncio.get_running_loop() is self._loop
            except RuntimeError:
                here = False
            if here:
                raise ModelError(
                    "wait: this session runs on the calling thread's event loop, so blocking "
                    "here would stop it; use `await session.wait_async()`"
                )
        return self._done.wait(timeout)

    async def wait_async(self, timeout: float | None = None) -> bool:
        """Await the end of the session without blocking the loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- display ----------------------------------------------------------------------
    def __panel__(self) -> Any:
        """The live session view (dashboard components)."""
        from alphaswarm.ui.session_view import SessionView

        return SessionView(session=self)

    def show(self, **kwargs: Any) -> Any:
        """Open the live session view in a browser tab (``panel serve`` style)."""
        import panel as pn

        return pn.panel(self.__panel__()).show(**kwargs)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        from alphaswarm.notebook import notebook_mimebundle

        return notebook_mimebundle(self, include, exclude)

    def __repr__(self) -> str:
        return (
            f"PaperSession(id={self.paper_run_id!r}, bot={self.bot.name if self.bot else None!r}, "
            f"status={self.status!r}, equity={self.equity:,.2f}, fills={self.num_fills})"
        )

    __str__ = __repr__

    def explain(self, order_id: str) -> dict[str, Any]:
        """One order's life: its signal, risk checks, fills and why it is open or closed."""
        from alphaswarm.explain import explain_order

        return explain_order(self.ledger_, self.paper_run_id, order_id)


#: Seconds a halt's writes wait for a lock held elsewhere (then retried in the background).
HALT_WRITE_WAIT = 0.05
#: Seconds a halt waits for the locks of its sessions (all together); a session whose
#: lock is still held then (by its own write, waiting for the ledger) is finished on a
#: helper thread.
HALT_LOCK_WAIT = 0.05


def _finish_later(
    sessions: list[PaperSession], status: str, reason: str, mode: str, at: datetime
) -> None:
    """Finish claimed sessions on a helper thread once their own writes return."""

    def finish() -> None:
        for s in sessions:
            try:
                prepared = s._prepare_finish(
                    status, reason, mode, announce=False, claimed=True, at=at
                )
                if prepared is not None:
                    s._complete_finish(prepared, committed=s._write_final(prepared))
            except Exception:  # noqa: BLE001 - the others still finish
                log.exception("could not finish paper session %s", s.paper_run_id)

    threading.Thread(target=finish, name="alphaswarm-halt-finish", daemon=True).start()


def _cancel_code(status: str) -> str:
    """The ``reason_code`` of the orders a session ending with ``status`` cancels."""
    return "kill_switch" if status == "killed" else "session_end"


def _by_ledger(items: list[tuple[PaperSession, Any]]) -> list[list[tuple[PaperSession, Any]]]:
    """``(session, value)`` pairs grouped by the session's ledger, in order."""
    groups: dict[int, list[tuple[PaperSession, Any]]] = {}
    for session, value in items:
        groups.setdefault(id(session.ledger_), []).append((session, value))
    return list(groups.values())


def _commit_stops(
    sessions: list[PaperSession], status: str, reason: str, mode: str, at: datetime
) -> bool:
    """Step 1 of :meth:`PaperSession.finish_many`; False if a ledger could not take it."""
    code = _cancel_code(status)
    done = True
    for group in _by_ledger([(s, None) for s in sessions]):
        try:
            group[0][0].ledger_.stop_runs(
                [s.paper_run_id for s, _ in group],
                status=status,
                reason=reason,
                at=at,
                cancel_orders=(code, reason) if mode in ("cancel", "flatten") else None,
            )
        except Exception:  # noqa: BLE001 - the closing batch commits the stop instead
            log.exception("could not commit the stop of %d sessions first", len(group))
            done = False
    return done


def _write_final_group(group: list[tuple[PaperSession, dict[str, Any]]]) -> set[int]:
    """Commit the final batches of sessions sharing one ledger; alone if that fails.

    Returns the ``id()`` of the sessions whose final batch is not committed (their
    ledger is out of reach): the caller queues them for :func:`final_writes`.
    """
    ledger = group[0][0].ledger_
    try:
        ledger.write_batches([(s.paper_run_id, p["batch"]) for s, p in group])
        return set()
    except LedgerUnavailable as exc:  # the others would wait as long again, each
        log.warning("final write of %d sessions: ledger unavailable (%s)", len(group), exc)
        return {id(s) for s, _ in group}
    except Exception:  # noqa: BLE001
        log.exception("combined final write failed; writing each run alone")
    return {id(s) for s, p in group if not s._write_final(p)}


def _next_tick(t: float) -> float:
    """The first tick of :data:`_PACE_TICK` at or after loop time ``t``."""
    return math.ceil(t / _PACE_TICK) * _PACE_TICK


class _PerLoop:
    """A helper of which each event loop has one, made on first use."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_loop = weakref.WeakKeyDictionary()  # one registry per kind

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Self:
        """The one of ``loop`` (call on the loop's thread)."""
        one = cls._by_loop.get(loop)
        if one is None:
            one = cls._by_loop.setdefault(loop, cls(loop))
        return one


class _GroupCommit(_PerLoop):
    """Commits the bars of one loop's paced sessions together, once per loop turn.

    A paced session that processed a bar adds itself; in the next turn of the loop the
    bars of every session added meanwhile go into one ``write_batches`` transaction
    (one per ledger), so many sessions cost one commit instead of one each. Each
    session's lock is held from building its batch until its frames are published:
    a stop or kill on another thread waits, then finds the bars committed, or finishes
    first and its final batch takes them (the session is then skipped here).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._sessions: list[PaperSession] = []

    def add(self, session: PaperSession) -> None:
        """Commit ``session``'s bars in the next loop turn (call on the loop's thread)."""
        if not self._sessions:
            self._loop.call_soon(self._commit)
        self._sessions.append(session)

    def _commit(self) -> None:
        if _halts_pending():  # a kill or stop-all takes these bars in its final rows
            self._loop.call_later(_HALT_POLL, self._commit)
            return
        sessions, self._sessions = self._sessions, []
        failed: list[tuple[PaperSession, Exception]] = []
        committed: list[PaperSession] = []
        with ExitStack() as locks:
            batches: list[tuple[PaperSession, dict[str, Any]]] = []
            for s in sessions:
                locks.enter_context(s._lock)
                if s._finished or not s._unflushed:  # a final batch or a heartbeat took them
                    continue
                try:
                    batch = s._bars_batch()
                except Exception as exc:  # noqa: BLE001 - that session fails, not the others
                    failed.append((s, exc))
                    continue
                batches.append((s, batch))
            for group in _by_ledger(batches):
                failed += _write_group(group)
            bad = {id(s) for s, _ in failed}
            for s, _ in batches:
                if id(s) not in bad:
                    s._consume()
                    s._unpublished += s._pending  # committed: a stop from now on skips them
                    s._pending = []
                    committed.append(s)
        # The locks are free again: a kill waits for the commit, not for the publishing.
        for s in committed:
            with s._lock:
                if s._finished:  # its stop publishes them, before its own frames
                    continue
                try:
                    s._bars_committed()
                except Exception as exc:  # noqa: BLE001
                    failed.append((s, exc))
        for s, exc in failed:  # as when the session's own task raises: it fails
            if isinstance(exc, LedgerUnavailable):  # unless its ledger may take it later
                s._fall_behind(exc)
                continue
            log.error("paper session %s failed", s.paper_run_id, exc_info=exc)
            s._finish(
                "failed", f"error: {type(exc).__name__}", error=f"{type(exc).__name__}: {exc}"
            )


def _write_group(
    group: list[tuple[PaperSession, dict[str, Any]]],
) -> list[tuple[PaperSession, Exception]]:
    """Write the batches of sessions sharing one ledger in one transaction.

    If that fails, each is written alone; returns the sessions whose own write failed.
    """
    ledger = group[0][0].ledger_
    try:
        ledger.write_batches([(s.paper_run_id, batch) for s, batch in group])
        return []
    except Exception as exc:  # noqa: BLE001 - one bad batch must not fail the others
        if len(group) == 1:
            return [(group[0][0], exc)]
        log.warning("group commit of %d sessions failed (%s); writing each alone", len(group), exc)
    failed = []
    for s, batch in group:
        try:
            ledger.write_batch(s.paper_run_id, **batch)
        except Exception as exc:  # noqa: BLE001
            failed.append((s, exc))
    return failed


def _wake_all(sessions: list[PaperSession]) -> None:
    for session in sessions:
        if session._wake is not None:
            session._wake.set()


#: Seconds between looks at whether a kill or stop-all is still stopping sessions.
_HALT_POLL = 0.001


def _halts_pending() -> bool:
    """True while a kill switch engages or a stop-all stops sessions."""
    return registry().halting.is_set() or kill_switch().engaging.is_set()


async def _yield_to_halts() -> None:
    """While a kill or stop-all is stopping sessions, take no new bar: it gets the CPU."""
    if _halts_pending():
        await _HaltWait.of(asyncio.get_running_loop()).wait()


class _HaltWait(_PerLoop):
    """One poller per loop for the end of a halt, however many sessions wait for it.

    Hundreds of sessions polling each would keep the loop's thread, and so the
    interpreter lock, busy just when the halt needs them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._over: asyncio.Future[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        """Return once no halt is pending."""
        if self._over is None or self._over.done():
            self._over = self._loop.create_future()
            self._poller = self._loop.create_task(self._poll(self._over))
        await asyncio.shield(self._over)  # one waiter cancelled never cancels the others

    @staticmethod
    async def _poll(over: asyncio.Future[None]) -> None:
        try:
            while _halts_pending():
                await asyncio.sleep(_HALT_POLL)
        finally:
            if not over.done():
                over.set_result(None)
