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


# --------------------------------------------------------------------------- bounds
# The bounds the handlers enforce are the declared request models' (tests/server/test_schemas.py
# probes each one against the server).


def test_one_past_every_documented_maximum_is_a_422(api, demo_bot):
    doc = api.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    checked = 0
    for path, item in doc["paths"].items():
        op = item.get("post")
        if not op or "requestBody" not in op:
            continue
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        url = path.replace("{bot_id}", demo_bot).replace("{paper_run_id}", "no-such-run")
        for name, prop in (schema.get("properties") or {}).items():
            if "maximum" in prop:
                over = prop["maximum"] + (1 if prop.get("type") == "integer" else prop["maximum"])
            elif "maxLength" in prop:
                over = "x" * (prop["maxLength"] + 1)
            else:
                continue
            r = api.post(url, {name: over})
            assert r.status_code == 422, (path, name, r.status_code, r.text[:200])
            checked += 1
    for name, param in (("limit", "/paper"),):
        spec = next(p for p in doc["paths"][param]["get"]["parameters"] if p["name"] == name)
        r = api.get(f"{param}?{name}={spec['schema']['maximum'] + 1}")
        assert r.status_code == 422
    assert checked >= 10
    assert api.get("/kill-switch").json()["engaged"] is False
