"""Live views rendered the way a notebook renders them (a comm, no server session).

A notebook front end sends some of what the kernel streamed back to it: the rows
of a table, and streamed plot columns with their times as floats. These tests
replay such echoes against a rendered view and check that it keeps updating.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource
from pyviz_comms import Comm

import alphaswarm as aw
from alphaswarm.ui import EquityCurve, FillsTable, FramePump, SessionView
from tests.ui.conftest import wait_until
from tests.ui.fresh_loop import run_on_fresh_loop
from tests.ui.test_components import _bar, _fill, _frame


@pytest.fixture
def idle_session(tmp_ledger) -> aw.PaperSession:
    """A session that is never started: frames are published by hand."""
    s = aw.PaperSession(aw.Bot({"name": "nb-view", "strategy": "sma_cross"}))
    s._set_outputs(paper_run_id="paper-notebook")
    return s


def _render(viewable) -> tuple[Document, object]:
    doc = Document()
    root = pn.panel(viewable).get_root(doc, Comm())
    if root.document is None:  # as a notebook output does
        doc.add_root(root)
    return doc, root


def _publish_minutes(session, start_seq: int, minutes: range) -> int:
    seq = start_seq
    for minute in minutes:
        seq += 1
        session.frames.publish(_bar(session, seq, minute, 100 + minute))
        seq += 1
        session.frames.publish(_frame(session, seq, "equity.update", equity=1e5 + minute))
    return seq


def test_notebook_plots_send_whole_series_not_streams(idle_session):
    """A notebook front end echoes a streamed column back with float times; applying
    that echo failed (DTypePromotionError, DateTime64 vs Float64) and left the output's
    document held, so the view froze. Notebook plots therefore replace their data."""
    pump = FramePump()
    curve = EquityCurve(idle_session, pump=pump)
    doc, root = _render(curve)
    kinds: list[str] = []
    doc.on_change(lambda event: kinds.append(type(event).__name__))
    seq = _publish_minutes(idle_session, 0, range(3))
    idle_session.frames.publish(_fill(idle_session, seq + 1, 1, side="buy", price=101))
    pump.tick()
    _publish_minutes(idle_session, seq + 1, range(3, 6))
    pump.tick()
    assert kinds, "the ticks changed the document"
    assert "ColumnsStreamedEvent" not in kinds
    assert list(curve.equity_buffer.data["equity"]) == [1e5 + m for m in range(6)]
    equity_sources = [s for s in root.select({"type": ColumnDataSource}) if "equity" in s.data]
    assert equity_sources and all(len(s.data["equity"]) == 6 for s in equity_sources)
    assert all(np.asarray(s.data["ts"]).dtype.kind == "M" for s in equity_sources)


def test_table_ignores_a_stale_copy_from_the_front_end(idle_session):
    pump = FramePump()
    table = FillsTable(idle_session, pump=pump)
    _render(table)
    idle_session.frames.publish(_fill(idle_session, 1, 1))
    pump.tick()
    stale = table.table._get_data()[1]  # the browser's copy of the first state
    for n in range(2, 5):
        idle_session.frames.publish(_fill(idle_session, n, n))
    pump.tick()
    # used to raise "Must have equal len keys" and leave the notebook output held
    table.table._process_events({"data": stale})
    assert len(table.value) == 4
    idle_session.frames.publish(_fill(idle_session, 5, 5))
    pump.tick()
    assert len(table.value) == 5


def test_session_view_reaches_the_kernel_state(good_bot, run_session):
    view = SessionView(run_session(good_bot, max_bars=200))
    _render(view)
    session = view.session
    assert session.wait(60)
    view.refresh()
    view.refresh()
    assert view.card.status == session.status == "completed"
    assert view.card.fills_indicator.value == session.num_fills
    assert view.card.equity_indicator.value == pytest.approx(session.equity)
    assert len(view.fills.value) == session.num_fills
    assert len(view.equity.price_buffer.data) == session.bars_seen
    assert isinstance(view.fills.value, pd.DataFrame)


def test_the_pumps_last_tick_shows_the_final_status(good_bot, run_session):
    """A notebook pump drops a session once its frame bus is closed and stops when no
    session is left; the bus closed before the final status was set, so a tick landing
    in between left the displayed view at RUNNING after a kill (README snippet)."""
    session = run_session(good_bot, speed=60, max_bars=100_000)
    view = SessionView(session, pump=FramePump(stop_when_idle=True))
    _render(view)
    wait_until(lambda: session.bars_seen > 0, timeout=60)
    seen: dict[str, object] = {}
    close = session.frames.close

    def close_then_tick() -> None:
        view.pump.tick()  # a tick takes the session's last frames
        close()
        view.pump.tick()  # the next one lands right after the bus closed
        seen.update(status=view.card.status, subscriptions=view.pump.subscriptions)

    session.frames.close = close_then_tick
    assert session.kill("kill switch")
    assert session.wait(60)
    assert seen["subscriptions"] == 0  # that tick let go of the session: it was the last
    assert seen["status"] == session.status == "killed"


def test_a_server_session_of_another_thread_is_not_the_outputs_document(idle_session):
    """Bokeh's current document is process-wide: while a Panel server in the same
    process runs a session callback on its thread, ``pn.state.curdoc`` returns that
    session's document everywhere. A notebook view built or ticked meanwhile took it
    for its own: it streamed (ColumnsStreamedEvent) and shared that document's
    stylesheet models ("Models must be owned by only a single document")."""
    import asyncio
    import threading
    import weakref

    from bokeh.application import Application
    from bokeh.io.doc import patch_curdoc
    from bokeh.server.contexts import ApplicationContext, BokehSessionContext, _RequestProxy
    from tornado.httputil import HTTPServerRequest, RequestStartLine
    from tornado.ioloop import IOLoop

    loop = asyncio.new_event_loop()
    loops: list[IOLoop] = []  # the server's loop belongs to its own thread
    maker = threading.Thread(target=lambda: loops.append(IOLoop(asyncio_loop=loop)))
    maker.start()
    maker.join()
    try:
        app_context = ApplicationContext(Application(), io_loop=loops[0])
        server_doc = Document()
        context = BokehSessionContext("other", app_context.server_context, server_doc)
        context._request = _RequestProxy(
            HTTPServerRequest(start_line=RequestStartLine("GET", "/", "HTTP/1.0"))
        )
        server_doc._session_context = weakref.ref(context)
        with patch_curdoc(server_doc):
            assert pn.state.curdoc is server_doc  # what the other thread's session makes it
            pump = FramePump()
            curve = EquityCurve(idle_session, pump=pump)
            doc, _root = _render(curve)
            kinds: list[str] = []
            doc.on_change(lambda event: kinds.append(type(event).__name__))
            _publish_minutes(idle_session, 0, range(3))
            pump.tick()
            assert not curve._streaming, "the output took the server document for its own"
            assert kinds and "ColumnsStreamedEvent" not in kinds
            # a served document has one pump, handed out again; an output gets its own each
            # time (which runs when this thread has a loop: Jupyter, or a test after a browser)
            assert FramePump.current() is not FramePump.current()
    finally:
        loop.close()


def _y_range(root, label: str) -> tuple[float, float]:
    from bokeh.plotting import figure

    [plot] = [f for f in root.select({"type": figure}) if f.yaxis[0].axis_label == label]
    return plot.y_range.start, plot.y_range.end


def test_notebook_price_plot_range_follows_prices_and_fill_markers(idle_session):
    """In a notebook output each update replaces the series and the ranges are set from
    the data (framewise). The price plot is an overlay (line and fill markers) and the
    option on the overlay did not reach its elements: its y-range stayed at 0 to 1, the
    price line off screen (the notebook-01 screenshot). The markers count too."""
    pump = FramePump()
    curve = EquityCurve(idle_session, pump=pump)
    _doc, root = _render(curve)
    seq = _publish_minutes(idle_session, 0, range(30))  # closes 100 to 129
    idle_session.frames.publish(_fill(idle_session, seq + 1, 1, side="buy", price=131.5))
    pump.tick()
    low, high = _y_range(root, "DEMO price")
    assert 90 <= low <= 100 and 131.5 <= high <= 140, (low, high)
    # the range follows new bars
    _publish_minutes(idle_session, seq + 1, range(30, 40))  # closes up to 139
    pump.tick()
    low, high = _y_range(root, "DEMO price")
    assert 90 <= low <= 100 and 139 <= high <= 150, (low, high)


def test_a_kill_switch_widget_alone_in_a_notebook_stays_live(tmp_ledger):
    """A notebook pump stopped once every component's session had finished; a kill switch
    widget has no session, so displayed alone it stopped after its first tick and never
    showed an engagement made in another cell. A pump with a session-less component now
    ticks until its output is deleted."""
    import asyncio
    import time

    from alphaswarm.ui import KillSwitchWidget

    async def scenario() -> tuple[bool, bool]:
        widget = KillSwitchWidget()  # the notebook pump ticks on this loop
        _render(widget)
        deadline = time.monotonic() + 60
        while widget.pump.ticks < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        aw.kill_switch().engage("notebook widget test")
        try:
            while not widget.engaged and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return widget.engaged, widget.pump.running
        finally:
            aw.kill_switch().reset()
            widget.pump.close()

    engaged, running = run_on_fresh_loop(scenario())
    assert engaged and running


def test_sweep_progress_view_follows_counts_made_on_another_thread():
    """A sweep counts its trials on the thread running them. The Panel indicator bound to
    those counts was updated on that thread and a notebook output never saw it (it stayed
    at "running: 1/4" in JupyterLab while the kernel said done); the view now reads them
    on its pump's tick and its pump idles once the sweep has ended."""
    import threading

    from alphaswarm.sweep.progress import SweepProgress

    progress = SweepProgress()
    view = progress.panel()
    assert view.pump is not None
    view.pump.stop_when_idle = True
    view.pump._callback = object()  # counted as running: the test ticks by hand
    _render(view)
    progress.start(4)
    view.pump.tick()
    assert view.bar.value == 0 and "running: 0/4" in view.status.object

    def run_trials() -> None:
        for _ in range(4):
            progress.update(done=1)

    worker = threading.Thread(target=run_trials)
    worker.start()
    worker.join()
    # close() sets the final status, then the line saying it: a tick in between showed
    # "running: 4/4" and stopped the pump there (the JupyterLab run caught it)
    progress.status = "done"
    view.pump.tick()
    assert view.pump._callback is not None, "stopped before the final line was shown"
    progress.close("done")
    view.pump.tick()
    assert view.bar.value == 100
    assert "done: 4/4 trials" in view.status.object
    assert view.pump._callback is None  # the sweep ended: the pump stopped
