"""SweepProgressView: a sweep's progress bar and status line, polled on a pump's tick.

A sweep counts its trials on the thread (or Dask callback) that runs them. A Panel
indicator bound to those parameters would be updated on that thread; in a notebook
the change never reached the output (it stayed at the first trial while the kernel
said the sweep was done). Like every live component, this view reads the counts on
its :class:`~alphaswarm.ui.base.FramePump`'s tick instead, on the document's own
loop, and its pump stops once the sweep has ended and the last counts are shown.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from alphaswarm.sweep.progress import SweepProgress
from alphaswarm.ui.base import LiveView
from alphaswarm.ui.tables import InlineHTML

#: Statuses after which a sweep's counts no longer change.
ENDED = ("done", "cancelled", "failed")


class SweepProgressView(LiveView):
    """The progress bar, status line and Dask dashboard link of one sweep.

    Parameters
    ----------
    progress : SweepProgress
        The sweep's progress (``result.progress``).
    """

    progress = param.ClassSelector(
        class_=SweepProgress, default=None, allow_None=True, doc="The sweep's progress shown."
    )

    def __init__(self, progress: SweepProgress | None = None, **params: Any) -> None:
        if progress is not None:
            params["progress"] = progress
        super().__init__(**params)

    def _build(self) -> None:
        self.bar = pn.indicators.Progress(
            value=0, max=100, sizing_mode="stretch_width", bar_color="primary"
        )
        self.status = InlineHTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.link = pn.pane.Markdown("", visible=False, margin=(0, 10))
        self._final_shown = False
        self._layout = pn.Column(
            self.bar,
            self.status,
            self.link,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-sweep-progress"],
        )

    def _load(self) -> None:
        self._update([])

    @property
    def ended(self) -> bool:
        """True once the sweep has ended and its final line is on screen."""
        return self.progress is None or self._final_shown

    def _update(self, frames: list[dict[str, Any]]) -> None:
        p = self.progress
        if p is None:
            return
        # the sweep's thread sets the final status, then the line saying it: the view
        # has ended only once it shows that line (its pump stops after this tick)
        status = p.status
        value, message, dashboard = p.value, p.message, p.dashboard
        self._final_shown = status in ENDED and message.startswith(f"{status}:")
        if self.bar.value != value:
            self.bar.value = value
        text = f'<pre class="sweep-status" data-status="{p.status}">{html.escape(message)}</pre>'
        if self.status.object != text:
            self.status.object = text
        if dashboard and not self.link.visible:
            self.link.object = f"[Dask dashboard]({dashboard})"
            self.link.visible = True

    def __panel__(self) -> pn.viewable.Viewable:
        """The bar and its status line."""
        return self._layout
