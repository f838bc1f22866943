"""``alphaswarm serve`` shuts down cleanly on SIGTERM as on SIGINT (issue 19, item 5).

A real ``alphaswarm serve --demo`` process: its demo session is stopped with a
reason, its final row is written and a WebSocket client receives ``done`` and a
normal close before the process exits 0.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess

import pytest
import requests
import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

from .conftest import free_port, wait_until
from .test_processes import BIN, env, start  # noqa: F401 - env is a fixture


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_sessions_and_sends_done_on(sig, env, tmp_path):  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start([str(BIN / "alphaswarm"), "serve", "--port", str(port), "--demo"], env, url)
    try:
        runs = wait_until(
            lambda: requests.get(url + "/paper?status=running", timeout=5).json()["runs"], 60
        )
        run_id = runs[0]["paper_run_id"]
        frames: list[dict] = []
        with ws_client.connect(f"ws://127.0.0.1:{port}/ws/paper/{run_id}", open_timeout=10) as ws:
            while not any(f["stage"] == "bar.received" for f in frames):
                frames.append(json.loads(ws.recv(timeout=20)))
            proc.send_signal(sig)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frames.append(json.loads(ws.recv(timeout=30)))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert frames[-1]["stage"] == "done"
        assert frames[-1]["result"]["status"] == "stopped"
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        status, reason, ended = db.execute(
            "SELECT status, stop_reason, ended_at FROM paper_trading_runs WHERE id = ?", (run_id,)
        ).fetchone()
    assert status == "stopped"
    assert "server shut down" in reason and sig.name in reason
    assert ended is not None


def test_a_second_signal_stops_at_once(env, tmp_path):  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start([str(BIN / "alphaswarm"), "serve", "--port", str(port)], env, url)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
