"""``/bots/<id>``: one bot's spec, versions, backtests, paper runs and paper gate.

The page shows the latest version's spec as YAML, a diff between any two
versions, the bot's backtests (linking to ``/backtests/<id>``) and paper runs
(linking to ``/runs/<id>``), and the paper gate's verdict rule by rule. It runs
a backtest, starts a paper session through the gate, or starts one overriding
the gate with a typed reason (written to the audit log by the session).
"""

from __future__ import annotations

import asyncio
import difflib
import html
from typing import Any

import panel as pn
import param
import yaml

from alphaswarm.backtest import BacktestResult, backtest
from alphaswarm.bots import Bot
from alphaswarm.ledger import LedgerError
from alphaswarm.model import ModelError
from alphaswarm.paper.gate import GateRefused
from alphaswarm.paper.killswitch import KillSwitchEngaged
from alphaswarm.paper.runtime import engine_loop, get_ledger
from alphaswarm.paper.session import PaperSession
from alphaswarm.ui.pages.gate_view import evaluate, rule_rows, verdict_html
from alphaswarm.ui.pages.html import Link, fmt_number, fmt_time, table
from alphaswarm.ui.routes import page_path

PRE_STYLE = (
    "margin:0;padding:8px 10px;font-size:12px;overflow-x:auto;max-width:100%;"
    "background:rgba(128,128,128,.08);border-radius:6px"
)


def spec_yaml(spec: dict[str, Any]) -> str:
    """A stored spec as YAML, keys in the spec's order."""
    return yaml.safe_dump(spec, sort_keys=False)


def version_diff(old: dict[str, Any], new: dict[str, Any], old_label: str, new_label: str) -> str:
    """A unified diff of two specs' YAML (``""`` when they are the same)."""
    lines = difflib.unified_diff(
        spec_yaml(old).splitlines(),
        spec_yaml(new).splitlines(),
        fromfile=old_label,
        tofile=new_label,
        lineterm="",
    )
    return "\n".join(lines)


def diff_html(diff: str) -> str:
    """A unified diff coloured line by line."""
    if not diff:
        return '<div class="alphaswarm-diff"><i>The two versions have the same spec.</i></div>'
    out = []
    for line in diff.splitlines():
        colour = ""
        if line.startswith("+") and not line.startswith("+++"):
            colour = "color:#2e7d32;background:rgba(46,125,50,.12)"
        elif line.startswith("-") and not line.startswith("---"):
            colour = "color:#c62828;background:rgba(198,40,40,.12)"
        out.append(f'<span style="{colour}">{html.escape(line)}</span>')
    return f'<pre class="alphaswarm-diff" style="{PRE_STYLE}">' + "\n".join(out) + "</pre>"


