"""The plumbing of the loopback broker servers: Tornado on 127.0.0.1 (a free port),
run on an event loop thread of its own, driven from the test's thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Self

import tornado.httpserver
import tornado.netutil
import tornado.web


class LoopbackServer:
    """A Tornado app on a free loopback port; subclasses give :meth:`routes`."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._http: tornado.httpserver.HTTPServer | None = None

    def routes(self) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
        """``(pattern, handler)`` of the app; each handler is given ``server=self``."""
        raise NotImplementedError

    def start(self) -> Self:
        """Serve; returns self once the port is bound."""
        self._thread.start()
        self.call(self._start)
        return self

    def _start(self) -> None:
        args = {"server": self}
        app = tornado.web.Application([(path, handler, args) for path, handler in self.routes()])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self._http = tornado.httpserver.HTTPServer(app)
        self._http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]

    def _closing(self) -> None:
        """Runs on the server's loop before it stops listening (close streams here)."""

    def stop(self) -> None:
        """Stop listening, then stop the loop thread."""

        def _stop() -> None:
            self._closing()
            if self._http is not None:
                self._http.stop()

        self.call(_stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the server's loop and return its result."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)
