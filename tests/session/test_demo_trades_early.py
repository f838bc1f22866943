"""The demo bot shows a fill within the first 30 bars of a session (30 s at speed 60)."""

from __future__ import annotations

import pytest

import alphaswarm as aw
from alphaswarm.bots import DEMO_SPEC
from alphaswarm.paper.runtime import engine_loop

#: Bars of a session a newcomer waits at most for the first fill: 30 s at the demo speed.
FIRST_FILL_WITHIN_BARS = 30


@pytest.fixture
def ledger(tmp_path):
    led = aw.set_ledger(f"sqlite:///{tmp_path}/demo.db")
    yield led
    aw.set_ledger(None)
    led.close()


def test_demo_bot_fills_within_30_bars_of_a_session(ledger):
    bot = aw.Bot(DEMO_SPEC)
    result = aw.backtest(bot, bars=7800)  # what the README snippet and notebook 01 do first
    assert result.metrics["sharpe"] >= 0.5  # it still passes the paper gate honestly
    # `alphaswarm paper run sma-demo --speed 60 --duration 30`, in bar terms
    session = aw.PaperSession(bot, speed=0, duration_minutes=FIRST_FILL_WITHIN_BARS)
    session.start(loop=engine_loop())
    assert session.wait(60)
    assert session.status == "completed"
    assert session.bars_seen <= FIRST_FILL_WITHIN_BARS
    assert session.num_fills >= 1
