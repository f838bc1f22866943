"""Sweep progress: one Param object fed by finished trials, as a tqdm bar or a Panel indicator.

:class:`SweepProgress` holds the counts (total, done, failed, resumed), the rate in
trials per second and the ETA. The runner calls :meth:`SweepProgress.update` as
trials finish; a ``tqdm.auto`` bar (terminal and notebook) follows it, and
:meth:`SweepProgress.panel` returns a Panel view of it (a progress bar and a status
line polled on the kit's frame pump) for notebooks and the dashboard. When the sweep
runs on Dask, the link to the cluster's dashboard is shown beside the bar in a
notebook and under the Panel indicator.
"""

from __future__ import annotations

import html
import time
from typing import Any

import param

__all__ = ["SweepProgress"]


class SweepProgress(param.Parameterized):
    """Progress of one sweep, updated as trials finish.

    Examples
    --------
    >>> p = SweepProgress(total=4)
    >>> p.update(done=3, failed=1)
    >>> p.finished, p.value
    (4, 100)
    """

    total = param.Integer(
        default=0, bounds=(0, None), doc="Trials in the sweep (resumed ones included)."
    )
    resumed = param.Integer(
        default=0, bounds=(0, None), doc="Trials found finished in the ledger and skipped."
    )
    done = param.Integer(
        default=0, bounds=(0, None), doc="Trials finished with metrics (resumed included)."
    )
    failed = param.Integer(default=0, bounds=(0, None), doc="Trials recorded as failed or invalid.")
    value = param.Integer(
        default=0, bounds=(0, 100), doc="Percent finished (for a Panel ``Progress``)."
    )
    rate = param.Number(default=0.0, bounds=(0, None), doc="Trials per second run in this session.")
    eta = param.Number(default=None, allow_None=True, doc="Seconds left at the current rate.")
    elapsed = param.Number(default=0.0, bounds=(0, None), doc="Seconds since the sweep started.")
    status = param.Selector(
        default="pending",
        objects=["pending", "running", "done", "cancelled", "failed"],
        doc="State of the sweep.",
    )
    message = param.String(default="", doc="One-line summary, e.g. for a status bar.")
    dashboard = param.String(
        default=None,
        allow_None=True,
        doc="URL of the Dask dashboard of the cluster running the trials (None: serial).",
    )

    def __init__(self, *, bar: bool = False, desc: str = "sweep", **params: Any) -> None:
        super().__init__(**params)
        self._t0: float | None = None
        self._bar: Any = None
        self._want_bar = bar
        self._desc = desc

    @property
    def label(self) -> str:
        """The bar's name (the sweep name, plus the phase of a walk-forward)."""
        return self._desc

    @property
    def finished(self) -> int:
        """Trials finished one way or another (done + failed)."""
        return self.done + self.failed

    def start(self, total: int, resumed: int = 0, resumed_failed: int = 0) -> None:
        """Begin counting; ``resumed`` trials (``resumed_failed`` failed) are already finished."""
        self._t0 = time.monotonic()
        self.param.update(
            total=total,
            resumed=resumed,
            done=resumed - resumed_failed,
            failed=resumed_failed,
            status="running",
            rate=0.0,
            eta=None,
            elapsed=0.0,
        )
        self._refresh()
        if self._want_bar:
            from tqdm.auto import tqdm

            if self.dashboard and any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__):
                self._show_link()  # a notebook: the link goes right above the bar
            self._bar = tqdm(
                total=total, initial=resumed, desc=self._desc, unit="trial", dynamic_ncols=True
            )
            self._bar.set_postfix(failed=self.failed, refresh=False)

    def link_widget(self) -> Any:
        """An ipywidgets ``HTML`` link to the Dask dashboard (None without a dashboard)."""
        if not self.dashboard:
            return None
        from ipywidgets import HTML

        link = html.escape(self.dashboard, quote=True)
        return HTML(f'<a href="{link}" target="_blank">Dask dashboard</a>: {link}')

    def _show_link(self) -> None:
        from IPython.display import display

        display(self.link_widget())

    def update(self, done: int = 0, failed: int = 0) -> None:
        """Count newly finished trials."""
        if self._t0 is None:
            self._t0 = time.monotonic()
        self.param.update(done=self.done + done, failed=self.failed + failed)
        self._refresh()
        if self._bar is not None:
            self._bar.update(done + failed)
            self._bar.set_postfix(failed=self.failed, refresh=False)

    def close(self, status: str) -> None:
        """Mark the end of the sweep and close the bar."""
        self._refresh()
        self.status = status
        self.message = self._message()
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _refresh(self) -> None:
        elapsed = time.monotonic() - self._t0 if self._t0 is not None else 0.0
        ran = self.finished - self.resumed
        rate = ran / elapsed if elapsed > 0 else 0.0
        left = max(self.total - self.finished, 0)
        self.param.update(
            elapsed=elapsed,
            rate=rate,
            eta=(left / rate) if rate > 0 else None,
            value=int(100 * self.finished / self.total) if self.total else 100,
        )
        self.message = self._message()

    def _message(self) -> str:
        eta = f", ETA {self.eta:.0f} s" if self.eta is not None and self.status == "running" else ""
        return (
            f"{self.status}: {self.finished}/{self.total} trials ({self.failed} failed), "
            f"{self.rate:.1f} trials/s{eta}"
        )

    def panel(self) -> Any:
        """A Panel view of this progress: a bar, a status line and the Dask dashboard link.

        It follows the counts on the tick of the kit's frame pump (on the notebook's
        or the server session's own loop), whichever thread updates them.
        """
        from alphaswarm.views import view

        return view("sweep_progress", self)
