"""Panel components of the paper kit: one pump per browser session feeds them all.

Each component is a :class:`panel.viewable.Viewer` bound to a
:class:`~alphaswarm.paper.session.PaperSession` (live) or to a run id (read
back from the ledger), usable in a notebook cell and in ``panel serve``.
"""

from __future__ import annotations

from alphaswarm.ui import view_registry  # noqa: F401 - registers the views domain objects ask for
from alphaswarm.ui.base import FramePump, LiveView
from alphaswarm.ui.equity import EquityCurve
from alphaswarm.ui.fills import FillsTable
from alphaswarm.ui.frames_log import FramesLog
from alphaswarm.ui.killswitch import KillSwitchWidget
from alphaswarm.ui.positions import Positions
from alphaswarm.ui.risk import RiskPanel
from alphaswarm.ui.session_card import SessionCard
from alphaswarm.ui.session_view import SessionView

__all__ = [
    "EquityCurve",
    "FillsTable",
    "FramePump",
    "FramesLog",
    "KillSwitchWidget",
    "LiveView",
    "Positions",
    "RiskPanel",
    "SessionCard",
    "SessionView",
]
