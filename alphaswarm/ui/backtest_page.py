"""The dashboard's "Backtests" page: backtest a registered bot and look at the result.

Pick a bot and a number of bars, press the button: the backtest runs (its
``backtest_runs`` row goes to the ledger, so the paper gate sees it) and the page
shows the same :class:`~alphaswarm.ui.backtest_view.BacktestView` a notebook shows
for ``result.plot()``.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from alphaswarm.backtest import BacktestResult, backtest
from alphaswarm.bots import Bot
from alphaswarm.model import ModelError
from alphaswarm.paper.runtime import get_ledger
from alphaswarm.ui.backtest_view import BacktestView
from alphaswarm.ui.choices import show_choices


class BacktestPage(pn.viewable.Viewer):
    """Run a backtest of a registered bot from the dashboard and show its view."""

    ledger = param.Parameter(default=None, doc="Ledger holding the bots; the default otherwise.")
    result = param.ClassSelector(
        class_=BacktestResult,
        default=None,
        allow_None=True,
        doc="The backtest shown (the last one run here).",
    )
    message = param.String(default="", doc="The outcome of the last run, as plain text.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.bot_select = pn.widgets.Select(
            label="Bot", options={}, width=320, css_classes=["alphaswarm-backtest-bot"]
        )
        self.bars_input = pn.widgets.IntInput(
            label="Bars", value=7_800, start=10, step=390, width=160
        )
        self.run_button = pn.widgets.Button(
            label="Run backtest",
            color="primary",
            align="end",
            css_classes=["alphaswarm-run-backtest"],
        )
        self.refresh_button = pn.widgets.Button(label="↻ bots", width=70, align="end")
        self.alert = pn.pane.Alert("", alert_type="light", visible=False)
        self.view_holder = pn.Column(
            pn.pane.Markdown("*Pick a bot and run a backtest to see it here.*"),
            sizing_mode="stretch_width",
        )
        self.view: BacktestView | None = None
        self.run_button.on_click(lambda _e: self.run())
        self.refresh_button.on_click(lambda _e: self.refresh_bots())
        self.refresh_bots()

    def ledger_(self) -> Any:
        """The ledger in use."""
        return self.ledger or get_ledger()

    def refresh_bots(self) -> None:
        """Re-read the registered bots."""
        options = {
            f"{b['name']} (v{b.get('latest_version')})": b["id"] for b in self.ledger_().list_bots()
        }
        show_choices(self.bot_select, options)

    def run(self) -> BacktestResult | None:
        """Backtest the selected bot over the chosen number of bars and show the result."""
        bot_id = self.bot_select.value
        if not bot_id:
            self._say("Register a bot first (`POST /bots`).", "warning")
            return None
        try:
            bot = Bot(self.ledger_().bot_spec(bot_id))
            result = backtest(bot, bars=int(self.bars_input.value or 0), ledger=self.ledger_())
        except (ModelError, ValueError) as exc:
            self._say(f"<b>Backtest failed:</b> {html.escape(str(exc))}", "danger", str(exc))
            return None
        self.result = result
        self.view = BacktestView(result)
        self.view_holder.objects = [self.view]
        self._say(
            f"Backtest <code>{html.escape(result.id or '')}</code> of {html.escape(bot.name)}.",
            "success",
            f"backtest {result.id}",
        )
        return result

    def _say(self, text_html: str, kind: str, plain: str | None = None) -> None:
        self.alert.object = text_html
        self.alert.alert_type = kind
        self.alert.visible = True
        self.message = plain if plain is not None else text_html

    def __panel__(self) -> pn.viewable.Viewable:
        """The form, the outcome and the view."""
        return pn.Column(
            # wraps in a narrow window: a fixed-width row widened the page even while its
            # tab was hidden (Bokeh lays out every tab), so a phone's page scrolled sideways
            pn.FlexBox(
                self.bot_select,
                self.bars_input,
                self.refresh_button,
                self.run_button,
                flex_wrap="wrap",
                align_items="flex-end",
                sizing_mode="stretch_width",
            ),
            self.alert,
            self.view_holder,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-backtests"],
        )
