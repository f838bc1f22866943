"""The server as a process: ``alphaswarm serve`` and ``panel serve --plugins``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import websockets.sync.client as ws_client

from .conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def start(cmd: list[str], env: dict[str, str], url: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until(lambda: proc.poll() is None and healthy(url) or proc.poll() is not None, 60)
    except AssertionError:
        proc.kill()
        raise
    if proc.poll() is not None:
        raise AssertionError(f"{cmd} exited: {proc.stdout.read()}")
    return proc


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ALPHASWARM_TOKEN", None)
    env["ALPHASWARM_DB_URL"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    env["HOME"] = str(tmp_path)
    return env


def test_alphaswarm_serve_demo_is_live_within_seconds_and_idempotent(env, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "alphaswarm"), "serve", "--port", str(port), "--demo"]
    for _attempt in range(2):
        proc = start(cmd, env, url)
        try:
            runs = wait_until(
                lambda: requests.get(url + "/paper?status=running", timeout=5).json()["runs"], 30
            )
            assert len(runs) == 1 and runs[0]["bot_id"] == "sma-demo"
            bot = requests.get(url + "/bots/sma-demo", timeout=5).json()
            assert bot["version"] == 1 and bot["sharpe"] > 1  # passes the gate (min 0.5)
            with ws_client.connect(f"ws://127.0.0.1:{port}{runs[0]['stream_url']}") as ws:
                t0 = time.monotonic()
                stages = set()
                while "bar.received" not in stages:
                    stages.add(json.loads(ws.recv(timeout=10))["stage"])
                assert time.monotonic() - t0 < 5
        finally:
            stop(proc)
    import sqlite3

    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT COUNT(*) FROM bot_versions").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM backtest_runs").fetchone()[0] == 1
        statuses = [r[0] for r in db.execute("SELECT status FROM paper_trading_runs")]
    assert statuses == ["stopped", "stopped"]


def test_panel_serve_with_plugins(env):
    port = free_port()
    url = f"http://localhost:{port}"
    cmd = [
        str(BIN / "panel"), "serve", "apps/dashboard.py", "--port", str(port),
        "--plugins", "alphaswarm.server.routes",
    ]  # fmt: skip
    proc = start(cmd, env, url)
    try:
        assert requests.get(url + "/bots", timeout=10).json() == {"bots": []}
        assert requests.get(url + "/openapi.json", timeout=10).status_code == 200
        assert requests.post(url + "/kill-switch/reset", timeout=10).status_code == 200
        assert requests.get(url + "/nope/", timeout=10).status_code == 404
        assert requests.get(url + "/dashboard", timeout=60).status_code == 200
    finally:
        stop(proc)
