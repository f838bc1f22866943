"""``alphaswarm serve --demo``: a demo bot that honestly passes the gate, trading at once.

Idempotent: the same spec is the same bot version, a fresh backtest of that
version is reused, and a demo session already running in this process is reused.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from alphaswarm.backtest import backtest
from alphaswarm.bots import DEMO_SPEC, Bot
from alphaswarm.paper.killswitch import KillSwitchEngaged
from alphaswarm.paper.runtime import Runtime, current
from alphaswarm.paper.session import PaperSession

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

log = logging.getLogger(__name__)

DEMO_SPEED = 60.0
DEMO_RUN_NAME = "demo"


def demo_bot() -> Bot:
    """The demo bot."""
    return Bot(DEMO_SPEC)


def ensure_demo(
    ledger: Ledger | None = None, *, speed: float = DEMO_SPEED, runtime: Runtime | None = None
) -> PaperSession | None:
    """Register the demo bot, backtest it when needed and start (or reuse) its session.

    Parameters
    ----------
    ledger : Ledger, optional
        The ledger (the runtime's otherwise).
    speed : float
        Session speed: 60 plays a minute bar per second.
    runtime : Runtime, optional
        The session's runtime (the process's otherwise).

    Returns
    -------
    PaperSession or None
        The running demo session; ``None`` while the kill switch refuses new sessions.
    """
    runtime = runtime or current()
    ledger = ledger or runtime.ledger
    bot = demo_bot()
    bot_id, version, _ = ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    latest = ledger.latest_backtest(bot_id, version)
    fresh = latest is not None and (
        latest.get("created_at") or datetime.min.replace(tzinfo=UTC)
    ) > (datetime.now(UTC) - timedelta(hours=12))
    if not fresh:
        result = backtest(bot, ledger=ledger)
        log.info("demo backtest %s: sharpe %.2f", result.id, result.metrics["sharpe"])
    for session in runtime.registry.running(bot_id):
        if session.run_name == DEMO_RUN_NAME:
            return session
    try:
        session = PaperSession(
            bot,
            ledger=ledger,
            speed=speed,
            duration_minutes=None,
            run_name=DEMO_RUN_NAME,
            runtime=runtime,
        )
        runtime.kill_switch.check_start(bot_id)
        return session.start(loop=runtime.engine_loop())
    except KillSwitchEngaged as exc:
        log.warning("demo session not started: %s", exc)
        return None
