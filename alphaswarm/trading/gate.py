"""The paper gate: a bot may paper trade only after a recent, acceptable backtest.

Rules (each failure is listed, not just the first):

1. a ``backtest_runs`` row exists for the bot's current version;
2. it is at most ``max_age_days`` old (default 7);
3. its Sharpe is >= ``min_sharpe`` (default 0.5);
4. its max drawdown is <= ``max_drawdown`` (default 0.20);
5. ``risk.kill_switch_attached`` is true;
6. the feed can serve every universe symbol;
7. every ``metrics:`` item with a threshold holds;
8. ``deploy_target`` is not ``backtest_only``.

Warnings never block: a backtest older than 24 h, or one with fewer than 10 trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from alphaswarm.model import ModelError

if TYPE_CHECKING:
    from alphaswarm.bots import Bot
    from alphaswarm.data.base import Feed
    from alphaswarm.ledger import Ledger

DEFAULTS = {
    "min_sharpe": 0.5,
    "max_drawdown": 0.20,
    "max_age_days": 7.0,
    "warn_age_hours": 24.0,
    "min_trades_warning": 10,
}


@dataclass
class GateResult:
    """Outcome of the paper gate."""

    status: str  # ok | warning | error
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    backtest: dict[str, Any] | None = None
    forced: bool = False
    reason: str = ""
    enforced: bool = True
    rules: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when nothing blocks the start (or it was forced)."""
        return not self.errors or self.forced

    def to_frame_extras(self) -> dict[str, Any]:
        """Extras of the ``metadata_gate`` frame."""
        bt = self.backtest or {}
        return {
            "status": self.status,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "enforced": self.enforced,
            "forced": self.forced,
            "reason": self.reason,
            "backtest_id": bt.get("id"),
            "sharpe": bt.get("sharpe"),
            "max_drawdown": bt.get("max_drawdown"),
            "rules": self.rules,
        }


class GateRefused(ModelError):
    """The paper gate refused to start a session; ``result.errors`` lists every failing rule."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        super().__init__(
            "paper gate refused: "
            + "; ".join(result.errors)
            + ". Backtest this bot version (bot.backtest()) until it passes, or start with "
            "force=True and a reason"
        )


def _compare(value: float, direction: str, threshold: float) -> bool:
    return value >= threshold if direction == ">=" else value <= threshold


def check_gate(
    bot: Bot,
    ledger: Ledger,
    feed: Feed | None = None,
    *,
    bot_id: str | None = None,
    bot_version: int | None = None,
    now: datetime | None = None,
    **overrides: Any,
) -> GateResult:
    """Evaluate the paper gate for ``bot``; never raises on a failing rule.

    Parameters
    ----------
    bot : Bot
        The bot about to paper trade.
    ledger : Ledger
        Where its backtests are.
    feed : Feed, optional
        The feed the session will use (for the universe rule).
    bot_id, bot_version : optional
        The registered identity (registered on the fly when missing).
    now : datetime, optional
        The reference time for the age rule.
    **overrides
        ``min_sharpe``, ``max_drawdown``, ``max_age_days``, ``warn_age_hours``,
        ``min_trades_warning``; the bot's ``gate:`` block sits between these and
        the defaults.
    """
    rules = {**DEFAULTS, **(bot.spec.get("gate") or {}), **overrides}
    now = now or datetime.now(UTC)
    if bot_id is None or bot_version is None:
        bot_id, bot_version, _ = ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    errors: list[str] = []
    warnings: list[str] = []
    bt = ledger.latest_backtest(bot_id, bot_version)
    if bt is None:
        errors.append(
            f"no backtest_runs row for bot {bot_id} version {bot_version}: run a backtest first"
        )
    else:
        created = bt.get("created_at") or bt.get("ended_at") or bt.get("started_at")
        age = now - created if created is not None else timedelta(0)
        if age > timedelta(days=rules["max_age_days"]):
            errors.append(
                f"latest backtest {bt['id']} is {age.total_seconds() / 86400:.1f} days old "
                f"(max {rules['max_age_days']:g})"
            )
        elif age > timedelta(hours=rules["warn_age_hours"]):
            warnings.append(
                f"latest backtest {bt['id']} is {age.total_seconds() / 3600:.0f} h old "
                f"(consider re-running it)"
            )
        sharpe = bt.get("sharpe")
        if sharpe is None or not sharpe >= rules["min_sharpe"]:
            errors.append(f"sharpe {sharpe!s:.6} < min_sharpe {rules['min_sharpe']:g}")
        dd = bt.get("max_drawdown")
        if dd is None or not dd <= rules["max_drawdown"]:
            errors.append(f"max_drawdown {dd!s:.6} > {rules['max_drawdown']:g}")
        trades = bt.get("num_trades") or 0
        if trades < rules["min_trades_warning"]:
            warnings.append(
                f"latest backtest has only {trades} trades (< {rules['min_trades_warning']})"
            )
        for metric in bot.spec.get("metrics") or []:
            if "threshold" not in metric:
                continue
            name = "win_rate" if metric["name"] == "hit_rate" else metric["name"]
            value = bt.get(name)
            if value is None or not _compare(value, metric["direction"], metric["threshold"]):
                errors.append(
                    f"metric {metric['name']} = {value} fails {metric['direction']} "
                    f"{metric['threshold']:g}"
                )
    if not bot.kill_switch_attached:
        errors.append("risk.kill_switch_attached is not true")
    if bot.spec.get("deploy_target") == "backtest_only":
        errors.append("deploy_target is backtest_only")
    if feed is not None:
        missing = feed.covers(bot.universe)
        if missing:
            errors.append(f"the feed cannot serve universe symbol(s): {', '.join(missing)}")
    status = "error" if errors else ("warning" if warnings else "ok")
    return GateResult(status, errors, warnings, bt, rules=rules)
