"""Every bot id is addressable at ``/bots/<id>`` on the real server.

``/bots/ws``, ``/bots/metadata`` and ``/bots/static/...`` are the ``/bots`` page's
Bokeh routes and ``/bots/halt-all`` an API route: a bot whose name slugs to one of
them gets the next free id (``ws-2``), which its API routes answer.
"""

from __future__ import annotations

import re

import pytest

from alphaswarm.ledger.bots import RESERVED_BOT_IDS
from alphaswarm.server.demo import DEMO_SPEC

JSON = {"Accept": "application/json"}


@pytest.mark.parametrize("name", ["ws", "metadata", "static", "halt-all", "WS"])
def test_a_bot_named_like_a_route_is_addressable(api, name):
    created = api.post("/bots", {**DEMO_SPEC, "name": name})
    assert created.status_code in (200, 201), created.text
    bot_id = created.json()["bot_id"]
    for suffix in ("", "/versions"):
        got = api.get(f"/bots/{bot_id}{suffix}", headers=JSON)
        assert got.status_code == 200, (suffix, got.status_code, got.text[:200])
        assert got.headers["Content-Type"].startswith("application/json")
        body = got.json()
        assert body.get("id", body.get("bot_id")) == bot_id
    assert bot_id not in RESERVED_BOT_IDS


def test_the_reserved_ids_are_every_route_under_bots(server, api):
    """The server's own routes ``/bots/<literal>...``: each literal is a reserved id."""
    page = api.get("/bots", headers={"Accept": "text/html"})  # builds the dashboard
    assert page.status_code == 200, page.text[:200]
    served = server.server
    dashboard = served.dashboard.server()._tornado
    rules = [*dashboard.wildcard_router.rules, *served.app.wildcard_router.rules]
    patterns = [getattr(rule.matcher, "regex", None) for rule in rules]
    literals = set()
    for regex in filter(None, patterns):
        match = re.match(r"^/bots/([a-z0-9][a-z0-9.-]*)(?:[/$?]|$)", regex.pattern)
        if match:
            literals.add(match.group(1))
    # ``autoload.js`` has a dot: no slug has one, so no bot id can be it
    addressable_clash = {lit for lit in literals if re.fullmatch(r"[a-z0-9-]+", lit)}
    assert addressable_clash, literals  # the route table was read
    assert addressable_clash <= RESERVED_BOT_IDS, addressable_clash - RESERVED_BOT_IDS
