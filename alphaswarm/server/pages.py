"""The dashboard's page addresses on the server, beside the REST routes.

Every page address of :mod:`alphaswarm.ui.routes` is served by the dashboard
application. ``/bots`` and ``/bots/<id>`` are REST routes too: a browser's page
load there (a ``GET`` whose ``Accept`` header asks for ``text/html`` before JSON)
is handed to the dashboard, every other request to the API (whichever of the two
the router would have picked first).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tornado.web import RequestHandler

from alphaswarm.ui.routes import negotiated_patterns, server_patterns

if TYPE_CHECKING:
    from collections.abc import Callable

    from bokeh.server.server import Server
    from tornado.httputil import HTTPServerRequest


def page_apps(app: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """The application routes for ``get_server``: ``/`` and every page address."""
    return {"/": app, **dict.fromkeys(server_patterns(), app)}


class _TrailingSlashHandler(RequestHandler):
    """``GET /runs/<id>/``: redirect to the page's one address, ``/runs/<id>``."""

    def get(self, path: str) -> None:
        """Redirect, keeping the query."""
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(f"/{path}{query}", permanent=True)


def _trailing_slash_patterns() -> list[re.Pattern[str]]:
    return [re.compile(f"^/({pattern.lstrip('/')})/+$") for pattern in server_patterns()]


def wants_html(request: HTTPServerRequest) -> bool:
    """Whether a request is a browser's page load (``text/html`` asked for before JSON)."""
    if request.method not in ("GET", "HEAD"):
        return False
    accept = request.headers.get("Accept", "")
    kinds = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    if "text/html" not in kinds:
        return False
    if "application/json" in kinds:
        return kinds.index("text/html") < kinds.index("application/json")
    return True


def negotiate_pages(server: Server) -> None:
    """Send page addresses to the dashboard: one address per page, browsers' page loads.

    A page address with a trailing slash is redirected to the address without one
    (the page's resources resolve relative to its address). A browser's page load of
    an address that is also a REST route is handed to the dashboard. Wraps the
    application's handler lookup; call it before anything that wraps the lookup to
    guard it (the token check), so the guard still runs first.
    """
    from bokeh.server.views.doc_handler import DocHandler

    app = server._tornado
    find_handler = app.find_handler
    patterns = negotiated_patterns()
    slashed = _trailing_slash_patterns()

    def is_page(rule: Any) -> bool:
        return isinstance(rule.target, type) and issubclass(rule.target, DocHandler)

    pages = [rule for rule in app.wildcard_router.rules if is_page(rule)]
    others = [rule for rule in app.wildcard_router.rules if not is_page(rule)]

    def delegate(request: HTTPServerRequest, rules: list[Any]) -> Any:
        for rule in rules:
            match = rule.matcher.match(request)
            if match is not None:
                return app.get_handler_delegate(
                    request,
                    rule.target,
                    rule.target_kwargs,
                    match.get("path_args"),
                    match.get("path_kwargs"),
                )
        return None

    def negotiated(request: HTTPServerRequest, **kwargs: Any) -> Any:
        path = request.path
        for pattern in slashed:
            match = pattern.match(path)
            if match is not None:
                return app.get_handler_delegate(request, _TrailingSlashHandler, {}, [match[1]])
        if any(p.match(path) for p in patterns):
            # a browser's page load gets the page; every other request the REST route
            handler = delegate(request, pages if wants_html(request) else others)
            if handler is not None:
                return handler
        return find_handler(request, **kwargs)

    app.find_handler = negotiated
