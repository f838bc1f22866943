"""The dashboard of a served process, built when a page is first asked for.

The REST API and the kill switch answer without Panel, Bokeh or HoloViews in the
process: a process that only serves the API never imports them (about 1.4 s of
start-up, and some 200,000 objects every full garbage collection walks). The first
request for a dashboard path (:class:`~alphaswarm.server.pages.DashboardPaths`)
builds the Panel application and hands that request, and every later one of the
dashboard, to it on the same port.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import uuid
from typing import TYPE_CHECKING, Any

from alphaswarm.paper import tuning

if TYPE_CHECKING:
    from collections.abc import Callable

    from bokeh.server.server import Server
    from tornado.httputil import HTTPServerRequest
    from tornado.ioloop import IOLoop

log = logging.getLogger(__name__)

__all__ = ["LazyDashboard"]


class LazyDashboard:
    """A Panel/Bokeh application, made on first use, answering requests of another server.

    Parameters
    ----------
    apps : callable
        Returns the ``{route: app}`` mapping for :func:`panel.io.server.get_server`
        (called once, when the dashboard is built).
    url : str
        The public address of the serving server (``http://host:port/``).
    websocket_origins : list of str
        ``host:port`` values a page's socket may come from.
    loop : IOLoop
        The serving server's loop (the dashboard runs its housekeeping there).
    session_options : dict
        Bokeh session settings (``unused_session_lifetime_milliseconds`` ...).
    configure : callable, optional
        Called with the dashboard's Tornado application once it is built (settings
        shared with the serving application: the 404 handler, the access log).
    """

    def __init__(
        self,
        apps: Callable[[], dict[str, Any]],
        url: str,
        websocket_origins: list[str],
        loop: IOLoop,
        session_options: dict[str, Any] | None = None,
        configure: Callable[[Any], None] | None = None,
    ) -> None:
        self._apps = apps
        self._url = url
        self._origins = websocket_origins
        self._loop = loop
        self._options = dict(session_options or {})
        self._server: Server | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._configure = configure
        #: The key of this server in Panel's registry of servers (dropped by close_sessions).
        self._server_id = uuid.uuid4().hex

    @property
    def built(self) -> bool:
        """Whether the dashboard has been built (Panel imported)."""
        return self._server is not None

    def server(self) -> Server:
        """The dashboard's Panel/Bokeh server, built on the first call."""
        with self._lock:
            if self._server is None:
                self._server = self._build()
            return self._server

    def handler(self, request: HTTPServerRequest) -> Any:
        """The dashboard's handler delegate for ``request`` (its own routes decide)."""
        return self.server()._tornado.find_handler(request)

    def _build(self) -> Server:
        from panel.io.server import get_server

        log.info("building the dashboard (first page request)")
        # Panel's get_server installs its own SIGINT handler: the serving process's
        # clean shutdown keeps its own.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if main else None
        try:
            # Bokeh binds a listening socket of its own; this one is closed at once and
            # the dashboard's handlers answer requests of the serving server instead.
            server = get_server(
                self._apps(),
                port=0,
                address="127.0.0.1",
                websocket_origin=self._origins,
                loop=self._loop,
                show=False,
                start=False,
                title="alphaswarm",
                verbose=False,
                server_id=self._server_id,
                **self._options,
            )
        finally:
            if main and previous is not None:
                signal.signal(signal.SIGINT, previous)
        server._http.stop()
        # scripts Bokeh embeds with absolute URLs point at the serving server
        server._tornado._absolute_url = self._url
        if self._configure is not None:
            self._configure(server._tornado)
        # the UI stack's objects live as long as the process: a tuned server freezes them
        tuning.long_lived_made()
        server.start()
        return server

    async def close_sessions(self) -> None:
        """Destroy every browser session, its pump and views, and forget the server.

        For a server stopped inside a process that goes on (tests, notebooks, an
        application embedding it). Bokeh's server keeps its sessions when it stops,
        and Panel keeps the server: each kept page then collected an update it would
        never send every time any callback ran in the process (Panel's busy
        indicator), thousands per minute. Run on the server's loop before it stops.
        """
        server = self._server
        if server is None:
            return
        from panel.io.state import state

        documents = []
        contexts = server._tornado._applications  # Bokeh keeps no public list of them
        for context in list(contexts.values()):
            for session in list(context.sessions):
                documents.append(session.document)
                session_context = session.document.session_context
                if not session.destroyed:
                    session.destroy()
                try:  # Panel's cleanup of the page, and the dashboard's own (its pump)
                    await context.application.on_session_destroyed(session_context)
                except Exception:  # noqa: BLE001 - one page never keeps the others
                    log.exception("closing a dashboard session failed")
        state._servers.pop(self._server_id, None)
        state._server_config.pop(server._tornado, None)
        _drop_session_callbacks(documents)

    def stop(self) -> None:
        """Stop the dashboard's housekeeping (nothing to do when it was never built)."""
        with self._lock:
            if self._server is not None and not self._stopped:
                self._stopped = True
                self._server.stop()


def _drop_session_callbacks(documents: list[Any]) -> None:
    """Forget the callbacks still scheduled on destroyed pages (their loop is stopping).

    Bokeh's document keeps its periodic, timeout and next-tick callbacks when it is
    destroyed, and one scheduled while a page was still being built (a loaded
    machine) stayed on the kept document. Panel also attaches its one process-wide
    clean-up of the busy indicator to whichever page was current when it first ran;
    if that is a page of this server, it is let go, and Panel makes a new one on a
    live page the next time it needs it.
    """
    from panel.io.state import _state

    ids = {id(doc) for doc in documents}
    busy = _state._busy_cleanup_scheduled
    if busy is not None and id(getattr(busy, "_doc", None)) in ids:
        _state._busy_cleanup_scheduled = None
    for doc in documents:
        with contextlib.suppress(AttributeError):  # torn down further already
            doc.callbacks._session_callbacks.clear()
