"""``/backtests/<id>``: one backtest's result.

Backtests are deterministic: the page rebuilds the result by running the stored
version of the bot again over the stored range (bars, start, end, starting cash)
without storing it, and shows it as the notebook does (``pn.panel(result)``),
beside the metrics stored in the ledger and a link back to the bot.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from alphaswarm.backtest import BacktestResult, backtest
from alphaswarm.bots import Bot
from alphaswarm.ledger import LedgerError
from alphaswarm.model import ModelError
from alphaswarm.paper.runtime import get_ledger
from alphaswarm.ui.pages.html import fmt_bar_time, fmt_number, fmt_time, table
from alphaswarm.ui.routes import page_path

STORED_METRICS = (
    ("sharpe", ".3f"),
    ("sortino", ".3f"),
    ("max_drawdown", ".2%"),
    ("total_return", ".2%"),
    ("num_trades", ".0f"),
    ("win_rate", ".2%"),
    ("exposure", ".2%"),
    ("final_equity", ",.2f"),
    ("starting_cash", ",.2f"),
    ("bars", ",.0f"),
)


def rerun(row: dict[str, Any], ledger: Any) -> BacktestResult:
    """Run a stored backtest again (not stored): same bot version, range and cash.

    Raises
    ------
    ModelError
        When the stored spec or range no longer runs.
    """
    config = row.get("config") or {}
    bot = Bot(ledger.bot_spec(row["bot_id"], row.get("bot_version")))
    return backtest(
        bot,
        bars=config.get("bars"),
        start=config.get("start"),
        end=config.get("end"),
        starting_cash=float(config.get("starting_cash") or row.get("starting_cash") or 100_000.0),
        store=False,
    )


def result_view(result: BacktestResult) -> list[Any]:
    """The result as the notebook shows it: its own view, or its summary and plot."""
    if hasattr(type(result), "__panel__"):
        return [pn.panel(result, sizing_mode="stretch_width")]
    return [
        pn.pane.HTML(result._repr_html_(), sizing_mode="stretch_width"),
        pn.pane.HoloViews(result.plot(), sizing_mode="stretch_width", min_height=420),
    ]


class BacktestPage(pn.viewable.Viewer):
    """The stored metrics of a backtest and its result view, rebuilt."""

    backtest_id = param.String(default="", doc="The ``backtest_runs`` id shown.")
    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ledger = self.ledger or get_ledger()
        self.row = ledger.get_backtest(self.backtest_id)
        self.result: BacktestResult | None = None
        self.error = ""
        if self.row is not None:
            try:
                self.result = rerun(self.row, ledger)
            except (ModelError, LedgerError) as exc:
                self.error = str(exc)

    def _stored(self) -> str:
        row = self.row or {}
        return table(
            ["metric", "stored value"],
            [(name, fmt_number(row.get(name), spec)) for name, spec in STORED_METRICS],
            "alphaswarm-backtest-metrics",
            full_width=False,
        )

    def _head(self) -> str:
        row = self.row or {}
        bot_href = page_path("bot", row["bot_id"])
        return (
            f'<h2 style="margin:4px 0">Backtest {html.escape(self.backtest_id)}</h2>'
            f'<div>bot <a class="alphaswarm-backtest-bot" href="{html.escape(bot_href)}">'
            f"{html.escape(row['bot_id'])}</a> v{row.get('bot_version')} · "
            f"bars {fmt_bar_time(row.get('start_ts'))} to {fmt_bar_time(row.get('end_ts'))} "
            f"(bar time) · run {fmt_time(row.get('created_at'))}</div>"
        )

    def _drift(self) -> str:
        """A note when the re-run differs from what was stored (feed or code changed)."""
        if self.result is None or self.row is None:
            return ""
        stored, now = self.row.get("sharpe"), self.result.metrics.get("sharpe")
        same_feed = (self.row.get("config") or {}).get("feed") == self.result.config.get("feed")
        if stored is not None and now is not None and abs(stored - now) < 1e-9 and same_feed:
            return ""
        return (
            '<div class="alphaswarm-backtest-drift" style="color:#ef6c00">The re-run differs '
            f"from the stored run (sharpe now {fmt_number(now, '.3f')}; the feed or the code "
            "changed since): the plots show the re-run.</div>"
        )

    def retime(self) -> None:
        """Show the times again (the browser's zone became known)."""
        head = getattr(self, "head", None)
        if head is not None:
            head.object = self._head() + self._drift()

    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        if self.row is None:
            return pn.pane.Alert(
                f"No backtest <code>{html.escape(self.backtest_id)}</code> in this ledger.",
                alert_type="warning",
                css_classes=["alphaswarm-missing-backtest"],
            )
        self.head = pn.pane.HTML(self._head() + self._drift(), sizing_mode="stretch_width")
        parts: list[Any] = [
            self.head,
            pn.pane.Markdown("### Stored metrics"),
            pn.pane.HTML(self._stored(), sizing_mode="stretch_width"),
        ]
        if self.result is None:
            parts.append(
                pn.pane.Alert(
                    f"Could not run it again: {html.escape(self.error)}",
                    alert_type="danger",
                    css_classes=["alphaswarm-backtest-error"],
                )
            )
        else:
            parts += [
                pn.pane.Markdown("### Result"),
                pn.Column(
                    *result_view(self.result),
                    sizing_mode="stretch_width",
                    css_classes=["alphaswarm-backtest-result"],
                ),
            ]
        return pn.Column(
            *parts, sizing_mode="stretch_width", css_classes=["alphaswarm-backtest-page"]
        )
