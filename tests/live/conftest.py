"""Fixtures of the live-feed tests: loopback servers, keys in the environment, a ledger."""

from __future__ import annotations

import pytest

import alphaswarm as aw
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.registry import registry

pytest.importorskip("alpaca")  # the test extra installs alphaswarm[alpaca,ccxt]
pytest.importorskip("ccxt")

from tests.live.loopback import API_KEY, SECRET_KEY, AlpacaServer, BinanceServer  # noqa: E402

RISK = {
    "max_order_notional": 1_000_000,
    "max_position_qty": 1000,
    "max_drawdown_pct": 0.5,
    "max_daily_loss": 50_000,
    "max_orders_per_minute": 30,
    "kill_switch_attached": True,
}
#: The fixtures are a few dozen bars: the gate's backtest rules are relaxed, not skipped.
GATE = {"min_sharpe": -1e9, "max_drawdown": 1e9, "min_trades": 0, "min_bars": 1}  # fixture-sized
FAST = {"backoff_base": 0.02, "backoff_max": 0.1, "group_grace": 0.2}


def live_bot(data: dict, universe: list[str], name: str = "live-sma", qty: float = 10) -> aw.Bot:
    return aw.Bot(
        {
            "name": name,
            "strategy": "sma_cross",
            "params": {"fast": 2, "slow": 4, "qty": qty},
            "universe": universe,
            "data": data,
            "risk": dict(RISK),
        }
    )


@pytest.fixture
def ledger(tmp_path):
    led = aw.set_ledger(f"sqlite:///{tmp_path}/ledger.db")
    yield led
    for s in registry().running():
        s.stop("test teardown")
    kill_switch().reset(actor="test")
    aw.set_ledger(None)
    led.close()


@pytest.fixture
def alpaca_keys(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", API_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET_KEY)


@pytest.fixture
def alpaca_server():
    server = AlpacaServer().start()
    yield server
    server.stop()


@pytest.fixture
def binance_server():
    server = BinanceServer().start()
    yield server
    server.stop()


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """A private ``$ALPHASWARM_HOME`` so each test starts with an empty bar cache."""
    monkeypatch.setenv("ALPHASWARM_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "data"


def run(session: aw.PaperSession, timeout: float = 30) -> list[dict]:
    frames: list[dict] = []
    session.frames.subscribe(frames.append)
    session.start()
    assert session.wait(timeout), f"session did not finish: {session.status}"
    return frames
