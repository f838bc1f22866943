"""Panel components of the paper kit: one pump per browser session feeds them all.

Each component is a :class:`panel.viewable.Viewer` bound to a
:class:`~alphaswarm.paper.session.PaperSession` (live) or to a run id (read
back from the ledger), usable in a notebook cell and in ``panel serve``.
"""

from __future__ import annotations

from typing import Any

from alphaswarm.ui import view_registry  # noqa: F401 - registers the views domain objects ask for

#: The components, imported on first use: ``alphaswarm.ui.routes`` (page addresses)
#: and the view registry need no Panel.
_EXPORTS = {
    "EquityCurve": "alphaswarm.ui.equity",
    "FillsTable": "alphaswarm.ui.fills",
    "FramePump": "alphaswarm.ui.base",
    "FramesLog": "alphaswarm.ui.frames_log",
    "KillSwitchWidget": "alphaswarm.ui.killswitch",
    "LiveView": "alphaswarm.ui.base",
    "Positions": "alphaswarm.ui.positions",
    "RiskPanel": "alphaswarm.ui.risk",
    "SessionCard": "alphaswarm.ui.session_card",
    "SessionView": "alphaswarm.ui.session_view",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'alphaswarm.ui' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
