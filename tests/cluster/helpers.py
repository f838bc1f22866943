"""Server processes sharing one PostgreSQL ledger, for the cluster tests and the benchmark.

Each server is a real process: ``python -c "from alphaswarm.server.app import serve; ..."``
on its own loopback port, the dashboard off, the ledger at the given URL. Its run
owner is ``<host>:<pid>`` and its kill-switch listener connection shows in
``pg_stat_activity`` as ``alphaswarm-kill:<host>:<pid>``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]

#: The demo bot's spec (the server module's, repeated so this file imports nothing heavy).
BOT_SPEC: dict[str, Any] = {
    "name": "cluster-sma",
    "strategy": "sma_cross",
    "params": {"fast": 10, "slow": 30},
    "universe": ["DEMO"],
    "data": {"feed": "synthetic", "seed": 7, "interval": "1m"},
    "risk": {
        "max_order_notional": 50000,
        "max_position_qty": 1000,
        "max_drawdown_pct": 0.20,
        "max_daily_loss": 5000,
        "max_orders_per_minute": 30,
        "kill_switch_attached": True,
    },
}


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ServerProcess:
    """One ``serve`` process on ``db_url``; ``get``/``post`` talk to its API."""

    def __init__(self, db_url: str, home: Path, port: int | None = None) -> None:
        self.db_url = db_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"server-{self.port}.log"
        env = dict(os.environ)
        env.pop("ALPHASWARM_TOKEN", None)
        env.update(ALPHASWARM_DB_URL=db_url, HOME=str(home), ALPHASWARM_HOME=str(home))
        code = (
            "import logging; logging.basicConfig(level=logging.WARNING); "
            "from alphaswarm.server.app import serve; "
            f"serve(port={self.port}, db_url={db_url!r}, dashboard=False)"
        )
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.http = requests.Session()

    @property
    def owner(self) -> str:
        """The run owner this process records (``<host>:<pid>``)."""
        return f"{socket.gethostname()}:{self.proc.pid}"

    def healthy(self) -> bool:
        """Whether ``/health`` answers."""
        if self.proc.poll() is not None:
            raise AssertionError(f"server {self.port} exited:\n{self.output()}")
        try:
            return self.http.get(self.url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def output(self) -> str:
        """What the server printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def get(self, path: str) -> requests.Response:
        """GET ``path``."""
        return self.http.get(self.url + path, timeout=60)

    def post(self, path: str, body: Any = None) -> requests.Response:
        """POST ``path`` with a JSON body."""
        data = json.dumps(body) if body is not None else None
        return self.http.post(self.url + path, data=data, timeout=120)

    def stop(self) -> None:
        """SIGINT (the server writes its sessions' final rows), then SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.http.close()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: a crash, no final rows."""
        self.proc.kill()
        self.proc.wait()


def start_servers(db_url: str, home: Path, n: int, timeout: float = 90.0) -> list[ServerProcess]:
    """Start ``n`` servers on ``db_url`` at once and wait until each answers and listens."""
    servers = [ServerProcess(db_url, home) for _ in range(n)]
    try:
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda s: wait_until(s.healthy, timeout, 0.1), servers))
        wait_until(lambda: set(listeners(db_url)) >= {s.owner for s in servers}, 15, 0.05)
    except BaseException:
        for s in servers:
            s.kill()
        raise
    return servers


def sql(db_url: str, query: str, **params: Any) -> list[tuple]:
    """Run one statement in autocommit; the rows it returns (if any)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(db_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(query), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def listeners(db_url: str) -> dict[str, int]:
    """``{owner: backend pid}`` of the kill-switch listener connections."""
    rows = sql(
        db_url,
        "SELECT application_name, pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'alphaswarm-kill:%'",
    )
    return {name.removeprefix("alphaswarm-kill:"): pid for name, pid in rows}


def create_bot(server: ServerProcess, spec: dict[str, Any] | None = None) -> str:
    """Register and backtest the bot (so the paper gate passes); returns its id."""
    r = server.post("/bots", spec or BOT_SPEC)
    assert r.status_code in (200, 201), r.text
    bot_id = r.json()["bot_id"]
    r = server.post(f"/bots/{bot_id}/backtest", {"bars": 7800})
    assert r.status_code == 201, r.text
    return bot_id


def start_session(server: ServerProcess, bot_id: str, **body: Any) -> requests.Response:
    """POST a paper session (60 bars a second, long enough to outlive the test)."""
    payload = {"starting_cash": 100000, "speed": 60, "duration_minutes": 6000, **body}
    return server.post(f"/bots/{bot_id}/paper", payload)
