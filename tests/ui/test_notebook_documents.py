"""Kit notebook outputs reach the page whole and in order (alphaswarm.ui.notebook_documents).

Each test renders a kit view as a notebook output with a comm, changes it the way a
pump's tick does, and applies what the kernel sent to a copy of the page's document
the way a browser does (:class:`tests.ui.notebook_page.PageCopy`).
"""

from __future__ import annotations

import threading
import time
import uuid

from panel.models.comm_manager import CommManager

from alphaswarm.sweep.progress import SweepProgress
from alphaswarm.ui import notebook_documents
from alphaswarm.ui.notebook_documents import KitOutput
from alphaswarm.ui.notebook_outputs import OutputHeartbeat
from alphaswarm.ui.sweep_progress import SweepProgressView
from tests.ui.notebook_page import PageCopy


def _progress_output(*, comm_open: bool) -> tuple[SweepProgress, SweepProgressView, PageCopy]:
    progress = SweepProgress()
    progress.start(4)
    view = SweepProgressView(progress)
    output = KitOutput(view, OutputHeartbeat(period_ms=1000))
    return progress, view, PageCopy(output, comm_open=comm_open)


def _page_status(page: PageCopy, view: SweepProgressView) -> str:
    (status_model,) = [m for m, _parent in view.status._models.values()]
    return page.model(status_model).text


def test_changes_made_before_the_comm_opens_are_not_kept_back():
    """Before the page opens an output's comm, Panel sends (and retries) each change
    itself: a batch keeps nothing back in the document, where it could wait for good
    once the views stop changing (a killed session's view stood at RUNNING in a
    JupyterLab run). Once the comm is open, a tick's changes go in one message."""
    progress, view, page = _progress_output(comm_open=False)
    progress.update(done=1)
    view.pump.tick()
    assert page.doc.callbacks._held_events == []
    assert page.receive() == 0  # nothing reached a page that has not opened the comm

    page.comm.open()
    progress.update(done=3)
    progress.close("done")
    view.pump.tick()
    assert page.receive() == 1
    assert page.unknown_references == []
    assert "done: 4/4 trials" in _page_status(page, view)


def test_a_tick_sends_one_message_per_output():
    """Every change of a tick goes in one message, built once the model graph is whole."""
    progress, view, page = _progress_output(comm_open=True)
    view.pump.tick()
    page.receive()
    progress.update(done=2)
    view.pump.tick()  # the bar and the status line change
    assert page.receive() == 1
    assert page.unknown_references == []
    assert "running: 2/4" in _page_status(page, view)


def test_a_page_message_waits_for_the_tick_in_progress():
    """The kernel applied the page's messages (a heartbeat) on another thread than the
    pumps tick on. Applied halfway through an update, one marked the update's new
    models as known to the page and dropped its changes not sent yet; the page then got
    references to models it never received ("reference ... isn't known", JupyterLab's
    console). A page message now waits until the tick's changes are sent."""
    progress, view, page = _progress_output(comm_open=True)
    view.pump.tick()
    page.receive()
    output = page.viewable
    heartbeat = output.objects[1]
    (beat_model,) = [m for m, _parent in heartbeat._models.values()]
    beat = {"kind": "ModelChanged", "model": {"id": beat_model.data.id}, "attr": "beat", "new": 7}
    message = {
        "header": {"msgtype": "PATCH-DOC", "msgid": uuid.uuid4().hex},
        "metadata": {},
        "content": {"events": [beat]},
        "_buffers": {},
    }
    manager = CommManager(comm_id=page.comm.id, plot_id=page.ref)
    applied = threading.Event()

    def page_reports() -> None:
        output._on_msg(page.ref, manager, message)
        applied.set()

    with notebook_documents.batch([view]):
        progress.update(done=3)
        view.refresh([])  # the status pane gets new models (its stylesheets)
        reporter = threading.Thread(target=page_reports)
        reporter.start()
        time.sleep(0.3)
        assert not applied.is_set(), "the page's message was applied in the middle of a tick"
    reporter.join(10)
    assert applied.is_set()
    assert heartbeat.beat == 7
    page.receive()
    assert page.unknown_references == []
    assert "running: 3/4" in _page_status(page, view)
