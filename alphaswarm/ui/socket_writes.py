"""Writes to a browser tab whose socket closed: every failure is seen, nothing is kept.

Panel sends a document patch as several websocket writes (header, metadata,
content, buffers), each returning a future. When the tab closes during such a
message, the first write fails on the broken connection and closes the stream;
the next write then raises at once, and Panel's ``dispatch_tornado`` drops the
futures it had already made. Those futures fail later with nobody awaiting
them: asyncio reports "Task exception was never retrieved ...
WebSocketClosedError" when it collects them, and the report keeps the exception
alive. That exception's traceback reaches, frame by frame, the calls that
started the write (Panel's ``write_events`` and ``unlocked``, the pump's tick),
whose locals hold the tab's Bokeh document: a destroyed session stayed in
memory as long as the report did (for instance in a log handler that keeps its
records).

Two hooks fix this for the kit's own documents, nothing process-wide:

* :func:`watch_connections` wraps the websocket protocol of each connection of a
  served document so that every write future it returns gets
  :func:`retrieve_failure` as a done callback;
* :func:`watch_write_tasks` does the same for the write tasks Panel schedules
  for the document (a message held back while another one was being written is
  sent by such a task, which fails the same way).

:func:`retrieve_failure` marks the failure as retrieved, so it is never reported
and is freed with its task; its frames, and the document they reach, go with it.
"""

from __future__ import annotations

import functools
import logging
import weakref
from typing import TYPE_CHECKING, Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

#: Failures that only say the browser went away (its tab closed, its network dropped).
CLOSED_ERRORS = (WebSocketClosedError, StreamClosedError, ConnectionError)

#: Websocket protocols whose writes are already watched.
_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()


def retrieve_failure(future: asyncio.Future[Any]) -> None:
    """Done callback of a write: retrieve its exception.

    A closed connection is expected (the tab went away) and logged at debug
    level; any other failure is logged as an error, once, here.

    Parameters
    ----------
    future : asyncio.Future
        A finished write (or write task).
    """
    if future.cancelled():
        return
    error = future.exception()
    if error is None:
        return
    if isinstance(error, CLOSED_ERRORS):
        log.debug("write to a closed browser connection dropped: %r", error)
    else:
        log.error("write to a browser connection failed: %r", error)


def _retrieving(write: Callable[..., Any]) -> Callable[..., Any]:
    """``write`` (a protocol's ``write_message``) whose futures retrieve their failure."""

    @functools.wraps(write)
    def write_message(message: Any, binary: bool = False) -> Any:
        future = write(message, binary=binary)
        add_done = getattr(future, "add_done_callback", None)
        if add_done is not None:
            add_done(retrieve_failure)
        return future

    return write_message


def watch_protocol(protocol: Any) -> bool:
    """Make every write future of one websocket protocol retrieve its failure.

    Parameters
    ----------
    protocol : tornado.websocket.WebSocketProtocol
        A handler's ``ws_connection``.

    Returns
    -------
    bool
        True when the protocol was wrapped now, False when it already was.
    """
    if protocol in _WATCHED:
        return False
    protocol.write_message = _retrieving(protocol.write_message)
    _WATCHED.add(protocol)
    return True


def watch_connections(connections: Iterable[Any]) -> int:
    """Watch the writes of every open websocket among Bokeh server ``connections``.

    Parameters
    ----------
    connections : iterable
        ``bokeh.server.connection.ServerConnection`` objects (anything with the
        websocket handler as ``_socket``).

    Returns
    -------
    int
        How many protocols were wrapped by this call.
    """
    wrapped = 0
    for connection in list(connections):
        protocol = getattr(getattr(connection, "_socket", None), "ws_connection", None)
        if protocol is not None and watch_protocol(protocol):
            wrapped += 1
    return wrapped


def document_connections(doc: Any) -> list[Any]:
    """The browser connections of a served document (none outside a server)."""
    context = getattr(doc, "session_context", None)
    session = getattr(context, "_session", None)
    return list(getattr(session, "_subscribed_connections", None) or ())


class _RetrievingTasks(list):
    """Panel's list of a document's write tasks; each task added retrieves its failure."""

    def append(self, task: Any) -> None:
        super().append(task)
        add_done = getattr(task, "add_done_callback", None)
        if add_done is not None:
            add_done(retrieve_failure)


def watch_write_tasks(doc: Any) -> bool:
    """Make the write tasks Panel schedules for ``doc`` retrieve their failure.

    Panel keeps a document's pending write tasks in a list; this replaces that
    list for ``doc`` only. Without that Panel structure (another Panel version)
    nothing changes.

    Parameters
    ----------
    doc : bokeh.document.Document
        A served document.

    Returns
    -------
    bool
        True when the document's tasks are watched.
    """
    try:
        from panel.io import document as panel_document

        tasks = panel_document._write_tasks
        current = tasks.get(doc)
    except (ImportError, AttributeError, TypeError):
        return False
    if isinstance(current, _RetrievingTasks):
        return True
    watched = _RetrievingTasks()
    for task in current or ():
        watched.append(task)
    tasks[doc] = watched
    return True
