"""``WS /ws/paper/{id}``: live frames, ``?since=`` resume without gap or duplicate, closes."""

from __future__ import annotations

import json

import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

from .conftest import running_session, wait_until


def read_until_closed(ws, limit: int = 100_000) -> tuple[list[dict], int | None]:
    frames: list[dict] = []
    try:
        while len(frames) < limit:
            frames.append(json.loads(ws.recv(timeout=15)))
    except ConnectionClosed as exc:
        return frames, exc.rcvd.code if exc.rcvd else None
    return frames, None


def assert_contiguous(seqs: list[int], start: int) -> None:
    assert seqs == list(range(start, start + len(seqs))), seqs


def test_since_resume_has_no_gap_and_no_duplicate(api, demo_bot):
    with running_session(api, demo_bot, speed=1200) as run_id:
        url = f"{api.ws_url}/ws/paper/{run_id}"
        seen: list[dict] = []
        with ws_client.connect(url + "?since=0", open_timeout=5) as ws:
            while len(seen) < 15:
                seen.append(json.loads(ws.recv(timeout=10)))
        assert seen[0]["seq"] == 1 and seen[0]["stage"] == "metadata_gate"
        last = seen[-1]["seq"]
        # the run goes on while nobody listens; resume from the last seq received
        wait_until(lambda: api.get(f"/paper/{run_id}").json()["bars_seen"] > 25)
        with ws_client.connect(f"{url}?since={last}", open_timeout=5) as ws:
            for _ in range(40):
                seen.append(json.loads(ws.recv(timeout=10)))
            assert api.post(f"/paper/{run_id}/stop", {}).json()["stopped"] is True
            rest, code = read_until_closed(ws)
        seen.extend(rest)
        assert code == 1000
        assert_contiguous([f["seq"] for f in seen], 1)
        assert seen[-1]["stage"] == "done"
        assert seen[-1]["result"]["status"] == "stopped"
        stored = api.get(f"/paper/{run_id}").json()
        assert stored["status"] == "stopped"
        assert seen[-1]["result"]["num_fills"] == stored["num_fills"]


def test_finished_run_replays_from_the_ledger_then_closes(api, demo_bot):
    r = api.post(f"/bots/{demo_bot}/paper", {"speed": 0, "max_bars": 60})
    run_id = r.json()["paper_run_id"]
    wait_until(lambda: api.get(f"/paper/{run_id}").json()["status"] == "completed")
    url = f"{api.ws_url}/ws/paper/{run_id}"
    with ws_client.connect(url, open_timeout=5) as ws:
        frames, code = read_until_closed(ws)
    assert code == 1000
    assert_contiguous([f["seq"] for f in frames], 1)
    assert frames[-1]["stage"] == "done"
    assert {"bar.received", "order.filled", "session.stopped"} <= {f["stage"] for f in frames}
    with ws_client.connect(f"{url}?since=10", open_timeout=5) as ws:
        tail, code = read_until_closed(ws)
    assert code == 1000
    assert tail == frames[10:]


def test_live_without_since_streams_from_now_until_done(api, demo_bot):
    with running_session(api, demo_bot, speed=1200, duration_minutes=40) as run_id:
        with ws_client.connect(f"{api.ws_url}/ws/paper/{run_id}", open_timeout=5) as ws:
            frames, code = read_until_closed(ws)
    assert code == 1000
    assert frames and frames[-1]["stage"] == "done"
    assert_contiguous([f["seq"] for f in frames], frames[0]["seq"])


def test_unknown_run_gets_error_frame_and_4404(api):
    with ws_client.connect(f"{api.ws_url}/ws/paper/paper-nope", open_timeout=5) as ws:
        frames, code = read_until_closed(ws)
    assert code == 4404
    assert frames[0]["stage"] == "error"
    assert "paper-nope" in frames[0]["message"]
    assert frames[0]["task_id"] == "paper-nope"


def test_bad_since_gets_error_frame(api, demo_bot):
    with running_session(api, demo_bot) as run_id:
        url = f"{api.ws_url}/ws/paper/{run_id}?since=-4"
        with ws_client.connect(url, open_timeout=5) as ws:
            frames, code = read_until_closed(ws)
    assert code == 4400
    assert frames[0]["stage"] == "error" and "since" in frames[0]["message"]


def test_many_clients_get_the_same_frames(api, demo_bot):
    with running_session(api, demo_bot, speed=0, max_bars=200) as run_id:
        url = f"{api.ws_url}/ws/paper/{run_id}?since=0"
        results = []
        for _ in range(3):
            with ws_client.connect(url, open_timeout=5) as ws:
                results.append(read_until_closed(ws))
    assert all(code == 1000 for _, code in results)
    assert results[0][0] == results[1][0] == results[2][0]


def test_a_followed_run_that_ends_before_its_done_frame_still_sends_done(api, server_ledger):
    """A run of another process (only in the ledger): its final row may be committed
    before its last frames, as the kill switch does; the follower still sends ``done``."""
    from alphaswarm.frames import make_frame
    from alphaswarm.server.demo import DEMO_SPEC

    bot_id = api.post("/bots", DEMO_SPEC).json()["bot_id"]
    run_id = "paper-elsewhere-1"
    server_ledger.create_paper_run({"id": run_id, "bot_id": bot_id, "owner": "another-process"})
    first = make_frame(run_id, "metadata_gate", "gate ok", None)
    server_ledger.write_batch(run_id, frames=[{**first, "seq": 1}])
    with ws_client.connect(f"{api.ws_url}/ws/paper/{run_id}?since=0", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=10))["seq"] == 1
        server_ledger.update_run(run_id, status="killed", stop_reason="drill")
        # the follower has seen the final status: the done frame comes later
        wait_until(lambda: server_ledger.get_run(run_id)["status"] == "killed")
        import time

        time.sleep(1.0)  # longer than a poll: the follower must wait for done, not close
        done = make_frame(run_id, "done", "stopped", None)
        server_ledger.write_batch(run_id, frames=[{**done, "seq": 2}])
        frames, code = read_until_closed(ws)
    assert [f["stage"] for f in frames] == ["done"]
    assert code == 1000
