"""``GET /openapi.json`` describes every route the server has."""

from __future__ import annotations

import re

from alphaswarm.server.app import make_routes


def to_openapi(pattern: str) -> str:
    names = iter(["{bot_id}", "{paper_run_id}"] * 2)
    path = pattern
    if "/bots/" in pattern:
        path = path.replace("([^/]+)", "{bot_id}")
    if "/paper/" in pattern:
        path = path.replace("([^/]+)", "{paper_run_id}", 1)
        path = path.replace("([^/]+)", "{order_id}")
    assert "(" not in path or next(names)
    return path


def test_openapi_covers_every_route(api):
    r = api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.0")
    described = set(doc["paths"])
    routes = [p for p, _, _ in make_routes() if "?:" not in p]
    for pattern in routes:
        assert to_openapi(pattern) in described, pattern
    assert len(described) == len(routes)


def test_openapi_refs_resolve(api):
    doc = api.get("/openapi.json").json()
    text = api.get("/openapi.json").text
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in doc["components"]["schemas"], ref
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"], (path, method)
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path
