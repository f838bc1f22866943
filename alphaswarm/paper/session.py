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
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import param

from alphaswarm.bots import Bot
from alphaswarm.broker.spec import make_session_broker
from alphaswarm.engine.loop import Engine
from alphaswarm.frame_records import as_frame, json_ready_positions
from alphaswarm.frames import FrameBus, frame_envelope, iso_bar_time
from alphaswarm.ledger.equity_points import EquityPoints
from alphaswarm.ledger.store import KillSwitchRefusal
from alphaswarm.model import ModelError
from alphaswarm.paper.commits import SessionCommits, _GroupCommit
from alphaswarm.paper.drivers import SessionDriver
from alphaswarm.paper.frame_recorder import SessionRecorder
from alphaswarm.paper.gate import GateRefused, GateResult, check_gate
from alphaswarm.paper.halts import SessionHalts
from alphaswarm.paper.killswitch import KillSwitchEngaged
from alphaswarm.paper.runtime import Runtime, current
from alphaswarm.views import view

if TYPE_CHECKING:
    import pandas as pd

    from alphaswarm.data.base import Feed
    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.pacer import Pacer

log = logging.getLogger(__name__)

_OUTPUTS = (
    "paper_run_id", "bot_id", "bot_version", "status", "equity", "cash", "positions",
    "num_fills", "bars_seen", "total_pnl", "realized_pnl", "last_frame", "stop_reason",
    "error", "gate", "started_at", "ended_at", "ledger_behind",
)  # fmt: skip
FINAL_STATUSES = ("completed", "stopped", "halted", "killed", "failed", "refused")


