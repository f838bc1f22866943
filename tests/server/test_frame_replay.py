"""``WS /ws/paper/{id}?since=0`` over the real server sends exactly the frames the bus published.

The bar and equity frames come back from ``paper_frame_blocks``, the others from
``paper_frames`` rows; a client sees one stream, field by field as published.
"""

from __future__ import annotations

import json

import websockets.sync.client as ws_client

import alphaswarm as aw
from alphaswarm.server.demo import DEMO_SPEC

from .conftest import wait_until
from .test_ws import read_until_closed


def start(ledger, **kwargs) -> tuple[aw.PaperSession, list[dict]]:
    # its own bot: the demo bot of the shared server ledger keeps its risk block
    spec = {**DEMO_SPEC, "name": "frame-replay", **kwargs.pop("spec", {})}
    published: list[dict] = []
    session = aw.PaperSession(
        aw.Bot(spec), ledger=ledger, force=True, reason="frame replay test", **kwargs
    )
    session.frames.subscribe(published.append)
    session.start()
    return session, published


def as_sent(frames: list[dict]) -> list[dict]:
    """What a client decodes: the frames through JSON (the published dicts hold JSON values)."""
    return [json.loads(json.dumps(f)) for f in frames]


def test_finished_halted_run_replays_every_frame_as_published(api, server_ledger):
    risk = {**DEMO_SPEC.get("risk", {}), "max_daily_loss": 1.0, "kill_switch_attached": True}
    session, published = start(
        server_ledger, spec={"risk": risk}, speed=0, duration_minutes=None, max_bars=5000
    )
    assert session.wait(60)
    assert session.status == "halted"
    assert {"order.filled", "risk.halted", "bar.received"} <= {f["stage"] for f in published}
    url = f"{api.ws_url}/ws/paper/{session.paper_run_id}"
    with ws_client.connect(f"{url}?since=0", open_timeout=5) as ws:
        got, code = read_until_closed(ws)
    assert code == 1000
    assert got == as_sent(published) == published
    mid = published[len(published) // 2]["seq"]
    with ws_client.connect(f"{url}?since={mid}", open_timeout=5) as ws:
        tail, code = read_until_closed(ws)
    assert code == 1000
    assert tail == [f for f in published if f["seq"] > mid]


def test_client_joining_a_running_session_then_killed_gets_every_frame(api, server_ledger):
    session, published = start(server_ledger, speed=3000, duration_minutes=None)
    wait_until(lambda: session.bars_seen >= 30, timeout=60)
    url = f"{api.ws_url}/ws/paper/{session.paper_run_id}?since=0"
    with ws_client.connect(url, open_timeout=5) as ws:
        got = [json.loads(ws.recv(timeout=15)) for _ in range(20)]
        assert session.kill("test kill")
        rest, code = read_until_closed(ws)
    assert code == 1000
    assert session.status == "killed"
    got += rest
    assert got == as_sent(published) == published
    # and the ledger alone (after the run) gives the same
    assert server_ledger.frames_after(session.paper_run_id, 0) == published
