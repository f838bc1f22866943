"""Every error status of the API: JSON ``{error, detail}``, and nothing changes in the ledger."""

from __future__ import annotations

import pytest

from alphaswarm.server.demo import DEMO_SPEC
from alphaswarm.server.errors import MAX_BODY_BYTES


def counts(ledger) -> dict[str, int]:
    tables = (
        "bots", "bot_versions", "backtest_runs", "paper_trading_runs", "paper_frames",
        "paper_frame_blocks",
    )  # fmt: skip
    return {t: int(ledger.sql(f"SELECT COUNT(*) AS n FROM {t}")["n"][0]) for t in tables}


def assert_error(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) >= {"error", "detail"}
    for word in words:
        assert word in body["detail"], body
    return body


def test_400_neither_json_nor_yaml_names_both_attempts(api, server_ledger):
    before = counts(server_ledger)
    body = assert_error(api.post("/bots", raw="{name: [unclosed"), 400, "JSON", "YAML", "line")
    assert set(body["attempts"]) == {"json", "yaml"}
    assert counts(server_ledger) == before


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ('{"starting_cash": "lots"}', "starting_cash"),
        ('{"speed": true}', "speed"),
        ('{"force": "yes"}', "force"),
        ("[1, 2]", "object"),
        ('"just a string"', "object"),
        (b"\xff\xfe\x00", "UTF-8"),
        ("[" * 100_000, "neither"),
    ],
)
def test_400_wrong_types(api, demo_bot, server_ledger, raw, word):
    before = counts(server_ledger)
    assert_error(api.post(f"/bots/{demo_bot}/paper", raw=raw), 400, word)
    assert counts(server_ledger) == before


def test_400_empty_bot_body_and_bad_query(api):
    assert_error(api.post("/bots", raw=""), 400, "empty")
    assert_error(api.get("/paper?limit=abc"), 400, "limit")


def test_400_yaml_aliases_refused(api):
    assert_error(api.post("/bots", raw="a: &x [1, 2]\nb: *x\n"), 400, "aliases")


@pytest.mark.parametrize(
    "path",
    ["/bots/no-such-bot", "/bots/no-such-bot/versions", "/paper/no-such-run",
     "/paper/no-such-run/fills", "/bots/a/b/c", "/kill-switch/nope", "/nowhere"],
)  # fmt: skip
def test_404_unknown_bot_run_route(api, path):
    r = api.get(path)
    assert_error(r, 404)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/bots/no-such-bot/paper", {"starting_cash": 1000}),
        ("/bots/no-such-bot/backtest", {"bars": 10}),
        ("/bots/no-such-bot/halt", {}),
        ("/paper/no-such-run/stop", {}),
    ],
)
def test_404_on_posts(api, server_ledger, path, body):
    before = counts(server_ledger)
    assert_error(api.post(path, body), 404)
    assert counts(server_ledger) == before


def test_405_is_json(api):
    assert_error(api.get("/paper/stop-all"), 405)


def test_409_gate_refusal_lists_every_failing_rule(api, server_ledger):
    spec = {**DEMO_SPEC, "name": "ungated", "risk": {"max_order_notional": 1000}}
    bot_id = api.post("/bots", spec).json()["bot_id"]
    before = counts(server_ledger)
    body = assert_error(api.post(f"/bots/{bot_id}/paper", {"starting_cash": 1000}), 409)
    assert body["error"] == "gate_refused"
    assert len(body["errors"]) == 2
    assert any("no backtest_runs" in e for e in body["errors"])
    assert any("kill_switch_attached" in e for e in body["errors"])
    assert counts(server_ledger) == before


def test_409_forced_gate_needs_reason_then_starts(api, server_ledger):
    spec = {**DEMO_SPEC, "name": "forced-bot"}
    bot_id = api.post("/bots", spec).json()["bot_id"]
    assert_error(api.post(f"/bots/{bot_id}/paper", {"force": True}), 422, "reason")
    r = api.post(
        f"/bots/{bot_id}/paper",
        {"force": True, "reason": "testing the override", "speed": 0, "max_bars": 3},
    )
    assert r.status_code == 201, r.text
    assert r.json()["gate"]["forced"] is True


def test_409_kill_switch_engaged(api, demo_bot, server_ledger):
    assert api.post("/kill-switch", {"reason": "test"}).status_code == 200
    before = counts(server_ledger)
    body = assert_error(api.post(f"/bots/{demo_bot}/paper", {"starting_cash": 1000}), 409)
    assert body["error"] == "kill_switch_engaged"
    assert counts(server_ledger) == before


def test_413_oversized_body(api, server_ledger):
    before = counts(server_ledger)
    big = '{"name": "' + "x" * (MAX_BODY_BYTES + 10) + '"}'
    assert_error(api.post("/bots", raw=big), 413)
    assert counts(server_ledger) == before


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ('{"starting_cash": -5}', "starting_cash"),
        ('{"starting_cash": 0}', "starting_cash"),
        ('{"starting_cash": NaN}', "finite"),
        ('{"starting_cash": Infinity}', "finite"),
        ('{"speed": -1}', "speed"),
        ('{"duration_minutes": 0}', "duration_minutes"),
        ('{"duration_minutes": -3}', "duration_minutes"),
        ('{"starting_cash": 1000, "leverage": 10}', "leverage"),
    ],
)
def test_422_invalid_values(api, demo_bot, server_ledger, raw, word):
    before = counts(server_ledger)
    assert_error(api.post(f"/bots/{demo_bot}/paper", raw=raw), 422, word)
    assert counts(server_ledger) == before


@pytest.mark.parametrize(
    ("path", "body", "word"),
    [
        ("/bots", {**DEMO_SPEC, "colour": "red"}, "colour"),
        ("/bots", {**DEMO_SPEC, "risk": {"max_order_notional": -1}}, "max_order_notional"),
        ("/bots", {"strategy": "sma_cross"}, "name"),
        ("/kill-switch", {"mode": "explode"}, "mode"),
        ("/kill-switch", {"ttl_seconds": -1}, "ttl_seconds"),
        ("/kill-switch", {"why": "x"}, "why"),
    ],
)
def test_422_invalid_specs_and_kill_switch_bodies(api, server_ledger, path, body, word):
    before = counts(server_ledger)
    assert_error(api.post(path, body), 422, word)
    assert counts(server_ledger) == before
    assert api.get("/kill-switch").json()["engaged"] is False


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"bars": 0}, "bars"),
        ({"bars": 2.5}, "bars"),
        ({"start": "not a date"}, "start"),
        ({"start": "2024-13-01"}, "'2024-13-01'"),
        ({"start": "2024-01-01", "end": "2024-02-30"}, "'2024-02-30'"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "after"),
        ({"bars": 10, "colour": 1}, "colour"),
    ],
)
def test_422_backtest_bodies(api, demo_bot, server_ledger, body, word):
    before = counts(server_ledger)
    assert_error(api.post(f"/bots/{demo_bot}/backtest", body), 422, word)
    assert counts(server_ledger) == before


def test_500_is_json_without_traceback(api, server_ledger, monkeypatch, caplog):
    def boom() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server_ledger, "list_bots", boom)
    body = assert_error(api.get("/bots"), 500)
    assert body["error"] == "internal_error"
    assert "secret internals" not in body["detail"]
    assert "Traceback" not in body["detail"]
