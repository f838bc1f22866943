"""Page addresses: parsing and building them (no browser)."""

from __future__ import annotations

import pytest

from alphaswarm.ui.routes import PAGES, Route, page_path, parse, server_patterns


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/", Route("overview")),
        ("", Route("overview")),
        (None, Route("overview")),
        ("/runs", Route("runs")),
        ("/runs/", Route("runs")),
        ("/runs/pr-1", Route("run", "pr-1")),
        ("/runs/pr-1/", Route("run", "pr-1")),
        ("/runs/pr-1?x=1#y", Route("run", "pr-1")),
        ("/runs/a%20b", Route("run", "a b")),
        ("/nowhere/at/all", Route("overview")),
    ],
)
def test_parse(path, route):
    assert parse(path) == route


@pytest.mark.parametrize("ident", ["pr-1", "a b", "x/y", "ü"])
def test_a_run_address_round_trips(ident):
    path = page_path("run", ident)
    assert path.count("/") == 2
    assert parse(path) == Route("run", ident)


def test_bad_pages_are_refused():
    with pytest.raises(ValueError, match="not one of"):
        page_path("nope")
    with pytest.raises(ValueError, match="needs an id"):
        page_path("run")


def test_every_page_but_the_overview_has_a_server_pattern():
    assert len(server_patterns()) == len(PAGES) - 1
    assert all(p.startswith("/") for p in server_patterns())
