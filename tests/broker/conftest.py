"""Fixtures of the broker tests: the loopback Alpaca server and keys in the environment."""

from __future__ import annotations

import time

import pytest

import alphaswarm as aw

pytest.importorskip("alpaca")  # the test extra installs alphaswarm[alpaca]

from tests.broker.alpaca_server import API_KEY, SECRET_KEY, AlpacaTradingServer  # noqa: E402


@pytest.fixture
def alpaca_keys(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", API_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET_KEY)


@pytest.fixture
def trading_server():
    server = AlpacaTradingServer().start()
    yield server
    server.stop()


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (generous timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def make_broker(alpaca_keys, trading_server):
    from alphaswarm.broker.alpaca import AlpacaPaperBroker

    made = []

    def make(prefix: str = "r1-", *, stream: bool = True, **kwargs):
        kwargs.setdefault("calendar", "24x7")
        kwargs.setdefault("timeout", 5.0)
        broker = AlpacaPaperBroker(prefix, urls=trading_server.urls, stream=stream, **kwargs)
        made.append(broker)
        if stream:
            wait_for(
                lambda: (
                    trading_server.listening() >= len([b for b in made if b._stream is not None])
                ),
                what="the stream to listen",
            )
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def session_ledger(ledger_url):
    """The process ledger on each backend (SQLite file, PostgreSQL) for paper sessions."""
    from alphaswarm.paper.killswitch import kill_switch
    from alphaswarm.paper.registry import registry

    led = aw.set_ledger(ledger_url)
    yield led
    for s in registry().running():
        s.stop("test teardown")
    kill_switch().reset(actor="test")
    aw.set_ledger(None)
    led.close()
