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
