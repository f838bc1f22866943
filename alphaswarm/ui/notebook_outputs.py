"""Which notebook outputs still show a pump's views, and when they end.

A view fed by a :class:`~alphaswarm.ui.base.FramePump` ticks for as long as an
output on a page shows it. Three events end an output:

- **A cell runs again.** Its outputs are replaced: an IPython ``pre_run_cell``
  hook matches the cell id the front end sends with each run.
- **The front end disposes of it.** JupyterLab's HoloViz extension tells the
  kernel (``{"event_type": "delete", "id": <root model id>}`` on its extension
  comm), e.g. when the output is cleared.
- **Nobody shows it any more.** Closing a notebook, or the browser tab, tells
  the kernel nothing. So each output carries an :class:`OutputHeartbeat`, a
  hidden element whose script reports to the kernel every :data:`BEAT_MS`
  milliseconds while it is on a page. Once a page has reported to this kernel, an
  output silent for :data:`STALE_AFTER_S` seconds counts as gone (one displayed
  just before its notebook closed may never report at all); it comes back (and
  its views catch up) if it reports again, e.g. a laptop waking from sleep. The
  margin covers the once-a-minute timers browsers allow a hidden tab.

In a kernel no page ever reported to (a notebook executed headless) outputs are
ended only by the first two events.

An output's owner is told it ended under
:data:`~alphaswarm.ui.notebook_documents.DOCUMENT_LOCK` (the page's messages may
arrive on another thread than the one pumps tick on).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import Any, Protocol

import panel as pn
import param

from alphaswarm.ui.notebook_documents import DOCUMENT_LOCK

log = logging.getLogger(__name__)

#: How often an output on a page reports to the kernel (milliseconds).
BEAT_MS = 5_000
#: Silence after which an output that has reported counts as gone (seconds).
STALE_AFTER_S = 90.0
#: The metadata key of a Panel notebook output, holding its root model id.
OUTPUT_MIME = "application/vnd.holoviews_exec.v0+json"


class OutputOwner(Protocol):
    """What owns the views of an output (a frame pump)."""

    def output_deleted(self, ref: str) -> None:
        """Output ``ref`` is gone."""

    def output_revived(self, ref: str) -> None:
        """Output ``ref``, counted gone after a silence, reported again."""


_LOCK = threading.Lock()
#: Outputs showing views, by root model id.
_OUTPUTS: dict[str, OutputOwner] = {}
#: The notebook cell (its front end's cell id) whose run displayed each output.
_CELLS: dict[str, str] = {}
#: When each output last reported or was displayed (monotonic seconds), once a page
#: has reported to this kernel.
_SEEN: dict[str, float] = {}
_page_reported = False
#: Outputs counted gone after a silence, kept weakly so a late report revives them.
_SILENT: dict[str, weakref.ReferenceType[Any]] = {}
_watch: asyncio.Task[None] | None = None
_hooks_installed = False


def output_ref(bundle: Any) -> str | None:
    """The root model id of a Panel notebook output (its mimebundle), or None."""
    if not isinstance(bundle, tuple) or len(bundle) != 2 or not isinstance(bundle[1], dict):
        return None
    meta = bundle[1].get(OUTPUT_MIME)
    ref = meta.get("id") if isinstance(meta, dict) else None
    return ref if isinstance(ref, str) else None


def count() -> int:
    """Outputs currently showing views (for leak checks)."""
    with _LOCK:
        return len(_OUTPUTS)


def shown(ref: str, owner: OutputOwner) -> None:
    """Output ``ref`` shows views of ``owner``, displayed by the running cell."""
    install_hooks()
    cell = running_cell_id()
    with _LOCK:
        _OUTPUTS[ref] = owner
        _SILENT.pop(ref, None)
        if cell:
            _CELLS[ref] = cell
        if _page_reported:
            _SEEN[ref] = time.monotonic()
    _start_watch()


def forget(ref: str) -> OutputOwner | None:
    """Drop output ``ref`` from the books without telling its owner; the owner it had."""
    with _LOCK:
        owner = _OUTPUTS.pop(ref, None)
        _CELLS.pop(ref, None)
        _SEEN.pop(ref, None)
        _SILENT.pop(ref, None)
    return owner


def deleted(ref: str) -> None:
    """Output ``ref`` is gone for good (its cell ran again, or the front end disposed of it)."""
    owner = forget(ref)
    if owner is not None:
        with DOCUMENT_LOCK:
            owner.output_deleted(ref)


def beat(ref: str) -> None:
    """Output ``ref`` reported from a page: it is shown (again, after a silence)."""
    global _page_reported
    revived = None
    with _LOCK:
        if not _page_reported:
            # a page shows this kernel's outputs: from now on silence ends them
            _page_reported = True
            _SEEN.update(dict.fromkeys(_OUTPUTS, time.monotonic()))
        if ref in _OUTPUTS:
            _SEEN[ref] = time.monotonic()
        elif ref in _SILENT:
            revived = _SILENT.pop(ref)()
            if revived is not None:
                _OUTPUTS[ref] = revived
                _SEEN[ref] = time.monotonic()
    if revived is not None:
        revived.output_revived(ref)
    _start_watch()


def end_silent(now: float | None = None) -> list[str]:
    """Count as gone every output silent for :data:`STALE_AFTER_S`; the ones ended.

    Parameters
    ----------
    now : float, optional
        Monotonic time to judge by (the current time by default).
    """
    now = time.monotonic() if now is None else now
    ended: list[tuple[str, OutputOwner]] = []
    with _LOCK:
        for ref in [r for r, owner in _SILENT.items() if owner() is None]:
            del _SILENT[ref]  # its views are gone: nothing to revive
        for ref, seen in list(_SEEN.items()):
            if now - seen < STALE_AFTER_S:
                continue
            del _SEEN[ref]
            owner = _OUTPUTS.pop(ref, None)
            if owner is not None:
                _SILENT[ref] = weakref.ref(owner)
                ended.append((ref, owner))
    for ref, owner in ended:
        log.debug("notebook output %s silent for %.0f s: counted gone", ref, STALE_AFTER_S)
        with DOCUMENT_LOCK:
            owner.output_deleted(ref)
    return [ref for ref, _owner in ended]


def _start_watch() -> None:
    """Check for silent outputs on the kernel's loop while any output reports."""
    global _watch
    if not _SEEN or (_watch is not None and not _watch.done()):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: the next report checks again
        return
    _watch = loop.create_task(_watch_silence())


