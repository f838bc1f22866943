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
from alphaswarm.ui import notebook_documents, notebook_outputs
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


def test_changes_made_before_the_comm_opens_reach_the_page_in_one_message_once_it_opens():
    """Before the page opens an output's comm, Panel retried each change on its own
    timer, and the retries could overtake each other: a sweep's older "running: 4/4"
    line overwrote its final "done" line for good (JupyterLab). The kit keeps the
    changes in the document and sends them as one message when the comm opens, even
    if the views do not change again (the progress view stops with its sweep)."""
    progress, view, page = _progress_output(comm_open=False)
    for _ in range(4):
        progress.update(done=1)
        view.pump.tick()
    progress.close("done")
    view.pump.tick()
    time.sleep(0.3)
    assert page.receive() == 0  # nothing reached a page that has not opened the comm
    assert notebook_documents.is_waiting(page.doc)

    page.comm.open()  # no tick after this
    deadline = time.monotonic() + 10
    while not page.comm.parts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert page.receive() == 1
    assert page.unknown_references == []
    assert "done: 4/4 trials" in _page_status(page, view)
    assert not notebook_documents.is_waiting(page.doc)


def test_an_output_closed_before_its_comm_opened_is_not_waited_for():
    """A cell re-run or cleared before the page opened its output leaves nothing waiting."""
    progress, view, page = _progress_output(comm_open=False)
    progress.update(done=2)
    view.pump.tick()
    assert notebook_documents.is_waiting(page.doc)
    notebook_outputs.deleted(page.ref)  # its cell ran again, or the front end disposed of it
    assert not notebook_documents.is_waiting(page.doc)
    page.comm.open()
    time.sleep(0.3)
    assert page.receive() == 0  # nothing is sent for an output that is gone


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
