"""``POST /bots/{id}/paper`` with ``backtest_id``: the gate judges the backtest the user chose."""

from __future__ import annotations

from alphaswarm.server.demo import DEMO_SPEC


def test_paper_start_judges_the_chosen_backtest(api):
    r = api.post("/bots", {**DEMO_SPEC, "name": "gate-choice"})
    assert r.status_code in (200, 201), r.text
    bot_id = r.json()["bot_id"]
    good = api.post(f"/bots/{bot_id}/backtest", {"bars": 7800}).json()
    short = api.post(f"/bots/{bot_id}/backtest", {"bars": 60}).json()
    assert good["bot_version"] == short["bot_version"]

    refused = api.post(f"/bots/{bot_id}/paper", {"speed": 0, "max_bars": 5})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "gate_refused"
    judged = body["gate"]["judged"]
    assert judged["id"] == short["id"] and judged["bars"] == 60
    assert {"start_ts", "end_ts", "num_trades", "text"} <= set(judged)
    assert any("min_bars 100" in e for e in body["errors"])
    assert f"judged backtest {short['id']}" in body["detail"]

    started = api.post(
        f"/bots/{bot_id}/paper", {"speed": 0, "max_bars": 5, "backtest_id": good["id"]}
    )
    assert started.status_code == 201, started.text
    assert started.json()["gate"]["judged"]["id"] == good["id"]


def test_backtest_id_must_be_a_non_empty_string(api, demo_bot):
    r = api.post(f"/bots/{demo_bot}/paper", {"backtest_id": 7})
    assert r.status_code == 400 and "backtest_id: expected a string" in r.json()["detail"]
    r = api.post(f"/bots/{demo_bot}/paper", {"backtest_id": " "})
    assert r.status_code == 422 and "backtest_id" in r.json()["detail"]
    r = api.post(f"/bots/{demo_bot}/paper", {"backtest_id": "bt-unknown", "speed": 0})
    assert r.status_code == 409 and r.json()["errors"] == [
        "backtest_id: no backtest_runs row 'bt-unknown'"
    ]
