"""Toasts for what must not go unnoticed in the open run: a risk halt, an error, a kill.

A :class:`RunToasts` watches the frames of one live session on the page's frame
pump and shows a toast (Panel's notification area) for each ``risk.halted``,
``error`` and ``session.stopped`` frame of a killed session, and for a feed that
skipped bars (``feed.gap``) or went silent (``feed.stalled``). Frames that happened
before the run was opened are history, not news: they raise no toast.
"""

from __future__ import annotations

from typing import Any

import param

from alphaswarm.ui.base import LiveView

#: How long a toast stays (milliseconds; 0 keeps it until closed).
TOAST_MS = 0


def toast_for(frame: dict[str, Any]) -> tuple[str, str] | None:
    """The toast a frame raises, as ``(kind, text)``, or ``None``.

    ``kind`` is ``"error"`` or ``"warning"``.
    """
    stage = frame.get("stage")
    run = frame.get("task_id") or ""
    message = str(frame.get("message") or "")
    if stage == "risk.halted":
        return "error", f"Risk halt in {run}: {message}"
    if stage == "error":
        return "error", f"Error in {run}: {message}"
    if stage == "session.stopped" and frame.get("status") == "killed":
        return "warning", f"{run} killed: {frame.get('reason') or message}"
    if stage == "feed.gap":
        return "warning", f"Feed gap in {run}: {message}"
    if stage == "feed.stalled":
        return "warning", f"Feed stalled in {run}: {message}"
    return None


class RunToasts(LiveView):
    """Raise a toast for each risk halt, error, kill, feed gap or stall of one live run."""

    notifications = param.Parameter(
        default=None,
        doc="The notification area toasts go to (the page's; none: nothing is shown).",
    )
    shown = param.List(default=[], doc="Texts of the toasts raised so far, oldest first.")

    def _load(self) -> None:
        self._new(self.recent_frames())  # history: remembered as seen, not announced

    def _update(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            toast = toast_for(frame)
            if toast is None:
                continue
            kind, text = toast
            self.shown = [*self.shown, text]
            area = self.notifications
            if area is not None:
                getattr(area, kind)(text, duration=TOAST_MS)

    def __panel__(self) -> Any:
        """Nothing on the page: the toasts show in the notification area."""
        import panel as pn

        return pn.Spacer(width=0, height=0, margin=0)
