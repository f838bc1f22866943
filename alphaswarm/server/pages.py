"""Which requests the dashboard answers, decided without importing it.

Every page address of :mod:`alphaswarm.ui.routes` (a module without Panel) is a
dashboard page; so are the resources Bokeh serves beside each page (``ws``,
``metadata``, ``autoload.js``, ``static/...``) and the server-wide ones
(``/static/...``, ``/components/...``, ``/favicon.ico``). ``/bots`` and
``/bots/<id>`` are REST routes too: a browser's page load there (a ``GET`` whose
``Accept`` header asks for ``text/html`` before JSON) goes to the dashboard, every
other request to the API. A page address with a trailing slash is redirected to
the address without one (the page's resources resolve relative to its address).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tornado.web import RequestHandler

from alphaswarm.ui.routes import negotiated_patterns, server_patterns

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest

__all__ = ["DashboardPaths", "TrailingSlashHandler", "wants_html"]

#: What Bokeh serves beside every page (the page's socket, metadata, scripts, files).
_PAGE_RESOURCES = r"(?:ws|metadata|autoload\.js|static/.*)"
#: What the Panel/Bokeh server serves once for all pages.
_SERVER_RESOURCES = (r"^/static/.*$", r"^/components/.*$", r"^/favicon\.ico$")


class TrailingSlashHandler(RequestHandler):
    """``GET /runs/<id>/``: redirect to the page's one address, ``/runs/<id>``."""

    def get(self, path: str) -> None:
        """Redirect, keeping the query."""
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(f"/{path}{query}", permanent=True)


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


class DashboardPaths:
    """The paths the dashboard answers; only ``/`` when ``pages`` is False.

    Parameters
    ----------
    pages : bool
        Every page of the dashboard (True) or the single page at ``/`` (False).
    """

    def __init__(self, pages: bool = True) -> None:
        patterns = server_patterns() if pages else []
        self._pages = [re.compile(f"^{p}$") for p in patterns if not _negotiated(p)]
        self._negotiated = negotiated_patterns() if pages else []
        prefixes = "|".join(p for p in patterns)
        own = rf"^(?:{prefixes})?/{_PAGE_RESOURCES}$" if prefixes else rf"^/{_PAGE_RESOURCES}$"
        self._resources = [re.compile(own), *map(re.compile, _SERVER_RESOURCES)]
        self._slashed = [re.compile(f"^/({p.lstrip('/')})/+$") for p in patterns]

    def redirect(self, path: str) -> str | None:
        """The address without a trailing slash when ``path`` is a page's with one."""
        for pattern in self._slashed:
            match = pattern.match(path)
            if match is not None:
                return match[1]
        return None

    def answers(self, request: HTTPServerRequest) -> bool:
        """Whether the dashboard answers ``request`` (a REST route answers it otherwise)."""
        path = request.path
        if path == "/" or any(p.match(path) for p in self._resources):
            return True
        if any(p.match(path) for p in self._pages):
            return True
        return wants_html(request) and any(p.match(path) for p in self._negotiated)


def _negotiated(pattern: str) -> bool:
    return any(p.match(pattern.replace("[^/]+", "x")) for p in negotiated_patterns())