class PaperSession(SessionDriver, SessionCommits, SessionHalts, param.Parameterized):
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
    ledger = param.Parameter(default=None, doc="Ledger override; the runtime's ledger otherwise.")
    runtime = param.ClassSelector(
        class_=Runtime,
        default=None,
        allow_None=True,
        instantiate=False,
        precedence=-1,
        doc="The ledger, kill switch, registry and engine loop this session works with; "
        "the process's runtime (Runtime.default()) when None at creation.",
    )
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
        if params.get("runtime") is None:
            params["runtime"] = current()
        super().__init__(**params)
        for name in _OUTPUTS:  # instance copies now, not on the kill switch's clock
            self.param[name]
        self.frames = FrameBus()
        self._run_id = ""  # paper_run_id, read per frame without a Param lookup
        self._speed = self.speed  # the pace the driver runs at (it re-reads ``speed``)
        self._lock = threading.RLock()
        self._seq = 0
        # frames (or records of frames, see alphaswarm.frame_records) not committed yet
        self._pending: list[dict[str, Any] | tuple] = []
        self._unpublished: list[dict[str, Any] | tuple] = []  # committed, not published yet
        self._engine: Engine | None = None
        self._finished = False
        # guards _finished alone: a halt claims a session whose lock a write holds
        self._finish_lock = threading.Lock()
        self._done = threading.Event()
        self._stop_requested = False
        self._waiter: asyncio.Future[None] | None = None  # a paced wait between bars
        self._pacer: Pacer | None = None
        self._commits: _GroupCommit | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: Any = None
        self._fills_written = 0
        self._last_output = 0.0
        self._last_bar_ts: datetime | None = None
        # (bar time, its ISO text) of the last frame: formatted once per bar
        self._bar_time_text: tuple[datetime | None, str | None] | None = None
        self._last_bar_wall = 0.0
        self._last_heartbeat = 0.0
        self._ledger: Ledger | None = None
        self._unflushed = 0
        #: ``(ts, equity, cash)`` of each bar not committed yet.
        self._equity_points = EquityPoints()
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
            self._ledger = self.ledger or self.runtime.ledger
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
        return self._listener(stage, message, extras)

    def _listener(self, stage: str, message: str, extras: dict[str, Any]) -> dict[str, Any]:
        """A frame of ``stage`` (``extras`` is the caller's own dict: it is added to)."""
        self._seq = seq = self._seq + 1
        engine = self._engine
        positions = None
        if engine is not None:
            if "equity" not in extras:
                extras["equity"] = engine.broker.equity
            if "positions" not in extras:  # the last key, added once the others are safe
                positions = json_ready_positions(self._positions_snapshot())
        else:  # before the account exists (the gate): its starting cash, no positions
            extras.setdefault("equity", self.starting_cash)
            extras.setdefault("positions", {})
        frame = frame_envelope(self._run_id, stage, message, seq, extras, bar_time=self._bar_time())
        if positions is not None:
            frame["positions"] = positions
        self._pending.append(frame)
        return frame

    def _bar_time(self) -> str | None:
        """The current bar's time as frames carry it (formatted once per bar)."""
        engine = self._engine
        ts = engine.last_ts if engine is not None else None
        cached = self._bar_time_text
        if cached is None or cached[0] != ts:
            cached = self._bar_time_text = (ts, iso_bar_time(ts))
        return cached[1]

    def _publish_pending(self) -> None:
        """Under the lock, after the commit of the pending frames: publish them."""
        frames = self._take_committed()
        self.frames.publish_many(frames)
        if frames:
            self._set_outputs(last_frame=as_frame(self._run_id, frames[-1]))

    def _take_committed(self) -> list[dict[str, Any]]:
        """Under the lock: the frames to publish now, oldest first.

        Those committed by a group commit and not published yet, then the pending
        ones, which the caller has just committed.
        """
        # a new list to hand out; the buffers are emptied, not replaced: a paced session
        # would otherwise leave two new lists a bar that outlive the young collections
        frames = self._unpublished + self._pending
        self._unpublished.clear()
        self._pending.clear()
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
        ks = self.runtime.kill_switch
        ks.check_start(bot_id)
        feed = self.feed if self.feed is not None else bot.make_feed()
        self._feed: Feed = feed
        run_id = f"paper-{uuid.uuid4().hex[:10]}"
        self.frames.task_id = self._run_id = run_id
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
            ks.refresh(force=True)
            self._pending.clear()
            self.frames.close()
            self._set_outputs(status="refused", stop_reason="kill switch")
            raise KillSwitchEngaged(str(exc)) from None
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
        ks = self.runtime.kill_switch
        recorder = SessionRecorder(self)
        self._engine = recorder.engine = Engine(
            bot.make_strategy(),
            broker,
            bot.risk_limits(),
            listener=self._listener,
            recorder=recorder,
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
        self.runtime.registry.add(self)
        # Other processes' engagements on this ledger reach this session at once.
        ks.watch(lambda: not self._finished)

    def _launch(self, loop: asyncio.AbstractEventLoop | None) -> PaperSession:
        loop = loop or self.runtime.engine_loop()
        self._loop = loop
        try:
            running_here = asyncio.get_running_loop() is loop
        except RuntimeError:
            running_here = False
        if running_here:
            self._create_task()
        else:
            # No run_coroutine_threadsafe: its concurrent future (a condition, locks and
            # the chaining callbacks) would live as long as the session, unused.
            loop.call_soon_threadsafe(self._create_task)
        return self

    def _create_task(self) -> None:
        """On the session's loop: create the task that trades (kept while it runs)."""
        self._task = self._loop.create_task(self._run())

    def stop(self, reason: str = "stopped by user") -> bool:
        """Stop now: cancel open orders, write the final row (status ``stopped``)."""
        if self.status in ("created",):
            raise ModelError("status: the session has not started")
        return self._finish("stopped", reason)

    def kill(self, reason: str = "kill switch", mode: str = "cancel") -> bool:
        """Stop now with status ``killed`` (what the kill switch does to each session)."""
        return self._finish("killed", reason, mode)

    def why_open(self, order_id: str) -> str | None:
        """Why order ``order_id`` is still open, asked of the live broker.

        None before the start, after the end, or when the broker does not know it.
        """
        engine = self._engine
        if engine is None or self._finished:
            return None
        try:
            with self._lock:  # the engine's thread mutates the order while a bar is processed
                return engine.broker.why_open(order_id)
        except KeyError:
            return None

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
        return view("paper_session", self)

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
        from alphaswarm.paper.explain import explain_order

        return explain_order(self.ledger_, self.paper_run_id, order_id, self.runtime.registry)