async def _watch_silence() -> None:
    while True:
        await asyncio.sleep(min(BEAT_MS / 1000, STALE_AFTER_S / 3))
        try:
            end_silent()
        except Exception:  # noqa: BLE001 - the watch outlives one failed check
            log.exception("checking notebook outputs failed")
        with _LOCK:
            if not _SEEN:
                return


def running_cell_id() -> str | None:
    """The front end's id of the notebook cell IPython is running, or None.

    Front ends (JupyterLab, Notebook 7, VS Code) send it with each execute request;
    IPython keeps it with the run's result. (The kernel's parent header is not
    used: with a queue of cells, e.g. Run All, it can name a cell not run yet.)
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - a notebook output implies IPython
        return None
    result = getattr(getattr(get_ipython(), "displayhook", None), "exec_result", None)
    cell = getattr(getattr(result, "info", None), "cell_id", None)
    return cell if isinstance(cell, str) and cell else None


def _cell_runs(info: Any) -> None:
    """IPython ``pre_run_cell`` hook: a cell running again replaces its earlier outputs."""
    cell = getattr(info, "cell_id", None)
    if not cell:
        return
    with _LOCK:
        replaced = [ref for ref, c in _CELLS.items() if c == cell]
    for ref in replaced:
        deleted(ref)


def install_hooks() -> None:
    """Have cell re-runs and the front end's output deletes reach the owners (once)."""
    global _hooks_installed
    with _LOCK:
        if _hooks_installed:
            return
        _hooks_installed = True
    from pyviz_comms import extension

    # Panel cleans up the output's models; this then tells the owner
    extension.add_delete_action(deleted)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - a notebook output implies IPython
        shell = None
    if shell is not None:
        shell.events.register("pre_run_cell", _cell_runs)


class OutputHeartbeat(pn.custom.JSComponent):
    """A hidden element that reports to the kernel while its output is on a page.

    Its script counts :attr:`beat` up every :data:`BEAT_MS` milliseconds until the
    element is removed; each count reaches the kernel over the output's comm and
    calls :func:`beat` for :attr:`ref`.
    """

    beat = param.Integer(default=0, doc="Reports received from the page so far.")
    period_ms = param.Integer(
        default=BEAT_MS, bounds=(100, None), constant=True,
        doc="Milliseconds between two reports.",
    )  # fmt: skip

    _esm = """
    export function render({ model, el }) {
      el.style.display = "none"
      const timer = setInterval(() => { model.beat = model.beat + 1 }, model.period_ms)
      model.on("remove", () => clearInterval(timer))
    }
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(height=0, width=0, margin=0, **params)
        self.ref: str | None = None

    @param.depends("beat", watch=True)
    def _reported(self) -> None:
        if self.ref is not None:
            beat(self.ref)
