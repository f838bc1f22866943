"""The tutorial, walked over real HTTP and a real WebSocket against a real server."""

from __future__ import annotations

import json
import sqlite3

import websockets.sync.client as ws_client
import yaml
from websockets.exceptions import ConnectionClosed

from alphaswarm.server.demo import DEMO_SPEC

from .conftest import wait_until

ENVELOPE = {"task_id", "stage", "message", "timestamp", "ts", "seq", "equity", "positions"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends

RUNS_SQL = """SELECT id, bot_id, status, total_pnl, num_fills, started_at, ended_at
FROM paper_trading_runs ORDER BY started_at DESC LIMIT 1;"""
FILLS_SQL = """SELECT order_id, symbol, side, qty, price, filled_at
FROM paper_fills
WHERE paper_run_id = '<from_above>'
ORDER BY filled_at;"""


def test_tutorial_end_to_end(api, ledger_path):
    # first-bot: the YAML file posted as application/json
    r = api.post(
        "/bots",
        raw=yaml.safe_dump(DEMO_SPEC, sort_keys=False),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code in (200, 201), r.text
    created = r.json()
    assert set(created) >= {"bot_id", "version", "spec_hash"}
    bot_id = created["bot_id"]

    # backtest with dates and with bars; the latest one is the bot's reference
    r = api.post(f"/bots/{bot_id}/backtest", raw='{"start":"2024-01-01","end":"2024-01-31"}')
    assert r.status_code == 201, r.text
    assert r.json()["bars"] > 0 and r.json()["backtest_id"]
    r = api.post(f"/bots/{bot_id}/backtest", raw='{"bars": 7800}', headers=FORM)
    assert r.status_code == 201, r.text
    backtest = r.json()
    assert backtest["sharpe"] > 0.5

    # Step 1: the bot shows a recent backtest_runs reference and a non-zero sharpe
    r = api.get(f"/bots/{bot_id}")
    assert r.status_code == 200
    bot = r.json()
    assert bot["backtest_runs"]["id"] == backtest["backtest_id"]
    assert bot["backtest_runs"]["created_at"]
    assert bot["sharpe"] == backtest["sharpe"] != 0

    # Step 2: start the session with curl's form-encoded body
    r = api.post(
        f"/bots/{bot_id}/paper",
        raw='{"starting_cash":100000,"duration_minutes":60,"speed":600}',
        headers=FORM,
    )
    assert r.status_code == 201, r.text
    started = r.json()
    run_id = started["paper_run_id"]
    assert started["task_id"] == run_id
    assert started["stream_url"] == f"/ws/paper/{run_id}"
    assert started["status"] == "running"

    # Step 3: watch the WebSocket
    stages: list[str] = []
    frames: list[dict] = []
    with ws_client.connect(api.ws_url + started["stream_url"], open_timeout=10) as ws:
        while "order.filled" not in stages or "equity.update" not in stages:
            frame = json.loads(ws.recv(timeout=15))
            frames.append(frame)
            stages.append(frame["stage"])
        for stage in ("bar.received", "signal.emitted", "order.placed"):
            assert stage in stages
        # Step 4: the kill switch closes the session
        r = api.post("/kill-switch", {"reason": "tutorial step 4"})
        assert r.status_code == 200, r.text
        assert r.json()["engaged"] is True
        assert r.json()["targets"]["paper"]["halted"] == 1
        with_close = None
        try:
            while True:
                frame = json.loads(ws.recv(timeout=15))
                frames.append(frame)
                stages.append(frame["stage"])
        except ConnectionClosed as exc:
            with_close = exc.rcvd.code if exc.rcvd else None
    assert with_close == 1000
    assert stages[-1] == "done"
    stopped = [f for f in frames if f["stage"] == "session.stopped"]
    assert stopped and stopped[0]["status"] == "killed"
    for frame in frames:
        assert ENVELOPE <= set(frame), frame
        assert frame["task_id"] == run_id
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or duplicate on the socket"

    run = api.get(f"/paper/{run_id}").json()
    assert run["status"] == "killed"

    # Step 5: the tutorial's two queries, verbatim, on the ledger file
    with sqlite3.connect(ledger_path) as db:
        row = db.execute(RUNS_SQL).fetchone()
        assert row[0] == run_id and row[1] == bot_id and row[2] == "killed"
        assert row[3] is not None  # total_pnl
        assert row[4] >= 1
        fills = db.execute(FILLS_SQL.replace("<from_above>", row[0])).fetchall()
    assert len(fills) == row[4]
    api_fills = api.get(f"/paper/{run_id}/fills").json()["fills"]
    assert [f["order_id"] for f in api_fills] == [f[0] for f in fills]

    # the kill switch stays latched: a new session is refused until reset
    r = api.post(f"/bots/{bot_id}/paper", {"starting_cash": 1000})
    assert r.status_code == 409 and r.json()["error"] == "kill_switch_engaged"
    r = api.post("/kill-switch/reset")
    assert r.status_code == 200 and r.json()["engaged"] is False
    r = api.post(f"/bots/{bot_id}/paper", {"starting_cash": 1000, "speed": 0, "max_bars": 5})
    assert r.status_code == 201, r.text
    wait_until(lambda: api.get(f"/paper/{r.json()['paper_run_id']}").json()["status"] != "running")
