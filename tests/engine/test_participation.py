"""The participation cap is one budget per symbol and bar, shared in time priority."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given

from alphaswarm.engine.broker import BrokerConfig, SimulatedBroker
from alphaswarm.model import OrderStatus
from tests.engine.helpers import SYM, Driver, bar
from tests.engine.test_properties import SETTINGS, SYMBOLS, play, scenarios


def make(**config) -> Driver:
    return Driver(SimulatedBroker(1_000_000.0, BrokerConfig(**config)))


def test_two_orders_on_one_bar_share_the_cap():
    d = make(max_participation=0.1)
    d.step(bar(0, 100, v=1_000))
    first = d.submit(SYM, "buy", 80, time_in_force="gtc")
    second = d.submit(SYM, "buy", 80, time_in_force="gtc")
    d.step(bar(1, 100, v=1_000))  # cap: 100 shares for the bar, all orders together
    assert first.filled_qty == 80  # the earlier order first
    assert second.filled_qty == 20  # what the earlier one left
    assert sum(f.qty for f in d.broker.fills) == 100
    d.step(bar(2, 100, v=300))  # cap 30
    assert second.filled_qty == 50
    d.step(bar(3, 100, v=1_000))
    assert second.status is OrderStatus.FILLED


def test_time_priority_puts_the_earlier_order_first_whatever_its_side():
    d = make(max_participation=0.1)
    d.step(bar(0, 100, v=1_000))
    d.submit(SYM, "buy", 200, time_in_force="gtc")
    d.step(bar(1, 100, v=2_000))  # 200 held
    sell = d.submit(SYM, "sell", 150, "limit", limit_price=99, time_in_force="gtc")
    buy = d.submit(SYM, "buy", 150, time_in_force="gtc")
    d.step(bar(2, 100, v=1_000))  # cap 100: the sell was placed first
    assert sell.filled_qty == 100 and buy.filled_qty == 0
    assert buy.reason_code == "volume_cap"
    assert "went to earlier orders" in d.broker.why_open(buy.id)
    d.step(bar(3, 100, v=1_000))
    assert sell.status is OrderStatus.FILLED and buy.filled_qty == 50


def test_a_bar_without_volume_says_so():
    d = make(max_participation=0.5)
    d.step(bar(0, 100, v=0))
    order = d.submit(SYM, "buy", 3, time_in_force="gtc")
    d.step(bar(1, 100, v=0))
    assert order.reason == "no volume to take: bar volume 0"


def test_fractional_orders_share_the_remaining_fraction():
    d = make(max_participation=0.5)
    d.step(bar(0, 100, v=3))
    whole = d.submit(SYM, "buy", 5, time_in_force="gtc")
    frac = d.submit(SYM, "buy", 2.5, time_in_force="gtc")
    d.step(bar(1, 100, v=3))  # cap 1.5: the whole-share order takes 1, the other 0.5
    assert whole.filled_qty == 1
    assert frac.filled_qty == pytest.approx(0.5)


@given(scenarios)
@SETTINGS
def test_per_bar_volume_never_exceeds_the_cap(scenario):
    moves, order_lists, config, cash = scenario
    seen = [0]

    def check(broker: SimulatedBroker, k: int, group) -> None:
        new = broker.fills[seen[0] :]
        seen[0] = len(broker.fills)
        taken: dict[str, float] = defaultdict(float)
        for f in new:
            taken[f.symbol] += f.qty
        mp = config.max_participation
        for b in group:
            if mp is not None:
                assert taken[b.symbol] <= mp * b.volume + 1e-9, (b.symbol, taken, b.volume)
        # cash + positions accounting from the fills alone
        exp_cash = cash - sum(f.side.sign * f.qty * f.price + f.commission for f in broker.fills)
        assert broker.cash == pytest.approx(exp_cash, rel=1e-9, abs=1e-6)
        for sym in SYMBOLS:
            held = sum(f.side.sign * f.qty for f in broker.fills if f.symbol == sym)
            assert broker.position(sym).qty == pytest.approx(held, abs=1e-9)
        value = sum(broker.position(s).qty * b.close for s in SYMBOLS for b in group
                    if b.symbol == s)  # fmt: skip
        assert broker.equity == pytest.approx(exp_cash + value, rel=1e-9, abs=1e-6)
        for order in broker.orders.values():
            assert order.filled_qty <= order.qty + 1e-9

    play(moves, order_lists, config, cash, check)
