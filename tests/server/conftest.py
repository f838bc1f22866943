"""A real alphaswarm server on a free loopback port, with a temporary SQLite ledger.

The server (Panel + the API routes) runs on a background thread for the whole
session; every test starts with the kill switch released and no session running.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from alphaswarm.paper import runtime
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.registry import registry
from alphaswarm.server import ServerThread
from alphaswarm.server.demo import DEMO_SPEC
from tests.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from alphaswarm.ledger import Ledger


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class Api:
    """A tiny HTTP client bound to one server."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.ws_url = url.replace("http://", "ws://")
        self.session = requests.Session()
        self.session.headers.update(headers or {})

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, body: Any = None, raw: str | bytes | None = None, **kw: Any):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.session.post(self.url + path, data=data, timeout=60, **kw)


def stop_everything() -> None:
    ks = kill_switch()
    ks.reset()
    for bot in list(ks.halted_bots):
        ks.reset(bot=bot)
    running = registry().running()
    if running:
        registry().stop_many(running, "stopped", "test cleanup")


@pytest.fixture(scope="package")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "ledger.db"


@pytest.fixture(scope="package")
def server_ledger(ledger_path: Path) -> Iterator[Ledger]:
    fresh = runtime.Runtime(ledger=f"sqlite:///{ledger_path}", name="server-tests")
    previous = runtime.set_runtime(fresh)  # the server's process runtime for this package
    ledger = fresh.ledger
    ledger.ensure_schema()
    yield ledger
    stop_everything()
    runtime.set_runtime(previous)
    fresh.close()
    ledger.close()


@pytest.fixture(scope="package")
def server(server_ledger: Ledger) -> Iterator[ServerThread]:
    thread = ServerThread("127.0.0.1", free_port(), ledger=server_ledger).start()
    wait_until(lambda: requests.get(thread.url + "/health", timeout=5).status_code == 200)
    yield thread
    thread.stop()


@pytest.fixture
def api(server: ServerThread) -> Iterator[Api]:
    stop_everything()
    client = Api(server.url)
    yield client
    stop_everything()
    client.session.close()


@pytest.fixture
def demo_bot(api: Api) -> str:
    """The demo bot, created and backtested through the API; returns its id."""
    r = api.post("/bots", DEMO_SPEC)
    assert r.status_code in (200, 201), r.text
    bot_id = r.json()["bot_id"]
    r = api.post(f"/bots/{bot_id}/backtest", {"bars": 7800})
    assert r.status_code == 201, r.text
    return bot_id


@contextlib.contextmanager
def running_session(api: Api, bot_id: str, **body: Any) -> Iterator[str]:
    payload = {"starting_cash": 100000, "speed": 600, **body}
    r = api.post(f"/bots/{bot_id}/paper", payload)
    assert r.status_code == 201, r.text
    yield r.json()["paper_run_id"]