class BotPage(pn.viewable.Viewer):
    """Everything about one registered bot, and the actions on it."""

    bot_id = param.String(default="", doc="The bot shown.")
    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")
    message = param.String(default="", doc="Outcome of the last action, as plain text.")
    last_session = param.ClassSelector(
        class_=PaperSession, default=None, allow_None=True, doc="The session started last."
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.record = self.ledger_().get_bot(self.bot_id)
        self.header = pn.pane.HTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-bot-head"]
        )
        self.gate = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["alphaswarm-gate"])
        self.spec = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["alphaswarm-spec"])
        self.versions = pn.pane.HTML("", sizing_mode="stretch_width")
        self.diff_from = pn.widgets.Select(label="From version", width=140)
        self.diff_to = pn.widgets.Select(label="To version", width=140)
        self.diff = pn.pane.HTML("", sizing_mode="stretch_width")
        self.backtests = pn.pane.HTML("", sizing_mode="stretch_width")
        self.runs = pn.pane.HTML("", sizing_mode="stretch_width")
        self.bars_input = pn.widgets.IntInput(
            label="Bars", value=2000, start=10, step=500, width=140
        )
        self.backtest_button = pn.widgets.Button(
            label="Run backtest", color="primary", css_classes=["alphaswarm-run-backtest"]
        )
        self.cash_input = pn.widgets.FloatInput(
            label="Starting cash", value=100_000.0, start=1.0, step=1000.0, width=140
        )
        self.duration_input = pn.widgets.FloatInput(
            label="Minutes (0 = until stopped)", value=60.0, start=0.0, width=200
        )
        self.speed_input = pn.widgets.FloatInput(
            label="Speed (× real time, 0 = max)", value=60.0, start=0.0, width=200
        )
        self.paper_button = pn.widgets.Button(
            label="Start paper session", color="success", css_classes=["alphaswarm-start-paper"]
        )
        self.reason_input = pn.widgets.TextInput(
            label="Override reason (written to the audit log)",
            placeholder="why this bot may trade despite the gate",
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-override-reason"],
        )
        self.force_button = pn.widgets.Button(
            label="Force start (override the gate)",
            color="danger",
            disabled=True,
            css_classes=["alphaswarm-force-start"],
        )
        self.outcome = pn.pane.Alert(
            "", alert_type="light", visible=False, css_classes=["alphaswarm-bot-result"]
        )
        self.backtest_button.on_click(self._on_backtest)
        self.paper_button.on_click(lambda _e: self.start_paper())
        self.force_button.on_click(lambda _e: self.start_paper(force=True))
        self.reason_input.param.watch(self._on_reason, ["value_input", "value"])
        self.diff_from.param.watch(lambda _e: self._show_diff(), "value")
        self.diff_to.param.watch(lambda _e: self._show_diff(), "value")
        self.refresh()

    def ledger_(self) -> Any:
        """The ledger in use."""
        return self.ledger or get_ledger()

    @property
    def found(self) -> bool:
        """Whether the bot is in the ledger."""
        return self.record is not None

    # -- reading ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the bot, its versions, backtests, runs and gate verdict."""
        ledger = self.ledger_()
        self.record = ledger.get_bot(self.bot_id)
        if self.record is None:
            return
        rec = self.record
        self.bot = Bot(rec["spec"])
        self.header.object = (
            f'<h2 style="margin:4px 0">{html.escape(rec["name"])}</h2>'
            f"<div>id <code>{html.escape(rec['id'])}</code> · latest version "
            f"<b>v{rec['latest_version']}</b> · registered {fmt_time(rec.get('created_at'))}"
            f' · <a href="{page_path("bots")}">all bots</a></div>'
        )
        result, missing = evaluate(self.bot, ledger, rec["id"], rec["latest_version"])
        self.gate_result = result
        self.gate.object = verdict_html(result, rule_rows(self.bot, result, missing))
        self.spec.object = (
            f'<pre class="alphaswarm-spec-yaml" style="{PRE_STYLE}">'
            f"{html.escape(spec_yaml(rec['spec']))}</pre>"
        )
        self._versions = {v["version"]: v for v in ledger.bot_versions(self.bot_id)}
        self.versions.object = table(
            ["version", "spec hash", "registered"],
            [
                (f"v{v['version']}", str(v["spec_hash"])[:12], fmt_time(v.get("created_at")))
                for v in reversed(self._versions.values())
            ],
            "alphaswarm-versions",
        )
        labels = {f"v{n}": n for n in self._versions}
        numbers = list(self._versions)
        self.diff_from.options = labels
        self.diff_to.options = labels
        if numbers:
            self.diff_from.value = numbers[-2] if len(numbers) > 1 else numbers[-1]
            self.diff_to.value = numbers[-1]
        self._show_diff()
        bts = ledger.backtests(self.bot_id)
        self.backtests.object = table(
            [
                "backtest",
                "version",
                "created",
                "bars",
                "sharpe",
                "max drawdown",
                "return",
                "trades",
            ],
            [
                (
                    Link(r["id"], page_path("backtest", r["id"])),
                    f"v{r['bot_version']}",
                    fmt_time(r["created_at"]),
                    int(r["bars"] or 0),
                    fmt_number(r["sharpe"]),
                    fmt_number(r["max_drawdown"], ".2%"),
                    fmt_number(r["total_return"], ".2%"),
                    int(r["num_trades"] or 0),
                )
                for r in bts.to_dict("records")
            ],
            "alphaswarm-bot-backtests",
            empty="No backtests yet: run one above.",
        )
        runs = ledger.list_runs(bot_id=self.bot_id, limit=100)
        self.runs.object = table(
            ["paper run", "version", "status", "started", "ended", "P&L", "fills"],
            [
                (
                    Link(r["id"], page_path("run", r["id"])),
                    f"v{r.get('bot_version')}",
                    r.get("status"),
                    fmt_time(r.get("started_at")),
                    fmt_time(r.get("ended_at")),
                    fmt_number(r.get("total_pnl"), "+,.2f"),
                    int(r.get("num_fills") or 0),
                )
                for r in runs
            ],
            "alphaswarm-bot-runs",
            empty="No paper runs yet.",
        )

    def retime(self) -> None:
        """Show the times again (the browser's zone became known)."""
        self.refresh()

    def _show_diff(self) -> None:
        old, new = self.diff_from.value, self.diff_to.value
        if old not in self._versions or new not in self._versions:
            self.diff.object = ""
            return
        self.diff.object = diff_html(
            version_diff(
                self._versions[old]["spec"], self._versions[new]["spec"], f"v{old}", f"v{new}"
            )
        )

    # -- actions ------------------------------------------------------------------------
    def _say(self, text_html: str, kind: str, plain: str) -> None:
        self.outcome.object = text_html
        self.outcome.alert_type = kind
        self.outcome.visible = True
        self.message = plain

    def _on_reason(self, *_events: param.parameterized.Event) -> None:
        typed = self.reason_input.value_input or self.reason_input.value or ""
        self.force_button.disabled = not typed.strip()

    def _backtest(self, bars: int) -> BacktestResult:
        return backtest(Bot(self.record["spec"]), bars=bars, ledger=self.ledger_())

    def _backtest_done(self, result: BacktestResult | Exception) -> None:
        if isinstance(result, Exception):
            self._say(f"<b>Backtest failed:</b> {html.escape(str(result))}", "danger", str(result))
            return
        href = page_path("backtest", str(result.id))
        self._say(
            f'Backtest <a href="{html.escape(href)}">{html.escape(str(result.id))}</a>: '
            f"sharpe {result.metrics['sharpe']:.2f}, {int(result.metrics['num_trades'])} trades.",
            "success",
            f"backtest {result.id}",
        )
        self.refresh()

    def run_backtest(self, bars: int | None = None) -> BacktestResult | None:
        """Backtest the latest version over ``bars`` (the form's value) and store it."""
        try:
            result: BacktestResult | Exception = self._backtest(int(bars or self.bars_input.value))
        except (ModelError, LedgerError) as exc:
            result = exc
        self._backtest_done(result)
        return None if isinstance(result, Exception) else result

    async def _on_backtest(self, _event: Any) -> None:
        self.backtest_button.disabled = True
        self.backtest_button.label = "Backtesting…"
        try:
            bars = int(self.bars_input.value or 0)
            try:
                result: BacktestResult | Exception = await asyncio.to_thread(self._backtest, bars)
            except (ModelError, LedgerError) as exc:
                result = exc
            self._backtest_done(result)
        finally:
            self.backtest_button.disabled = False
            self.backtest_button.label = "Run backtest"

    def start_paper(self, force: bool = False) -> PaperSession | None:
        """Start a paper session of the latest version through the gate (or overriding it)."""
        reason = (self.reason_input.value_input or self.reason_input.value or "").strip()
        if force and not reason:
            self._say("Type a reason to override the gate.", "warning", "no reason")
            return None
        duration = self.duration_input.value
        try:
            session = PaperSession(
                Bot(self.record["spec"]),
                starting_cash=float(self.cash_input.value or 0) or 100_000.0,
                duration_minutes=float(duration) if duration else None,
                speed=float(self.speed_input.value or 0.0),
                ledger=self.ledger,
                force=force,
                reason=reason if force else "",
            )
            session.start(loop=engine_loop())
        except GateRefused as exc:
            items = "".join(f"<li>{html.escape(e)}</li>" for e in exc.result.errors)
            self._say(
                f'<b>The paper gate refused:</b><ul class="gate-errors">{items}</ul>',
                "danger",
                "paper gate refused: " + "; ".join(exc.result.errors),
            )
            return None
        except (KillSwitchEngaged, ModelError, LedgerError) as exc:
            self._say(f"<b>Not started:</b> {html.escape(str(exc))}", "danger", str(exc))
            return None
        self.last_session = session
        href = page_path("run", session.paper_run_id)
        how = " (gate overridden)" if force else ""
        self._say(
            f'Started <a href="{html.escape(href)}">{html.escape(session.paper_run_id)}</a>{how}.',
            "success",
            f"started {session.paper_run_id}{how}",
        )
        self.refresh()
        return session

    # -- layout -------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        """The page (a notice when the bot is not in the ledger)."""
        if self.record is None:
            return pn.pane.Alert(
                f"No bot <code>{html.escape(self.bot_id)}</code> in this ledger. "
                f'<a href="{page_path("bots")}">All bots</a>.',
                alert_type="warning",
                css_classes=["alphaswarm-missing-bot"],
            )
        actions = pn.Column(
            pn.pane.Markdown("### Actions"),
            pn.FlexBox(self.bars_input, self.backtest_button, align_items="flex-end"),
            pn.FlexBox(
                self.cash_input,
                self.duration_input,
                self.speed_input,
                self.paper_button,
                align_items="flex-end",
            ),
            self.reason_input,
            self.force_button,
            self.outcome,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            self.header,
            pn.pane.Markdown("### Paper gate"),
            self.gate,
            actions,
            pn.pane.Markdown("### Backtests"),
            self.backtests,
            pn.pane.Markdown("### Paper runs"),
            self.runs,
            pn.pane.Markdown("### Spec (latest version)"),
            self.spec,
            pn.pane.Markdown("### Versions"),
            self.versions,
            pn.FlexBox(self.diff_from, self.diff_to),
            self.diff,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-bot-page"],
        )
