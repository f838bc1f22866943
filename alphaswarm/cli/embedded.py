"""The embedded backend: every command runs in this process against a ledger URL.

No server is needed. A ``paper run`` session runs on the shared engine loop
(:func:`alphaswarm.paper.runtime.engine_loop`) while the main thread prints its frames.

Other processes reach a session run here through the ledger: ``alphaswarm paper
stop ID`` writes a ``paper.stop_requested`` audit row and ``alphaswarm kill``
writes the kill-switch row; the running ``paper run`` polls both twice a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphaswarm.cli.errors import CliError

if TYPE_CHECKING:
    from alphaswarm.bots import Bot
    from alphaswarm.cli.output import FramePrinter
    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.session import PaperSession

STOP_ACTION = "paper.stop_requested"
BOT_SUFFIXES = (".yaml", ".yml", ".json")
_EXTERNAL_POLL_SECONDS = 0.5


@dataclass
class PaperOptions:
    """What ``paper run`` asks of a session."""

    starting_cash: float = 100_000.0
    duration_minutes: float | None = None
    speed: float = 1.0
    force: bool = False
    reason: str = ""
    max_bars: int | None = None
    run_name: str = ""
    feed: str | None = None
    symbols: list[str] | None = None
    backtest_id: str | None = None


@dataclass(frozen=True)
class BacktestOptions:
    """What ``backtest`` asks: a number of bars or a date range, and the starting cash."""

    bars: int | None = None
    start: str | None = None
    end: str | None = None
    starting_cash: float | None = None


#: The keys of a bot version shown by ``bots show``.
VERSION_KEYS = ("version", "spec_hash", "created_at")


def version_rows(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The :data:`VERSION_KEYS` of each bot version (``bots show``)."""
    return [{k: v.get(k) for k in VERSION_KEYS} for v in versions]


def ledger_url(value: str | None) -> str | None:
    """Accept a database URL or a plain file path (taken as an SQLite file)."""
    if value is None or "://" in value or value.startswith("sqlite:"):
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def looks_like_file(ref: str) -> bool:
    """True when ``ref`` names a bot file rather than a bot id."""
    return ref.endswith(BOT_SUFFIXES) or os.sep in ref or Path(ref).is_file()


