"""ReconciliationView: a paper run against its backtest, in a notebook or a dashboard tab.

A run routed to a real broker with a shadow simulator also shows the broker's fills
against the simulator's, order by order, with the suggested ``slippage_bps``.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from alphaswarm.reconcile import Reconciliation, reconcile
from alphaswarm.ui.base import KitViewer
from alphaswarm.ui.tables import InlineHTML, ReadOnlyTabulator

_SHOWN = [
    "kind", "symbol", "side", "paper_time", "backtest_time", "paper_qty", "backtest_qty",
    "paper_price", "backtest_price", "pnl_effect", "cause", "reason",
]  # fmt: skip


_SHADOW_SHOWN = [
    "order_id", "broker_order_id", "symbol", "side", "type", "outcome", "broker_filled_qty",
    "shadow_filled_qty", "broker_price", "shadow_price", "price_diff_bps", "broker_latency_s",
    "shadow_latency_s", "pnl_effect", "broker_reason",
]  # fmt: skip


#: Bar colours of the P&L-by-cause chart: a cause that cost money, one that made money.
LOSS_COLOR, GAIN_COLOR = "#c62828", "#2e7d32"


def causes_chart(causes: pd.DataFrame) -> Any:
    """Bars of the P&L effect of each cause (red where the paper run lost to the backtest).

    Parameters
    ----------
    causes : pandas.DataFrame
        Columns ``cause``, ``pnl`` and ``fills``, as the view's causes table.
    """
    import holoviews as hv
    from bokeh.models import NumeralTickFormatter

    from alphaswarm.notebook import bokeh_backend

    bokeh_backend()
    frame = causes.assign(
        color=[LOSS_COLOR if v < 0 else GAIN_COLOR for v in causes["pnl"]]
    ).astype({"cause": str, "pnl": float})
    return hv.Bars(
        frame,
        hv.Dimension("cause", label="Cause"),
        [hv.Dimension("pnl", label="P&L effect"), "fills", "color"],
    ).opts(
        color="color",
        width=420,
        height=220,
        title="P&L effect by cause (paper minus backtest)",
        tools=["hover"],
        toolbar=None,
        xrotation=20,
        yformatter=NumeralTickFormatter(format="+0,0"),
        show_grid=True,
    )


class ReconciliationView(KitViewer):
    """Summary, P&L explained by cause and the fill-by-fill table of one reconciliation.

    Give it a :class:`~alphaswarm.reconcile.Reconciliation`, or a ``run_id``: then
    the *Reconcile* button computes one (a running run is reconciled up to its
    latest bar).

    Parameters
    ----------
    reconciliation : Reconciliation, optional
        What to show.
    run_id : str
        The run to reconcile on request.
    """

    reconciliation = param.ClassSelector(
        class_=Reconciliation, default=None, allow_None=True, doc="The reconciliation shown."
    )
    run_id = param.String(default="", doc="Paper run reconciled when the button is pressed.")
    session = param.Parameter(
        default=None, doc="A live session whose run is reconciled (its id once started)."
    )
    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")
    differences_only = param.Boolean(default=True, doc="List only the fills that differ.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.button = pn.widgets.Button(
            label="Reconcile with the backtest",
            color="primary",
            css_classes=["alphaswarm-reconcile-button"],
        )
        self.button.on_click(lambda _e: self.run())
        self.summary_pane = InlineHTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-reconcile-summary"]
        )
        self.causes = ReadOnlyTabulator(
            pd.DataFrame(columns=["cause", "pnl", "fills"]),
            show_index=False,
            disabled=True,
            width=420,
            formatters={"pnl": NumberFormatter(format="+0,0.00")},
        )
        self.chart = pn.pane.HoloViews(
            causes_chart(self.causes.value), css_classes=["alphaswarm-reconcile-chart"]
        )
        self.table = ReadOnlyTabulator(
            pd.DataFrame(columns=_SHOWN),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=320,
            layout="fit_data_stretch",
            formatters={"pnl_effect": NumberFormatter(format="+0,0.00")},
            css_classes=["alphaswarm-reconcile-trades"],
        )
        self.shadow_pane = InlineHTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-reconcile-shadow"]
        )
        self.shadow_table = ReadOnlyTabulator(
            pd.DataFrame(columns=_SHADOW_SHOWN),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=240,
            layout="fit_data_stretch",
            formatters={
                "price_diff_bps": NumberFormatter(format="+0,0.00"),
                "pnl_effect": NumberFormatter(format="+0,0.00"),
            },
            css_classes=["alphaswarm-reconcile-shadow-orders"],
            visible=False,
        )
        self.toggle = pn.widgets.Checkbox.from_param(self.param.differences_only)
        self.param.watch(lambda _e: self._render(), ["reconciliation", "differences_only"])
        self._layout = pn.Column(
            pn.Row(self.button, self.toggle) if self.run_id or self.session else self.toggle,
            self.summary_pane,
            pn.Row(self.causes, self.chart),
            self.table,
            self.shadow_pane,
            self.shadow_table,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-reconcile"],
        )
        self._render()

    def run(self) -> Reconciliation | None:
        """Reconcile ``run_id`` now and show the result (or the reason it cannot)."""
        if not self.run_id and self.session is not None:
            self.run_id = self.session.paper_run_id
        try:
            self.reconciliation = reconcile(self.run_id, self.ledger)
        except (KeyError, ValueError) as exc:
            self.summary_pane.object = f"<i>cannot reconcile: {html.escape(str(exc))}</i>"
            return None
        return self.reconciliation

    def _render(self) -> None:
        rec = self.reconciliation
        if rec is None:
            self.summary_pane.object = (
                "<i>Press the button to re-run this bot's backtest over the bars the run "
                "saw and explain every difference.</i>"
            )
            return
        s = rec.summary
        lines = html.escape(rec.text()).replace("\n", "<br>")
        self.summary_pane.object = (
            f'<div data-differences="{s["differences"]}" style="font-family:monospace">'
            f"{lines}</div>"
        )
        self.causes.value = pd.DataFrame(
            [{"cause": c, "pnl": v, "fills": s["counts"].get(c, 0)}
             for c, v in s["explained"].items()],
            columns=["cause", "pnl", "fills"],
        )  # fmt: skip
        self.chart.object = causes_chart(self.causes.value)
        trades = rec.differences if self.differences_only else rec.trades
        self.table.value = trades[_SHOWN].reset_index(drop=True)
        self._render_shadow(rec)

    def _render_shadow(self, rec: Reconciliation) -> None:
        """The broker against its shadow simulator, when the run had one."""
        shadow = rec.shadow
        self.shadow_table.visible = shadow is not None
        if shadow is None:
            self.shadow_pane.object = ""
            return
        lines = html.escape(shadow.text()).replace("\n", "<br>")
        suggested = shadow.summary["suggested_slippage_bps"]
        self.shadow_pane.object = (
            f'<div data-suggested-slippage="{"" if suggested is None else f"{suggested:.2f}"}" '
            f'style="font-family:monospace"><b>Broker vs shadow simulator</b><br>{lines}</div>'
        )
        # every order: a matched one still carries its price difference
        self.shadow_table.value = shadow.orders[_SHADOW_SHOWN].reset_index(drop=True)

    def __panel__(self) -> pn.viewable.Viewable:
        """The layout."""
        return self._layout
