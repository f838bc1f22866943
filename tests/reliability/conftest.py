"""Fixtures of the reliability suite: a warm server forker and a pacing-friendly bot."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from .servers import ServerForker

if TYPE_CHECKING:
    from collections.abc import Iterator

#: A bot that trades within a few bars (fast crossovers on the seeded synthetic feed).
FAST_BOT: dict[str, Any] = {
    "name": "reliability-fast",
    "strategy": "sma_cross",
    "params": {"fast": 2, "slow": 5},
    "universe": ["DEMO"],
    "data": {"feed": "synthetic", "seed": 11, "interval": "1m"},
    "risk": {"max_position_qty": 1000, "kill_switch_attached": True},
}


@pytest.fixture(scope="package")
def forker() -> Iterator[ServerForker]:
    env = dict(os.environ)
    env.pop("ALPHASWARM_TOKEN", None)
    f = ServerForker(env)
    yield f
    f.close()


@pytest.fixture(scope="module")
def fresh_server(forker, tmp_path_factory):
    """A real server process (forked) on a fresh SQLite ledger; yields ``(url, db_url, log)``."""
    from tests.ports import free_port

    from .servers import wait_healthy

    root = tmp_path_factory.mktemp("server")
    db_url = f"sqlite:///{root / 'ledger.db'}"
    log = root / "server.log"
    port = free_port()
    pid = forker.start(port, db_url, log)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, pid)
    yield url, db_url, log
    forker.kill(pid)
