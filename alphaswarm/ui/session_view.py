"""SessionView: every component of one paper run, live or read back from the ledger."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from alphaswarm.paper.session import PaperSession
from alphaswarm.ui.base import FramePump, KitViewer, run_params
from alphaswarm.ui.equity import EquityCurve
from alphaswarm.ui.fills import FillsTable
from alphaswarm.ui.frames_log import FramesLog
from alphaswarm.ui.positions import Positions
from alphaswarm.ui.reconcile_view import ReconciliationView
from alphaswarm.ui.risk import RiskPanel
from alphaswarm.ui.run_report import ZONE_CHOICES, RunReport
from alphaswarm.ui.session_card import SessionCard


class SessionView(KitViewer):
    """The session card, statistics, equity curve, positions, risk, trades, fills and frames.

    ``PaperSession.__panel__`` returns one of these, so a session displayed in a
    notebook cell and a run selected in the dashboard look the same. All
    components share one :class:`~alphaswarm.ui.base.FramePump`.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run (read from the ledger, so a
        restarted server still shows it).
    """

    session = param.ClassSelector(
        class_=PaperSession, default=None, allow_None=True, doc="The live session shown."
    )
    run_id = param.String(default="", doc="The run shown.")
    pump = param.Parameter(default=None, doc="The FramePump shared by the components.")
    ledger = param.Parameter(default=None, doc="Ledger to read from; the default otherwise.")

    def __init__(self, session: PaperSession | str | None = None, **params: Any) -> None:
        super().__init__(**run_params(session, params))
        if self.session is None and not self.run_id:
            raise ValueError("SessionView needs a session or a run_id")
        if self.pump is None:
            self.pump = FramePump.current()
        common = {
            "session": self.session,
            "run_id": self.run_id,
            "pump": self.pump,
            "ledger": self.ledger,
        }
        self.card = SessionCard(**common)
        self.equity = EquityCurve(**common)
        self.positions = Positions(**common)
        self.risk = RiskPanel(**common)
        self.fills = FillsTable(**common)
        self.frames = FramesLog(**common)
        self.components = [
            self.card,
            self.equity,
            self.positions,
            self.risk,
            self.fills,
            self.frames,
        ]
        # computed on request (a button): it re-runs the backtest over the run's bars
        self.reconciliation = ReconciliationView(
            run_id=self.run_id, session=self.session, ledger=self.ledger
        )
        self.report = RunReport(**common)
        self.components.append(self.report)
        # the run view's times (closed trades) in the browser's zone or in UTC
        self.zone_toggle = pn.widgets.RadioButtonGroup(
            options=list(ZONE_CHOICES),
            value=self.report.zone,
            color="light",
            width=130,
            margin=(5, 10),
            css_classes=["alphaswarm-zone-toggle"],
        )
        self.zone_toggle.link(self.report, value="zone")
        # Wide windows: the plots beside positions and risk. Narrow ones (a phone): each
        # part wraps onto its own line at the full width instead of squeezing the plots.
        self._layout = pn.Column(
            self.card,
            self.report,
            pn.FlexBox(
                pn.Column(
                    self.equity,
                    sizing_mode="stretch_width",
                    min_width=300,
                    styles={"flex": "1 1 520px"},
                    css_classes=["alphaswarm-plots"],
                ),
                pn.Column(
                    pn.pane.Markdown("**Positions**", margin=(0, 10)),
                    self.positions,
                    self.risk,
                    width=460,
                    styles={"flex": "0 1 460px", "min-width": "300px"},
                    css_classes=["alphaswarm-side"],
                ),
                flex_wrap="wrap",
                align_items="flex-start",
                sizing_mode="stretch_width",
            ),
            pn.Tabs(
                (
                    "Fills and frames",
                    pn.FlexBox(
                        pn.Column(
                            pn.pane.Markdown("**Fills**", margin=(0, 10)),
                            self.fills,
                            sizing_mode="stretch_width",
                            min_width=300,
                            styles={"flex": "1 1 480px"},
                        ),
                        pn.Column(
                            pn.pane.Markdown("**Frames**", margin=(0, 10)),
                            self.frames,
                            sizing_mode="stretch_width",
                            min_width=300,
                            styles={"flex": "1 1 480px"},
                        ),
                        flex_wrap="wrap",
                        sizing_mode="stretch_width",
                    ),
                ),
                (
                    "Closed trades",
                    pn.Column(
                        pn.Row(
                            pn.pane.Markdown("times in", margin=(12, 0, 0, 10)), self.zone_toggle
                        ),
                        self.report.trades_pane,
                        sizing_mode="stretch_width",
                    ),
                ),
                ("P&L by symbol", self.report.symbols_pane),
                (
                    "Reconciliation",
                    # its tables keep their width: a narrow window scrolls them sideways
                    pn.Column(
                        self.reconciliation,
                        sizing_mode="stretch_width",
                        min_width=300,
                        styles={"overflow-x": "auto"},
                    ),
                ),
                # only the open tab is laid out: a wide table in another one (the
                # reconciliation's) does not widen the view past a phone's screen
                dynamic=True,
                sizing_mode="stretch_width",
                css_classes=["alphaswarm-run-tabs"],
            ),
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-session-view"],
        )

    def refresh(self) -> None:
        """Run one tick of the shared pump now (tests and notebooks without a loop)."""
        self.pump.tick()

    def close(self) -> None:
        """Detach every component from the pump (the selection moved on)."""
        for component in self.components:
            component.close()

    def __panel__(self) -> pn.viewable.Viewable:
        """The composed layout."""
        return self._layout
