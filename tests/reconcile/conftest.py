"""Fixtures of the reconciliation tests: a temp ledger, known bars, paper runs over them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

import alphaswarm as aw
from alphaswarm.data import ReplayFeed
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.registry import registry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SCRIPTED = "tests.reconcile.strategies:Scripted"
#: Hold 100 from minute 10, 600 from minute 30 (a buy of 500), flat at 60, 250 at 70, flat at 90.
PLAN = [[10, 100], [30, 600], [60, 0], [70, 250], [90, 0]]


def make_bars(n: int = 120, start: str = "2024-01-02 14:30") -> pd.DataFrame:
    """One symbol of 1-minute bars on a wave, volume 1000 each."""
    ts = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    i = np.arange(n)
    close = 100 + 5 * np.sin(i / 10) + 0.01 * i
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": "DEMO",
            "open": open_,
            "high": np.maximum(open_, close) + 0.2,
            "low": np.minimum(open_, close) - 0.2,
            "close": close,
            "volume": 1000.0,
        }
    )


def scripted_spec(**overrides: Any) -> dict[str, Any]:
    """The scripted bot's spec (a fixed plan, so every difference is known in advance)."""
    spec = {
        "name": "rec-scripted",
        "strategy": SCRIPTED,
        "params": {"plan": PLAN},
        "risk": {"kill_switch_attached": True},
    }
    spec.update(overrides)
    return spec


@pytest.fixture(autouse=True)
def _test_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bots may name the strategies of ``tests.reconcile`` (reconcile rebuilds them by name)."""
    monkeypatch.setenv("ALPHASWARM_STRATEGY_MODULES", "tests.reconcile")


@pytest.fixture
def ledger(tmp_path: Any) -> Iterator[aw.Ledger]:
    """A fresh SQLite ledger as the process default."""
    led = aw.set_ledger(f"sqlite:///{tmp_path}/ledger.db")
    yield led
    running = registry().running()
    if running:
        registry().stop_many(running, "stopped", "test teardown")
    kill_switch().reset(actor="test")
    aw.set_ledger(None)
    led.close()


@pytest.fixture
def bars() -> pd.DataFrame:
    """120 one-minute bars of DEMO."""
    return make_bars()


@pytest.fixture
def paper_run(ledger: aw.Ledger, bars: pd.DataFrame) -> Callable[..., aw.PaperSession]:
    """Run a bot over ``data`` (the fixture's bars by default) to the end, as fast as possible."""

    def run(spec: dict[str, Any], data: pd.DataFrame | None = None, **params: Any):
        session = aw.PaperSession(
            aw.Bot(spec),
            feed=ReplayFeed.from_frame(bars if data is None else data),
            speed=params.pop("speed", 0),
            duration_minutes=None,
            force=True,
            reason="reconciliation test",
            **params,
        ).start()
        if session.speed == 0:
            assert session.wait(60), "the session did not finish"
        return session

    return run
