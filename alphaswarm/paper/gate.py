"""The paper gate: a bot may paper trade only after a recent, acceptable backtest.

The gate judges one backtest of the bot's current version: the one named by
``backtest_id`` (Python ``PaperSession(backtest_id=...)``, CLI ``--backtest``,
HTTP body ``"backtest_id"``), or else the most recent one. It names the backtest
it judged (id, period, bars, trades) in its result, its frame and its refusal.

Rules (each failure is listed, not just the first):

1. a ``backtest_runs`` row exists for the bot's current version (with
   ``backtest_id``: that row exists and is of the current version);
2. it is at most ``max_age_days`` old (default 7);
3. its Sharpe is >= ``min_sharpe`` (default 0.5);
4. its max drawdown is <= ``max_drawdown`` (default 0.20);
5. it has at least ``min_trades`` trades (default 5) and ``min_bars`` bars
   (default 100): a handful of trades is no evidence;
6. it did not end in a risk halt (a halted backtest stopped early: its metrics
   describe only the bars before the halt);
7. ``risk.kill_switch_attached`` is true;
8. the feed can serve every universe symbol;
9. every ``metrics:`` item with a threshold holds;
10. ``deploy_target`` is not ``backtest_only``.

Warnings never block: a backtest older than 24 h, one with fewer than 10 trades
(``min_trades_warning``), or a judged latest backtest when the version has
several (choose one with ``backtest_id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from alphaswarm.metrics import metric_name
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
    "min_trades": 5,
    "min_bars": 100,
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

    @property
    def judged(self) -> dict[str, Any] | None:
        """The backtest the gate judged: id, period, bars, trades, metrics, halt."""
        return describe_backtest(self.backtest)

    def to_frame_extras(self) -> dict[str, Any]:
        """Extras of the ``metadata_gate`` frame."""
        bt = self.backtest or {}
        return {
            "judged": self.judged,
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
        judged = result.judged
        where = f" (judged backtest {judged['text']})" if judged else ""
        super().__init__(
            f"paper gate refused{where}: "
            + "; ".join(result.errors)
            + ". Backtest this bot version (aw.backtest(bot)) until it passes, or start with "
            "force=True and a reason"
        )


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def describe_backtest(bt: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON-ready identity of a ``backtest_runs`` row, with a one-line ``text``."""
    if not bt:
        return None
    halted = (bt.get("config") or {}).get("halted")
    start, end = bt.get("start_ts"), bt.get("end_ts")
    period = (
        f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
        if hasattr(start, "strftime") and hasattr(end, "strftime")
        else "period unknown"
    )
    return {
        "id": bt.get("id"),
        "bot_version": bt.get("bot_version"),
        "start_ts": _iso(start),
        "end_ts": _iso(end),
        "bars": bt.get("bars"),
        "num_trades": bt.get("num_trades"),
        "sharpe": bt.get("sharpe"),
        "max_drawdown": bt.get("max_drawdown"),
        "created_at": _iso(bt.get("created_at")),
        "halted": halted,
        "text": f"{bt.get('id')}: {period}, {bt.get('bars')} bars, {bt.get('num_trades')} trades",
    }


def _compare(value: float, direction: str, threshold: float) -> bool:
    return value >= threshold if direction == ">=" else value <= threshold


def check_gate(
    bot: Bot,
    ledger: Ledger,
    feed: Feed | None = None,
    *,
    bot_id: str | None = None,
    bot_version: int | None = None,
    backtest_id: str | None = None,
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
    backtest_id : str, optional
        The backtest to judge (of the current version); the most recent one
        otherwise.
    now : datetime, optional
        The reference time for the age rule.
    **overrides
        ``min_sharpe``, ``max_drawdown``, ``max_age_days``, ``warn_age_hours``,
        ``min_trades_warning``, ``min_trades``, ``min_bars``; the bot's ``gate:``
        block sits between these and the defaults.

    Returns
    -------
    GateResult
        ``errors`` (blocking), ``warnings``, ``backtest`` (the row judged) and
        ``judged`` (its id, period, bars and trades).
    """
    rules = {**DEFAULTS, **(bot.spec.get("gate") or {}), **overrides}
    now = now or datetime.now(UTC)
    if bot_id is None or bot_version is None:
        bot_id, bot_version, _ = ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    errors: list[str] = []
    warnings: list[str] = []
    bt = _chosen_backtest(ledger, bot_id, bot_version, backtest_id, errors, warnings)
    if bt is not None:
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
        if trades < rules["min_trades"]:
            errors.append(
                f"backtest {bt['id']} has {trades} trade(s) (min_trades {rules['min_trades']:g})"
            )
        elif trades < rules["min_trades_warning"]:
            warnings.append(
                f"backtest {bt['id']} has only {trades} trades (< {rules['min_trades_warning']})"
            )
        bars = bt.get("bars") or 0
        if bars < rules["min_bars"]:
            errors.append(f"backtest {bt['id']} has {bars} bar(s) (min_bars {rules['min_bars']:g})")
        halted = (bt.get("config") or {}).get("halted")
        if halted:
            errors.append(
                f"backtest {bt['id']} ended in a risk halt ({halted.get('limit')}: "
                f"{halted.get('message')}): its metrics cover only the bars before the halt"
            )
        for metric in bot.spec.get("metrics") or []:
            if "threshold" not in metric:
                continue
            stored = metric_name(metric["name"])
            value = bt.get(stored)
            if value is None or not _compare(value, metric["direction"], metric["threshold"]):
                shown = (
                    metric["name"] if stored == metric["name"] else f"{metric['name']} ({stored})"
                )
                errors.append(
                    f"metric {shown} = {value} fails {metric['direction']} {metric['threshold']:g}"
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


def _chosen_backtest(
    ledger: Ledger,
    bot_id: str,
    bot_version: int | None,
    backtest_id: str | None,
    errors: list[str],
    warnings: list[str],
) -> dict[str, Any] | None:
    """The backtest to judge: ``backtest_id``'s row, or the newest of the version."""
    if backtest_id:
        bt = ledger.get_backtest(backtest_id)
        if bt is None:
            errors.append(f"backtest_id: no backtest_runs row {backtest_id!r}")
            return None
        if bt["bot_id"] != bot_id or bt.get("bot_version") != bot_version:
            errors.append(
                f"backtest_id: backtest {backtest_id} is of bot {bt['bot_id']} version "
                f"{bt.get('bot_version')}, not of {bot_id} version {bot_version} (the version "
                "about to trade)"
            )
            return None
        return bt
    bt = ledger.latest_backtest(bot_id, bot_version)
    if bt is None:
        errors.append(
            f"no backtest_runs row for bot {bot_id} version {bot_version}: run a backtest first"
        )
        return None
    count = ledger.count_backtests(bot_id, bot_version)
    if count > 1:
        warnings.append(
            f"judged the latest of {count} backtests of version {bot_version} "
            f"({describe_backtest(bt)['text']}); choose another with backtest_id"
        )
    return bt
