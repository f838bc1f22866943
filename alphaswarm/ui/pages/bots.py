"""``/bots``: every registered bot and a form to register one from YAML.

Each bot is listed with its latest version, the Sharpe of that version's latest
backtest and the paper gate's verdict; its name links to ``/bots/<id>``.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from alphaswarm.bots import Bot
from alphaswarm.ledger import LedgerError
from alphaswarm.model import ModelError
from alphaswarm.paper.runtime import get_ledger
from alphaswarm.ui.pages.gate_view import VERDICTS, evaluate
from alphaswarm.ui.pages.html import Link, fmt_number, table
from alphaswarm.ui.routes import page_path

EXAMPLE_YAML = """name: my-sma
strategy: sma_cross
params: {fast: 10, slow: 30}
risk: {kill_switch_attached: true, max_position_qty: 500, max_drawdown_pct: 0.05}
"""


def bot_rows(ledger: Any) -> list[tuple[Any, ...]]:
    """One row per bot: name (linked), id, latest version, Sharpe, gate verdict."""
    rows = []
    for b in ledger.list_bots():
        try:
            result, _ = evaluate(Bot(b["spec"]), ledger, b["id"], b["latest_version"])
            verdict = VERDICTS[result.status]
        except ModelError as exc:
            verdict = f"spec no longer valid: {exc}"
        rows.append(
            (
                Link(b["name"], page_path("bot", b["id"])),
                b["id"],
                f"v{b['latest_version']}",
                fmt_number(b.get("sharpe")),
                verdict,
            )
        )
    return rows


class BotsPage(pn.viewable.Viewer):
    """The bots table and the register form."""

    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")
    message = param.String(default="", doc="Outcome of the last registration, as plain text.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.bots = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["alphaswarm-bots"])
        self.yaml_input = pn.widgets.TextAreaInput(
            label="Bot spec (YAML)",
            value=EXAMPLE_YAML,
            height=200,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-register-yaml"],
        )
        self.register_button = pn.widgets.Button(
            label="Register bot", color="primary", css_classes=["alphaswarm-register"]
        )
        self.outcome = pn.pane.Alert(
            "", alert_type="light", visible=False, css_classes=["alphaswarm-register-result"]
        )
        self.register_button.on_click(lambda _e: self.register())
        self.refresh()

    def ledger_(self) -> Any:
        """The ledger in use."""
        return self.ledger or get_ledger()

    def refresh(self) -> None:
        """Re-read the bots."""
        self.bots.object = table(
            ["bot", "id", "version", "sharpe (latest backtest)", "paper gate"],
            bot_rows(self.ledger_()),
            "alphaswarm-bots-table",
            empty="No bots yet: register one below.",
        )

    def retime(self) -> None:
        """Nothing to do: the bots table shows no times."""

    def register(self, text: str | None = None) -> str | None:
        """Register the YAML in the form (or ``text``); the bot id, or ``None`` when invalid."""
        text = self.yaml_input.value if text is None else text
        try:
            bot = Bot.from_yaml(text or "")
            bot_id, version, created = self.ledger_().register_bot(
                bot.name, bot.spec, bot.spec_hash
            )
        except (ModelError, LedgerError) as exc:
            self.outcome.object = f"<b>Not registered:</b> {html.escape(str(exc))}"
            self.outcome.alert_type = "danger"
            self.outcome.visible = True
            self.message = f"invalid: {exc}"
            return None
        what = "registered" if created else "unchanged (same spec as the latest version)"
        href = page_path("bot", bot_id)
        self.outcome.object = (
            f'<a href="{html.escape(href)}">{html.escape(bot.name)}</a> v{version} {what}.'
        )
        self.outcome.alert_type = "success"
        self.outcome.visible = True
        self.message = f"{bot_id} v{version} {what}"
        self.refresh()
        return bot_id

    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        return pn.Column(
            pn.pane.Markdown("## Bots"),
            self.bots,
            pn.pane.Markdown("### Register a bot from YAML"),
            self.yaml_input,
            self.register_button,
            self.outcome,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-bots-page"],
        )
