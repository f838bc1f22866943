"""The paper gate's verdict for a bot, rule by rule, as the bot page shows it."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alphaswarm.paper.gate import GateResult, check_gate
from alphaswarm.ui.pages.html import fmt_number, table

if TYPE_CHECKING:
    from alphaswarm.bots import Bot
    from alphaswarm.ledger import Ledger

VERDICTS = {"ok": "PASSES", "warning": "PASSES (with warnings)", "error": "REFUSED"}


@dataclass(frozen=True)
class RuleRow:
    """One rule of the gate: what it asks, what the bot has, and whether it holds."""

    rule: str
    requirement: str
    value: str
    holds: bool | None  # None: not judged (no backtest)

    @property
    def mark(self) -> str:
        """✓, ✗ or – (not judged)."""
        return {True: "✓ holds", False: "✗ fails", None: "– not judged"}[self.holds]


def evaluate(bot: Bot, ledger: Ledger, bot_id: str, version: int) -> tuple[GateResult, list[str]]:
    """The gate's result for ``bot`` (its current version) and the symbols its feed misses."""
    try:
        feed = bot.make_feed()
        missing = list(feed.covers(bot.universe))
    except Exception as exc:  # noqa: BLE001 - a feed that cannot be built is a failing rule
        feed, missing = None, [f"(feed: {exc})"]
    result = check_gate(bot, ledger, feed, bot_id=bot_id, bot_version=version)
    return result, missing


def rule_rows(
    bot: Bot, result: GateResult, missing: list[str], now: datetime | None = None
) -> list[RuleRow]:
    """Every rule the gate applies, with its threshold, the judged value and the outcome."""
    rules = result.rules
    bt = result.backtest
    rows = [
        RuleRow(
            "backtest",
            "a backtest of the current version",
            str(bt["id"]) if bt else "none",
            bt is not None,
        )
    ]

    def judged(rule: str, requirement: str, value: Any, holds: Any, spec: str = ".3f") -> None:
        if bt is None:
            rows.append(RuleRow(rule, requirement, "–", None))
        else:
            rows.append(RuleRow(rule, requirement, fmt_number(value, spec), bool(holds)))

    if bt is not None:
        created = bt.get("created_at") or bt.get("ended_at") or bt.get("started_at")
        now = now or datetime.now(UTC)
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        age = (now - created).total_seconds() / 86400 if created is not None else 0.0
    else:
        age = None
    judged("age (days)", f"≤ {rules['max_age_days']:g}", age,
           age is not None and age <= rules["max_age_days"], ".2f")  # fmt: skip
    sharpe = bt.get("sharpe") if bt else None
    judged("sharpe", f"≥ {rules['min_sharpe']:g}", sharpe,
           sharpe is not None and sharpe >= rules["min_sharpe"])  # fmt: skip
    dd = bt.get("max_drawdown") if bt else None
    judged("max drawdown", f"≤ {rules['max_drawdown']:g}", dd,
           dd is not None and dd <= rules["max_drawdown"])  # fmt: skip
    trades = (bt.get("num_trades") or 0) if bt else None
    judged("trades", f"≥ {rules['min_trades']:g}", trades,
           trades is not None and trades >= rules["min_trades"], ".0f")  # fmt: skip
    bars = (bt.get("bars") or 0) if bt else None
    judged("bars", f"≥ {rules['min_bars']:g}", bars,
           bars is not None and bars >= rules["min_bars"], ".0f")  # fmt: skip
    halted = ((bt.get("config") or {}).get("halted") if bt else None) or None
    if bt is None:
        rows.append(RuleRow("no risk halt", "the backtest ran to its end", "–", None))
    else:
        rows.append(
            RuleRow(
                "no risk halt",
                "the backtest ran to its end",
                f"halted: {halted.get('limit')}" if halted else "ran to its end",
                not halted,
            )
        )
    for metric in bot.spec.get("metrics") or []:
        if "threshold" not in metric:
            continue
        name = "win_rate" if metric["name"] == "hit_rate" else metric["name"]
        value = bt.get(name) if bt else None
        ok = value is not None and (
            value >= metric["threshold"]
            if metric["direction"] == ">="
            else value <= metric["threshold"]
        )
        judged(
            f"metric {metric['name']}", f"{metric['direction']} {metric['threshold']:g}", value, ok
        )
    rows.append(
        RuleRow(
            "kill switch attached",
            "risk.kill_switch_attached: true",
            str(bot.kill_switch_attached).lower(),
            bot.kill_switch_attached,
        )
    )
    rows.append(
        RuleRow(
            "feed covers the universe",
            ", ".join(bot.universe),
            "missing " + ", ".join(missing) if missing else "all served",
            not missing,
        )
    )
    target = bot.spec.get("deploy_target") or "(default)"
    rows.append(
        RuleRow("deploy target", "not backtest_only", str(target), target != "backtest_only")
    )
    return rows


def verdict_html(result: GateResult, rows: list[RuleRow]) -> str:
    """The verdict, every rule, and the gate's own errors and warnings."""
    colour = {"ok": "#2e7d32", "warning": "#ef6c00", "error": "#c62828"}[result.status]
    head = (
        f'<div class="alphaswarm-gate-verdict" data-status="{result.status}" '
        f'style="font-weight:800;color:{colour};font-size:16px">Paper gate: '
        f"{VERDICTS[result.status]}</div>"
    )
    judged = result.judged
    if judged:
        head += f"<div>Judged backtest {html.escape(judged['text'])}</div>"
    rules = table(
        ["rule", "requirement", "value", "outcome"],
        [(r.rule, r.requirement, r.value, r.mark) for r in rows],
        "alphaswarm-gate-rules",
    )
    notes = "".join(
        f'<li class="gate-error">{html.escape(e)}</li>' for e in result.errors
    ) + "".join(f'<li class="gate-warning">{html.escape(w)}</li>' for w in result.warnings)
    return head + rules + (f"<ul>{notes}</ul>" if notes else "")
