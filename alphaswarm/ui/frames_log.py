"""FramesLog: the latest frames of a run, filterable by stage."""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import pandas as pd
import panel as pn
import param

from alphaswarm.frames import LAGGED, STAGES
from alphaswarm.ui.base import LiveView, as_frame_dict, stream_rows
from alphaswarm.ui.pages.html import browser_zone, fmt_clock
from alphaswarm.ui.tables import ReadOnlyTabulator

COLUMNS = ["seq", "time", "stage", "message"]
#: Stages hidden by default: one or more per bar, they would drown everything else.
NOISY = ("bar.received", "equity.update", "heartbeat")


def _row(frame: dict[str, Any], zone: str | None = None) -> dict[str, Any]:
    return {
        "seq": frame.get("seq") if frame.get("seq") is not None else -1,
        # the wall time the frame was made, in the viewer's zone, with the zone
        "time": fmt_clock(frame.get("ts"), zone),
        "stage": frame.get("stage", ""),
        "message": frame.get("message", ""),
    }


class FramesLog(LiveView):
    """The latest frames of a run (``seq``, wall time, stage, message).

    Each stage keeps its own ring of ``max_rows`` frames, so a burst of
    ``bar.received`` frames never pushes an ``order.filled`` out; the stage
    filter shows any mix of them. Per-bar stages are hidden by default.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run (read from the ledger).
    """

    stages = param.ListSelector(
        default=[s for s in (*STAGES, LAGGED) if s not in NOISY],
        objects=[*STAGES, LAGGED],
        doc="Stages shown.",
    )
    max_rows = param.Integer(default=300, bounds=(1, None), doc="Frames kept per stage.")
    height = param.Integer(default=300, bounds=(100, None), doc="Table height in pixels.")

    STAGE_COLORS: ClassVar[dict[str, str]] = {
        "order.filled": "#2e7d32",
        "order.rejected": "#c62828",
        "risk.halted": "#c62828",
        "error": "#c62828",
        "session.stopped": "#6a1b9a",
        "done": "#6a1b9a",
    }

    def _build(self) -> None:
        self._rings: dict[str, deque[dict[str, Any]]] = {}
        self.stage_filter = pn.widgets.MultiChoice(
            label="Stages",
            options=list(self.param.stages.objects),
            value=list(self.stages),
            sizing_mode="stretch_width",
        )
        self.table = ReadOnlyTabulator(
            pd.DataFrame(columns=COLUMNS).astype({"seq": "int64"}),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=self.height,
            layout="fit_data_stretch",
            css_classes=["alphaswarm-frames"],
        )
        self.stage_filter.param.watch(self._on_filter, "value")
        self._layout = pn.Column(self.stage_filter, self.table, sizing_mode="stretch_width")

    def _on_filter(self, event: param.parameterized.Event) -> None:
        self.stages = [s for s in event.new if s in self.param.stages.objects]
        self._rebuild()

    def _rebuild(self) -> None:
        rows = sorted(
            (r for stage in self.stages for r in self._rings.get(stage, ())),
            key=lambda r: r["seq"],
        )[-self.max_rows :]
        self.table.value = pd.DataFrame(rows, columns=COLUMNS)

    def _add(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        shown = []
        selected = set(self.stages)
        zone = browser_zone()
        for frame in frames:
            row = _row(frame, zone)
            stage = row["stage"]
            ring = self._rings.get(stage)
            if ring is None:
                ring = self._rings[stage] = deque(maxlen=self.max_rows)
            ring.append(row)
            if stage in selected:
                shown.append(row)
        return shown

    def _load(self) -> None:
        if self.session is not None:
            self._add(self._new(self.recent_frames()))
            self._rebuild()
            return
        if not self.run_id:
            return
        df = self.ledger_().sql(
            "SELECT seq, frame FROM paper_frames WHERE paper_run_id = :run AND stage NOT IN "
            "('bar.received', 'equity.update', 'heartbeat') ORDER BY seq DESC LIMIT :n",
            run=self.run_id,
            n=self.max_rows * 4,
        )
        self._add([as_frame_dict(v) for v in reversed(list(df["frame"]))])
        self._rebuild()

    def _update(self, frames: list[dict[str, Any]]) -> None:
        rows = self._add(frames)
        if rows:
            stream_rows(
                self.table, pd.DataFrame(rows[-self.max_rows :], columns=COLUMNS), self.max_rows
            )

    @property
    def value(self) -> pd.DataFrame:
        """The rows shown."""
        return self.table.value

    def __panel__(self) -> pn.viewable.Viewable:
        """The stage filter above the table."""
        return self._layout
