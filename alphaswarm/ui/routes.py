"""The dashboard's page addresses: which page a path names, and the path of a page.

Every page of the dashboard has an address a user can bookmark, reload or share:

=====================  ===========================================================
``/``                  overview: every paper run, the kill switch, every bot
``/runs``              the same overview
``/runs/<run id>``     the overview with that run open
``/bots``              every registered bot; register one from YAML
``/bots/<bot id>``     one bot: spec, versions, backtests, paper runs, paper gate
``/backtests/<id>``    one backtest's result (re-run from its stored config)
``/sweeps``            every parameter sweep
``/sweeps/<name>``     one sweep: trials, best trial, overfitting report, heatmap
=====================  ===========================================================

A page whose address is also a REST route (listed in :data:`NEGOTIATED`) is served
to a browser's page load (which asks for ``text/html`` first); every other client
gets the JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

#: Pages and their path templates (``{id}`` is one path segment).
PAGES: dict[str, str] = {
    "overview": "/",
    "runs": "/runs",
    "run": "/runs/{id}",
    "bots": "/bots",
    "bot": "/bots/{id}",
    "backtest": "/backtests/{id}",
    "sweeps": "/sweeps",
    "sweep": "/sweeps/{id}",
}
#: Pages that share their address with a REST route (served to browsers only).
NEGOTIATED: tuple[str, ...] = ("bots", "bot")

_SEGMENT = r"[^/]+"


def _pattern(template: str) -> str:
    return template.replace("{id}", _SEGMENT)


_MATCHERS = [
    (page, re.compile("^" + _pattern(template) + "/?$")) for page, template in PAGES.items()
]


@dataclass(frozen=True)
class Route:
    """A page and the id it shows (``""`` for pages without one)."""

    page: str
    ident: str = ""

    @property
    def path(self) -> str:
        """The address of this page."""
        return page_path(self.page, self.ident)


def parse(path: str | None) -> Route:
    """The page a path names; the overview for ``None``, ``""`` or an unknown path.

    Examples
    --------
    >>> parse("/runs/pr-1a2b")
    Route(page='run', ident='pr-1a2b')
    >>> parse("/runs/")
    Route(page='runs', ident='')
    """
    path = (path or "/").split("?", 1)[0].split("#", 1)[0] or "/"
    for page, matcher in _MATCHERS:
        if matcher.match(path):
            tail = path.rstrip("/").rsplit("/", 1)[-1] if "{id}" in PAGES[page] else ""
            return Route(page, unquote(tail))
    return Route("overview")


def page_path(page: str, ident: str = "") -> str:
    """The address of ``page`` (showing ``ident`` where the page takes one).

    Raises
    ------
    ValueError
        For an unknown page, or a page that needs an id without one.
    """
    if page not in PAGES:
        raise ValueError(f"page: {page!r} is not one of {', '.join(PAGES)}")
    template = PAGES[page]
    if "{id}" in template:
        if not ident:
            raise ValueError(f"page {page!r} needs an id")
        return template.replace("{id}", quote(ident, safe=""))
    return template


def server_patterns() -> list[str]:
    """Tornado path patterns of every page but the overview (``/``), for the app routes."""
    return [_pattern(t) for page, t in PAGES.items() if page != "overview"]


def negotiated_patterns() -> list[re.Pattern[str]]:
    """Compiled patterns of the pages whose address is also a REST route."""
    return [re.compile("^" + _pattern(PAGES[p]) + "/?$") for p in NEGOTIATED]
