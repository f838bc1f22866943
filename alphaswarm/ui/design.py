"""The dashboard's design: Panel's Fast design, asking nothing of the network."""

from __future__ import annotations

from typing import Any, ClassVar

from panel.theme.fast import Fast as PanelFast


class Fast(PanelFast):
    """Panel's Fast design without its web font (Open Sans from a font service).

    The page keeps working on a machine with no network: type falls back to the
    fonts the template names (see ``alphaswarm.ui.app.SYSTEM_FONTS``). The class
    keeps the name ``Fast`` because Panel finds a design's bundled scripts under
    its lower-cased class name.
    """

    _resources: ClassVar[dict[str, Any]] = {**PanelFast._resources, "font": {}}