class SignalTrap:
    """Record SIGINT/SIGTERM instead of raising, while installed (main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: give up waiting
        self.received = signum

    def __enter__(self) -> SignalTrap:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


class EmbeddedBackend:
    """Commands against the ledger at ``db_url`` (the process default when None)."""

    mode = "embedded"

    def __init__(self, db_url: str | None = None) -> None:
        from alphaswarm.paper.runtime import get_ledger, set_ledger

        self.ledger: Ledger = set_ledger(ledger_url(db_url)) if db_url else get_ledger()
        self.ledger.ensure_schema()

    # -- bots ------------------------------------------------------------------------
    def load_bot(self, ref: str) -> Bot:
        """A Bot from a bot file, or from the ledger by bot id or name."""
        from alphaswarm.bots import Bot

        if looks_like_file(ref):
            return Bot.load(ref)
        return Bot(self.ledger.bot_spec(self.bot_id(ref)))

    def bot_id(self, ref: str) -> str:
        """Resolve a bot id or name to its id, or fail with a readable error."""
        if self.ledger.get_bot(ref) is not None:
            return ref
        for bot in self.ledger.list_bots():
            if bot["name"] == ref:
                return bot["id"]
        raise CliError(
            f"unknown bot {ref!r}: no such bot id or name in the ledger and no such file",
            hint="see `alphaswarm bots list`, or pass a bot file (.yaml/.yml/.json)",
        )

    def create_bot(self, bot: Bot) -> dict[str, Any]:
        """Register ``bot``; a changed spec becomes a new version."""
        bot_id, version, created = self.ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
        return {
            "bot_id": bot_id,
            "name": bot.name,
            "version": version,
            "spec_hash": bot.spec_hash,
            "created": created,
        }

    def list_bots(self) -> list[dict[str, Any]]:
        """Every bot with its latest version and backtest reference."""
        return self.ledger.list_bots()

    def show_bot(self, ref: str) -> dict[str, Any]:
        """One bot, its versions and its latest backtest reference."""
        bot_id = self.bot_id(ref)
        bot = dict(self.ledger.get_bot(bot_id) or {})
        bot["versions"] = version_rows(self.ledger.bot_versions(bot_id))
        bot["paper_runs"] = len(self.ledger.list_runs(bot_id=bot_id))
        return bot

    # -- backtest --------------------------------------------------------------------
    def backtest(self, ref: str, options: BacktestOptions) -> dict[str, Any]:
        """Backtest a bot (file or id), store the run and evaluate the paper gate."""
        from alphaswarm.backtest import backtest
        from alphaswarm.paper.gate import check_gate

        bot = self.load_bot(ref)
        cash = options.starting_cash
        result = backtest(
            bot,
            bars=options.bars,
            start=options.start,
            end=options.end,
            starting_cash=cash if cash is not None else 100_000.0,
            ledger=self.ledger,
        )
        gate = check_gate(bot, self.ledger, bot_id=result.bot_id, bot_version=result.bot_version)
        return {
            "id": result.id,
            "bot_id": result.bot_id,
            "bot_version": result.bot_version,
            "bars": result.bars,
            "elapsed": result.elapsed,
            "metrics": dict(result.metrics),
            "halted": result.halted,
            "gate": {"status": gate.status, "errors": gate.errors, "warnings": gate.warnings},
        }

    # -- paper -----------------------------------------------------------------------
    def _with_feed(self, bot: Any, options: PaperOptions, printer: FramePrinter) -> Any:
        """The bot with ``--feed``/``--symbols`` applied, backtested on that feed for the gate."""
        from alphaswarm.backtest import backtest
        from alphaswarm.bots import Bot
        from alphaswarm.live import feed_override

        data, universe = feed_override(bot.spec.get("data"), options.feed, options.symbols)
        spec = {**bot.spec, "data": data}
        if universe:
            spec["universe"] = universe
        bot = Bot(spec)
        if (
            self.ledger.latest_backtest(
                *self.ledger.register_bot(bot.name, bot.spec, bot.spec_hash)[:2]
            )
            is None
        ):
            printer.note(f"backtesting {bot.name} on {options.feed} for the paper gate ...")
            result = backtest(bot, ledger=self.ledger)
            printer.note(
                f"backtest {result.id}: sharpe {result.metrics['sharpe']:.2f}, "
                f"max drawdown {result.metrics['max_drawdown']:.2%}"
            )
        return bot

    def paper_run(self, ref: str, options: PaperOptions, printer: FramePrinter) -> dict[str, Any]:
        """Run a paper session to its end, printing its frames; Ctrl-C stops it cleanly.

        Returns
        -------
        dict
            The final ``paper_trading_runs`` row plus ``signal`` (the signal number
            that stopped it, or None).
        """
        from alphaswarm.paper.session import PaperSession

        bot = self.load_bot(ref)
        if options.feed:
            bot = self._with_feed(bot, options, printer)
        session = PaperSession(
            bot,
            starting_cash=options.starting_cash,
            duration_minutes=options.duration_minutes,
            speed=options.speed,
            force=options.force,
            reason=options.reason,
            max_bars=options.max_bars,
            run_name=options.run_name,
            backtest_id=options.backtest_id,
            ledger=self.ledger,
        )
        frames: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with SignalTrap() as trap:
            audit_since = self._last_audit_id()
            session.frames.subscribe(frames.put)
            session.start()
            stopping = False
            last_poll = time.monotonic()
            while True:
                done = session.wait(0.1)
                self._drain(frames, printer)
                if trap.received is not None and not stopping:
                    stopping = True
                    name = signal.Signals(trap.received).name
                    printer.note(f"{name}: stopping paper run {session.paper_run_id} ...")
                    session.stop(f"interrupted by {name}")
                elif not done and time.monotonic() - last_poll >= _EXTERNAL_POLL_SECONDS:
                    last_poll = time.monotonic()
                    audit_since = self._obey_ledger(session, audit_since, printer)
                printer.update(
                    status=session.status,
                    equity=session.equity,
                    total_pnl=session.total_pnl,
                    num_fills=session.num_fills,
                    bars_seen=session.bars_seen,
                )
                if done:
                    break
                printer.tick()
            self._drain(frames, printer)
        row = self.ledger.get_run(session.paper_run_id) or {}
        final = {**row, "paper_run_id": session.paper_run_id, "signal": trap.received}
        final.setdefault("status", session.status)
        final["equity"] = row.get("final_equity", session.equity)
        return final

    @staticmethod
    def _drain(frames: queue.SimpleQueue[dict[str, Any]], printer: FramePrinter) -> None:
        while True:
            try:
                frame = frames.get_nowait()
            except queue.Empty:
                return
            printer.frame(frame)

    def _last_audit_id(self) -> int:
        df = self.ledger.sql("SELECT MAX(id) AS id FROM audit_log")
        value = df["id"].iloc[0] if len(df) else None
        return int(value) if value is not None and value == value else 0

    def _obey_ledger(self, session: PaperSession, audit_since: int, printer: Any) -> int:
        """Apply what other processes asked through the ledger: kill switch, stop requests."""
        try:
            state = self.ledger.kill_switch_state()
            requests = self.ledger.sql(
                "SELECT id, detail FROM audit_log WHERE action = :action AND id > :since "
                "ORDER BY id",
                action=STOP_ACTION,
                since=audit_since,
            )
        except Exception:  # noqa: BLE001 - the session's own kill-switch gate fails closed
            return audit_since
        if state.get("engaged") and not state.get("expired"):
            mode = state.get("mode") or "cancel"
            if mode in ("cancel", "flatten"):
                reason = state.get("reason") or "kill switch engaged"
                printer.note(f"kill switch engaged ({mode}): {reason}")
                session.kill(reason, mode)
                return audit_since
        halted = (state.get("scope") or {}).get("halted_bots") or []
        if session.bot_id in halted:
            printer.note(f"bot {session.bot_id} halted by the kill switch")
            session.stop("bot halted by the kill switch")
            return audit_since
        for row in requests.itertuples(index=False):
            audit_since = max(audit_since, int(row.id))
            detail = row.detail
            if isinstance(detail, str):
                with contextlib.suppress(ValueError):
                    detail = json.loads(detail)
            if isinstance(detail, dict) and detail.get("paper_run_id") == session.paper_run_id:
                reason = detail.get("reason") or "stopped by `alphaswarm paper stop`"
                printer.note(f"stop requested by {detail.get('by', 'another process')}")
                session.stop(reason)
                break
        return audit_since

    def paper_stop(self, run_id: str, reason: str, wait: float) -> dict[str, Any]:
        """Stop a running session, wherever it runs on this ledger."""
        from alphaswarm.ledger import process_owner
        from alphaswarm.paper.recovery import owner_gone
        from alphaswarm.paper.registry import registry

        run = self._run(run_id)
        if run["status"] != "running":
            return {**run, "already": True}
        session = registry().get(run_id)
        if session is not None:
            session.stop(reason)
            return {**self._run(run_id), "already": False}
        self.ledger.audit(
            "cli", STOP_ACTION, {"paper_run_id": run_id, "reason": reason, "by": process_owner()}
        )
        owner = run.get("owner") or ""
        if owner_gone(owner):
            self.ledger.finalize_paper_run(
                run_id, status="stopped", stop_reason=f"{reason} (its process {owner} was gone)"
            )
            return {**self._run(run_id), "already": False}
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            run = self._run(run_id)
            if run["status"] != "running":
                return {**run, "already": False}
            time.sleep(0.1)
        raise CliError(
            f"asked paper run {run_id} to stop, but it is still running after {wait:g} s "
            f"(its process: {owner or 'unknown'})",
            hint="a run inside `alphaswarm serve` is stopped with --url http://host:port",
        )

    def _run(self, run_id: str) -> dict[str, Any]:
        run = self.ledger.get_run(run_id)
        if run is None:
            raise CliError(f"unknown paper run {run_id!r}", hint="see `alphaswarm paper list`")
        return run

    def paper_list(
        self, status: str | None = None, bot: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Paper runs, newest first."""
        bot_id = self.bot_id(bot) if bot else None
        return self.ledger.list_runs(status=status, bot_id=bot_id, limit=limit)

    def paper_show(self, run_id: str) -> dict[str, Any]:
        """One run row with its fill count."""
        run = self._run(run_id)
        df = self.ledger.sql(
            "SELECT COUNT(*) AS n FROM paper_fills WHERE paper_run_id = :run", run=run_id
        )
        run["fills_count"] = int(df["n"].iloc[0])
        return run

    # -- kill switch -----------------------------------------------------------------
    def _kill_switch(self) -> Any:
        from alphaswarm.paper.killswitch import kill_switch
        from alphaswarm.paper.registry import registry

        registry()  # registers this process's paper targets
        return kill_switch()

    def kill(
        self, mode: str, reason: str, ttl_seconds: float | None, bot: str | None
    ) -> dict[str, Any]:
        """Engage the kill switch (or halt one bot), persisted in the ledger."""
        bot_id = self.bot_id(bot) if bot else None
        result = self._kill_switch().engage(
            reason, mode=mode, ttl_seconds=ttl_seconds, bot=bot_id, actor="cli"
        )
        return result

    def kill_reset(self, bot: str | None) -> dict[str, Any]:
        """Release the kill switch (or one bot's halt)."""
        bot_id = self.bot_id(bot) if bot else None
        return self._kill_switch().reset(bot=bot_id, actor="cli")

    def kill_status(self) -> dict[str, Any]:
        """The kill switch as the ledger holds it."""
        ks = self._kill_switch()
        ks.refresh(force=True)
        state = ks.state()
        with contextlib.suppress(Exception):
            row = self.ledger.kill_switch_state()
            state["expires_at"] = row.get("expires_at")
            state["updated_at"] = row.get("updated_at")
        return state
