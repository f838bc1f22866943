"""A tab closing while Panel writes a patch to it: the failure is retrieved, the document freed.

A real Tornado websocket server on the loopback, a real client that resets its
connection, and Panel's own ``write_events`` writing a Bokeh patch to the reset
socket: the first write fails on the broken connection, the second raises at
once, and Panel drops the first write's future. Without the kit's hooks that
future's failure is reported as never retrieved, and the report (kept by a log
handler, as test runners and log collectors do) holds the document through the
failure's frames.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import select
import socket
import struct
import weakref
from types import SimpleNamespace
from typing import Any

import pytest
from bokeh.document import Document
from bokeh.document.events import ModelChangedEvent
from bokeh.models import Div
from bokeh.protocol import Protocol
from panel.io.document import write_events
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application
from tornado.websocket import WebSocketClosedError, WebSocketHandler, websocket_connect

from alphaswarm.ui.socket_writes import (
    _RetrievingTasks,
    watch_connections,
    watch_write_tasks,
)
from tests.ui.fresh_loop import run_on_fresh_loop


class KeptRecords(logging.Handler):
    """Keeps every record it handles, like a test runner's or a collector's handler."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Handler(WebSocketHandler):
    """Hands its open connection to the test."""

    def initialize(self, opened: asyncio.Future[Any]) -> None:
        self.opened = opened

    def open(self) -> None:
        self.opened.set_result(self)


def reset(client: Any) -> None:
    """Close the client's TCP connection with a reset (what a killed tab can send)."""
    sock = client.protocol.stream.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.protocol.stream.close()


def wait_readable(sock: socket.socket, timeout: float = 10.0) -> None:
    """Block (without running the loop) until the reset has reached the server's socket."""
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, "the reset never reached the server"


async def write_a_patch_to_a_reset_tab(watch: bool) -> weakref.ref[Document]:
    """Panel writes a patch to a tab that just reset; returns a weak reference to the document."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    [listener] = bind_sockets(0, "127.0.0.1")
    port = listener.getsockname()[1]
    server = HTTPServer(Application([("/ws", Handler, {"opened": opened})]))
    server.add_sockets([listener])
    client = await websocket_connect(f"ws://127.0.0.1:{port}/ws")
    handler = await asyncio.wait_for(opened, 10)
    connection = SimpleNamespace(_socket=handler, protocol=Protocol())
    if watch:
        assert watch_connections([connection]) == 1
    doc = Document()
    div = Div(text="before")
    doc.add_root(div)
    events = [ModelChangedEvent(doc, div, "text", "after")]
    reset(client)
    wait_readable(handler.ws_connection.stream.socket)
    with pytest.raises(WebSocketClosedError):  # Panel's own caller catches this
        write_events(doc, [connection], events)
    document = weakref.ref(doc)
    del doc, div, events, handler, connection
    for _ in range(20):  # the failed write completes on the loop
        await asyncio.sleep(0.01)
    server.stop()
    await server.close_all_connections()
    client.close()
    return document


def test_a_write_dropped_by_panel_retrieves_its_failure_and_frees_the_document():
    kept = KeptRecords()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(kept)
    try:
        document = run_on_fresh_loop(write_a_patch_to_a_reset_tab(watch=True))
        gc.collect()
    finally:
        asyncio_log.removeHandler(kept)
    never = [r.getMessage() for r in kept.records if "never retrieved" in r.getMessage()]
    assert never == []
    gc.collect()
    assert document() is None, gc.get_referrers(document())


def test_watch_write_tasks_replaces_the_documents_task_list_once():
    from panel.io import document as panel_document

    doc = Document()
    try:
        assert watch_write_tasks(doc)
        tasks = panel_document._write_tasks[doc]
        assert isinstance(tasks, _RetrievingTasks)
        assert watch_write_tasks(doc)
        assert panel_document._write_tasks[doc] is tasks
    finally:
        panel_document._write_tasks.pop(doc, None)


def test_a_failed_write_task_of_a_watched_document_is_retrieved():
    """A write task Panel schedules fails on a closed socket: seen, not reported."""
    from panel.io import document as panel_document

    kept = KeptRecords()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(kept)
    doc = Document()

    async def closed_socket_write() -> None:
        raise WebSocketClosedError()

    async def schedule() -> None:
        watch_write_tasks(doc)
        panel_document._dispatch_write_task(doc, closed_socket_write)
        for _ in range(5):
            await asyncio.sleep(0.01)

    try:
        run_on_fresh_loop(schedule())
        gc.collect()
    finally:
        asyncio_log.removeHandler(kept)
        panel_document._write_tasks.pop(doc, None)
    assert [r.getMessage() for r in kept.records if "never retrieved" in r.getMessage()] == []
