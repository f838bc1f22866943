"""Request bodies are declared once: ``/openapi.json`` states exactly what the handlers enforce.

For every route with a body, every bounded field of its schema in ``/openapi.json`` is
probed on a real server: the value just past the bound is refused with a 4xx JSON that
names the field, the value at (or just inside) the bound is accepted.
"""

from __future__ import annotations

from typing import Any

import pytest

from alphaswarm.schema import json_schema
from alphaswarm.server.requests import REQUEST_MODELS

#: Path parameters: ids nobody created, so a body that passes validation ends in a 404
#: (the kill-switch routes have none: an accepted body engages or resets it, and the
#: fixture releases it again).
NO_BOT, NO_RUN = "no-such-bot", "no-such-run"


def _bodies(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(path, component name, schema)`` of every POST route with a body."""
    out = []
    for path, item in doc["paths"].items():
        op = item.get("post") or {}
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        ref = schema.get("schema", {}).get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            out.append((path, name, doc["components"]["schemas"][name]))
    return out


def _probes(prop: dict[str, Any]) -> list[tuple[Any, Any]]:
    """``(just past, just inside)`` pairs for each bound ``prop`` states."""
    integer = prop.get("type") == "integer"
    step = 1 if integer else 1e-3
    pairs = []
    if "maximum" in prop:
        high = prop["maximum"]
        past = high + 1 if integer else high + max(1.0, abs(high) * 1e-9)
        pairs.append((past, high - step if prop.get("exclusiveMaximum") else high))
    if "minimum" in prop:
        low = prop["minimum"]
        if prop.get("exclusiveMinimum"):
            pairs.append((low, low + step))
        else:
            pairs.append((low - step, low))
    if "maxLength" in prop:
        pairs.append(("x" * (prop["maxLength"] + 1), "x" * prop["maxLength"]))
    if prop.get("minLength"):
        pairs.append(("", "x" * prop["minLength"]))
    return pairs


def test_published_request_schemas_are_the_declared_models(api):
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    for name, model in REQUEST_MODELS.items():
        assert schemas[name] == json_schema(model), name


def test_every_route_body_is_a_declared_model(api):
    doc = api.get("/openapi.json").json()
    bodies = _bodies(doc)
    assert {name for _, name, _ in bodies} - {"BotSpec"} == set(REQUEST_MODELS)
    posts = [p for p, item in doc["paths"].items() if "requestBody" in item.get("post", {})]
    assert sorted(posts) == sorted(p for p, _, _ in bodies)


@pytest.mark.parametrize(
    ("name", "field", "bound"),
    [
        ("BacktestRequest", "starting_cash", 1e15),
        ("PaperRequest", "starting_cash", 1e15),
        ("PaperRequest", "duration_minutes", 10 * 365 * 1440),
        ("PaperRequest", "max_bars", 10**9),
        ("PaperRequest", "speed", 1e6),
        ("KillSwitchEngage", "ttl_seconds", 365 * 86400),
    ],
)
def test_bounds_that_were_enforced_but_unpublished_are_published(api, name, field, bound):
    prop = api.get("/openapi.json").json()["components"]["schemas"][name]["properties"][field]
    assert prop["maximum"] == bound


def test_each_published_bound_is_the_bound_the_handler_enforces(api):
    doc = api.get("/openapi.json").json()
    checked = 0
    for path, name, schema in _bodies(doc):
        if name == "BotSpec":
            continue
        url = path.replace("{bot_id}", NO_BOT).replace("{paper_run_id}", NO_RUN)
        for field, prop in schema["properties"].items():
            for past, inside in _probes(prop):
                r = api.post(url, {field: past})
                assert r.status_code in (400, 422), (path, field, past, r.status_code, r.text)
                body = r.json()
                assert field in body["fields"], (path, field, body)
                assert field in body["detail"], (path, field, body)
                r = api.post(url, {field: inside})
                assert r.status_code < 400 or r.status_code == 404, (
                    path,
                    field,
                    inside,
                    r.status_code,
                    r.text[:300],
                )
                api.post("/kill-switch/reset")
                checked += 1
    assert checked >= 20


def test_unknown_body_keys_all_named_with_suggestions(api):
    r = api.post(f"/bots/{NO_BOT}/paper", {"starting_csh": 1, "max_bar": 5, "zzz": 1})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["unknown"] == {"starting_csh": "starting_cash", "max_bar": "max_bars", "zzz": None}
    assert "'starting_csh' (did you mean 'starting_cash'?)" in body["detail"]
    assert "'max_bar' (did you mean 'max_bars'?)" in body["detail"]


def test_several_bad_values_named_together(api):
    r = api.post(f"/bots/{NO_BOT}/paper", {"starting_cash": -1, "max_bars": 0})
    assert r.status_code == 422, r.text
    assert set(r.json()["fields"]) == {"starting_cash", "max_bars"}


def test_a_wrong_type_is_a_400_naming_the_field(api):
    r = api.post(f"/bots/{NO_BOT}/backtest", {"bars": "many"})
    assert r.status_code == 400, r.text
    assert r.json()["fields"] == {"bars": "bars: expected a number, got str 'many'"}


def test_bot_spec_unknown_keys_listed_over_http(api):
    spec = {"name": "typo-bot", "strategy": "sma_cross", "stratgy": "x", "gate": {"min_sharp": 1}}
    r = api.post("/bots", spec)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["unknown"] == {"stratgy": "strategy", "gate.min_sharp": "min_sharpe"}
    assert "did you mean 'strategy'?" in body["detail"]
    assert "gate: unknown key(s) 'min_sharp' (did you mean 'min_sharpe'?)" in body["detail"]


# --------------------------------------------------------------------------- responses


def _conforms(model: type, body: dict[str, Any]) -> list[str]:
    """What is wrong with a real response body against its declared model."""
    from alphaswarm.schema import validate

    return [p.message for p in validate(model, body)[1]]


def test_published_response_schemas_are_the_declared_models(api):
    from alphaswarm.server.responses import RESPONSE_MODELS

    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    for name, model in RESPONSE_MODELS.items():
        assert schemas[name] == json_schema(model), name


def test_real_responses_match_their_declared_models(api, demo_bot):
    from alphaswarm.server import responses as r

    from .conftest import running_session

    created = api.post("/bots", {"name": "schema-bot", "strategy": "sma_cross"})
    assert _conforms(r.BotCreated, created.json()) == []
    refused = api.post(f"/bots/{created.json()['bot_id']}/paper", {})
    assert refused.status_code == 409 and refused.json()["error"] == "gate_refused", refused.text
    assert _conforms(r.GateRefused, refused.json()) == []
    backtest = api.post(f"/bots/{demo_bot}/backtest", {"bars": 500})
    assert backtest.status_code == 201, backtest.text
    assert _conforms(r.BacktestResult, backtest.json()) == []
    assert _conforms(r.KillSwitchState, api.get("/kill-switch").json()) == []
    with running_session(api, demo_bot) as run_id:
        run = api.get(f"/paper/{run_id}").json()
        assert _conforms(r.Run, run) == []
        stopped = api.post(f"/paper/{run_id}/stop", {"reason": "schema test"}).json()
        assert _conforms(r.Stopped, stopped) == []
    started = api.post(f"/bots/{demo_bot}/paper", {"speed": 600})
    assert started.status_code == 201, started.text
    assert _conforms(r.PaperStarted, started.json()) == []
    halted = api.post(f"/bots/{demo_bot}/halt", {"reason": "schema test"}).json()
    assert _conforms(r.Halted, halted) == []
    bot = api.get(f"/bots/{demo_bot}").json()
    assert _conforms(r.Bot, bot) == []
    assert _conforms(r.BacktestRef, bot["backtest_runs"]) == []
    bots = api.get("/bots").json()
    assert _conforms(r.BotList, bots) == []
    assert all(_conforms(r.Bot, b) == [] for b in bots["bots"])
    assert _conforms(r.BotVersions, api.get(f"/bots/{demo_bot}/versions").json()) == []
    runs = api.get("/paper").json()
    assert _conforms(r.RunList, runs) == [] and runs["runs"]
    assert all(_conforms(r.Run, run) == [] for run in runs["runs"])
    fills = api.get(f"/paper/{run_id}/fills").json()
    assert _conforms(r.Fills, fills) == []
    assert all(_conforms(r.Fill, f) == [] for f in fills["fills"])
    assert _conforms(r.Error, api.get("/bots/no-such-bot").json()) == []
    engaged = api.post("/kill-switch", {"reason": "schema test"}).json()
    assert _conforms(r.KillSwitchEngaged, engaged) == []
    assert _conforms(r.KillSwitchState, engaged["state"]) == []


def test_a_response_missing_a_declared_key_is_caught():
    from alphaswarm.server.responses import Halted

    assert _conforms(Halted, {"target": "x", "halted": "two", "failures": []}) == [
        "halted: expected a number, got str 'two'"
    ]
    assert _conforms(Halted, {"target": "x", "failures": []}) == ["halted: required"]
