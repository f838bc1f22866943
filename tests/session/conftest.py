from __future__ import annotations

import pytest

import alphaswarm as aw
from alphaswarm.ledger import Ledger

DEMO_RISK = {
    "max_order_notional": 50_000,
    "max_position_qty": 1000,
    "max_drawdown_pct": 0.20,
    "max_daily_loss": 5000,
    "max_orders_per_minute": 30,
    "kill_switch_attached": True,
}


def demo_bot(**overrides) -> aw.Bot:
    spec = {
        "name": "sma-demo",
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 30},
        "universe": ["DEMO"],
        "data": {"feed": "synthetic", "seed": 7, "interval": "1m"},
        "risk": dict(DEMO_RISK),
    }
    spec.update(overrides)
    return aw.Bot(spec)


@pytest.fixture
def runtime(tmp_path):
    """A fresh runtime (ledger, kill switch, registry, loop) as the process's, for one test."""
    rt = aw.Runtime(ledger=f"sqlite:///{tmp_path}/ledger.db", name="test")
    with aw.use_runtime(rt):
        yield rt
    rt.close()  # stops its sessions; its kill switch goes with it, engaged or not
    rt.ledger.close()


@pytest.fixture
def ledger(runtime):
    return runtime.ledger


@pytest.fixture
def bot(ledger) -> aw.Bot:
    bot = demo_bot()
    aw.backtest(bot, ledger=ledger)
    return bot


@pytest.fixture
def make_bot():
    return demo_bot


@pytest.fixture
def commits(monkeypatch) -> list[int]:
    """Runs per ``Ledger.write_batches`` call, as the calls happen."""
    sizes: list[int] = []
    write_batches = Ledger.write_batches

    def spy(self, batches):
        batches = list(batches)
        sizes.append(len(batches))
        return write_batches(self, batches)

    monkeypatch.setattr(Ledger, "write_batches", spy)
    return sizes
