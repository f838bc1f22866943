"""Halt routes: idempotent, 200 with ``{target, halted, failures}`` even with nothing running."""

from __future__ import annotations

import pytest

from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.server.demo import DEMO_SPEC

from .conftest import running_session, wait_until

HALT_ROUTES = {
    "/bots/halt-all": "bots",
    "/paper/stop-all": "paper",
    "/agents/halt": "agents",
    "/rl/halt-all": "rl",
    "/workflows/halt": "workflows",
    "/terraform/halt": "terraform",
    "/quant-agents/halt": "quant-agents",
}


def status(api, run_id: str) -> str:
    return api.get(f"/paper/{run_id}").json()["status"]


@pytest.fixture
def second_bot(api) -> str:
    bot_id = api.post("/bots", {**DEMO_SPEC, "name": "sma-demo-two"}).json()["bot_id"]
    assert api.post(f"/bots/{bot_id}/backtest", {"bars": 7800}).status_code == 201
    return bot_id


@pytest.mark.parametrize("path", list(HALT_ROUTES))
def test_halt_routes_with_nothing_running_are_idempotent(api, path):
    for _ in range(2):
        r = api.post(path)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["target"] == HALT_ROUTES[path]
        assert body["halted"] == 0
        assert body["failures"] == []
    assert api.get("/kill-switch").json()["engaged"] is False


def test_bots_halt_all_alone_stops_every_bot(api, demo_bot, second_bot):
    with (
        running_session(api, demo_bot) as a,
        running_session(api, demo_bot, speed=1) as b,
        running_session(api, second_bot) as c,
    ):
        r = api.post("/bots/halt-all")
        assert r.status_code == 200
        assert r.json()["halted"] == 3
        assert {status(api, x) for x in (a, b, c)} == {"killed"}
    assert api.post("/bots/halt-all").json()["halted"] == 0
    assert api.get("/kill-switch").json()["engaged"] is False  # a halt, not a latch


def test_paper_stop_all(api, demo_bot, second_bot):
    with running_session(api, demo_bot) as a, running_session(api, second_bot) as b:
        r = api.post("/paper/stop-all", {"reason": "lunch"})
        assert r.json()["halted"] == 2
        runs = [api.get(f"/paper/{x}").json() for x in (a, b)]
        assert {run["status"] for run in runs} == {"stopped"}
        assert {run["stop_reason"] for run in runs} == {"lunch"}


def test_stop_one_run_twice(api, demo_bot):
    with running_session(api, demo_bot) as run_id:
        first = api.post(f"/paper/{run_id}/stop")
        second = api.post(f"/paper/{run_id}/stop")
    assert first.json() == {
        "paper_run_id": run_id,
        "stopped": True,
        "status": "stopped",
        "final_row_written": True,
    }
    assert second.status_code == 200 and second.json()["stopped"] is False


def test_bot_halt_stops_that_bot_only_and_latches_it(api, demo_bot, second_bot):
    with running_session(api, demo_bot) as a, running_session(api, second_bot) as b:
        r = api.post(f"/bots/{demo_bot}/halt", {"reason": "misbehaving"})
        assert r.status_code == 200, r.text
        assert r.json()["target"] == f"bot:{demo_bot}"
        assert r.json()["halted"] == 1
        assert status(api, a) == "stopped"
        assert status(api, b) == "running"
    refused = api.post(f"/bots/{demo_bot}/paper", {})
    assert refused.status_code == 409 and refused.json()["error"] == "kill_switch_engaged"
    assert api.post(f"/bots/{demo_bot}/halt").json()["halted"] == 0  # idempotent
    assert demo_bot in api.get("/kill-switch").json()["halted_bots"]
    assert api.post("/kill-switch/reset", {"bot": demo_bot}).status_code == 200
    with running_session(api, demo_bot):
        pass


def test_failing_extension_target_is_listed_not_a_5xx(api):
    def broken(reason: str, mode: str) -> int:
        raise RuntimeError("agent runner unreachable")

    def three(reason: str, mode: str) -> int:
        return 3

    ks = kill_switch()
    ks.register("agents", broken)
    ks.register("agents", three)
    try:
        r = api.post("/agents/halt")
        assert r.status_code == 200
        body = r.json()
        assert body["halted"] == 3
        assert len(body["failures"]) == 1 and "unreachable" in body["failures"][0]
        r = api.post("/kill-switch")
        assert r.status_code == 200
        assert r.json()["targets"]["agents"] == {"halted": 3, "failures": body["failures"]}
    finally:
        ks.unregister("agents")


def test_kill_switch_state_engage_reset_idempotent(api, demo_bot):
    state = api.get("/kill-switch").json()
    assert {"engaged", "mode", "reason", "engaged_at", "last"} <= set(state)
    assert state["engaged"] is False
    with running_session(api, demo_bot) as run_id:
        first = api.post("/kill-switch", {"reason": "drill", "mode": "cancel"}).json()
        second = api.post("/kill-switch", {"reason": "drill"}).json()
        assert status(api, run_id) == "killed"
    assert first["targets"]["paper"]["halted"] == 1 and second["targets"]["paper"]["halted"] == 0
    assert first["elapsed_ms"] >= 0 and first["failures"] == []
    assert first["final_rows_committed_ms"] <= first["elapsed_ms"]
    assert 0 <= first["request_to_engage_ms"] < 60_000
    state = api.get("/kill-switch").json()
    assert state["engaged"] is True and state["reason"] == "drill" and state["engaged_at"]
    assert set(state["last"]) >= {"targets", "failures", "elapsed_ms"}
    for _ in range(2):
        r = api.post("/kill-switch/reset")
        assert r.status_code == 200 and r.json()["engaged"] is False


def test_kill_switch_ttl_and_freeze(api, demo_bot):
    with running_session(api, demo_bot) as run_id:
        r = api.post("/kill-switch", {"mode": "freeze", "ttl_seconds": 0.5})
        assert r.status_code == 200
        assert status(api, run_id) == "running"  # freeze keeps sessions up
        wait_until(lambda: api.get("/kill-switch").json()["engaged"] is False, timeout=30)
