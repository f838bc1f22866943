"""Property tests of the fill model's accounting invariants (hypothesis).

Random bar sequences and random order streams are played through a
SimulatedBroker bar by bar; after every bar the account is recomputed from the
fills alone and compared with the broker's, and the no-look-ahead, replay,
cash and no-short invariants are checked.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaswarm.engine.broker import BrokerConfig, IntrabarRule, SimulatedBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.model import Bar, ModelError, OrderRequest, OrderStatus
from alphaswarm.strategies import SmaCross
from tests.engine.helpers import T0

SYMBOLS = ("AAA", "BBB")
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

bar_moves = st.tuples(
    st.floats(-0.03, 0.03),  # open gap
    st.floats(-0.03, 0.03),  # open -> close
    st.floats(0, 0.02),  # high above
    st.floats(0, 0.02),  # low below
    st.integers(0, 400),  # volume
    st.booleans(),  # a new trading day starts here
)

order_spec = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(SYMBOLS),
        "side": st.sampled_from(["buy", "sell"]),
        "qty": st.integers(1, 60),
        "type": st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop"]),
        "offset": st.floats(-0.04, 0.04),
        "offset2": st.floats(0.0, 0.03),
        "tif": st.sampled_from(["day", "gtc", "ioc"]),
        "bracket": st.booleans(),
        "cancel": st.integers(0, 6),
    }
)

configs = st.builds(
    BrokerConfig,
    slippage_bps=st.sampled_from([0.0, 2.5, 10.0]),
    commission_per_share=st.sampled_from([0.0, 0.005]),
    commission_bps=st.sampled_from([0.0, 1.0]),
    commission_min=st.sampled_from([0.0, 1.0]),
    max_participation=st.sampled_from([None, 0.1, 0.5]),
    allow_short=st.booleans(),
    allow_margin=st.just(False),
    intrabar_rule=st.sampled_from([r.value for r in IntrabarRule]),
)

scenarios = st.tuples(
    st.lists(bar_moves, min_size=2, max_size=25),
    st.lists(st.lists(order_spec, max_size=3), max_size=25),
    configs,
    st.sampled_from([2_000.0, 20_000.0, 200_000.0]),
)


def build_bars(moves) -> list[list[Bar]]:
    """Groups of one bar per symbol, with prices drifting from 100 and 50."""
    groups = []
    closes = {"AAA": 100.0, "BBB": 50.0}
    day, minute = 0, 0
    for k, (gap, move, up, down, volume, new_day) in enumerate(moves):
        if new_day and k:
            day, minute = day + 1, 0
        ts = T0 + timedelta(days=day, minutes=minute)
        minute += 1
        group = []
        for j, sym in enumerate(SYMBOLS):
            sign = 1 if j == 0 else -1  # the two symbols move in opposite directions
            o = round(closes[sym] * math.exp(sign * gap), 2)
            c = round(o * math.exp(sign * move), 2)
            h = round(max(o, c) * (1 + up), 2)
            lo = round(min(o, c) * (1 - down), 2)
            closes[sym] = c
            group.append(Bar(sym, ts, o, h, lo, c, float(volume)))
        groups.append(group)
    return groups


def make_request(spec: dict, price: float) -> OrderRequest:
    kind, off, off2 = spec["type"], spec["offset"], spec["offset2"]
    buy = spec["side"] == "buy"
    kw: dict = {"time_in_force": spec["tif"]}
    if kind == "limit":
        kw["limit_price"] = round(price * (1 + off), 2)
    elif kind == "stop":
        kw["stop_price"] = round(price * (1 + off), 2)
    elif kind == "stop_limit":
        stop = price * (1 + off)
        kw["stop_price"] = round(stop, 2)
        kw["limit_price"] = round(stop * (1 + off2 if buy else 1 - off2), 2)
    elif kind == "trailing_stop":
        kw["trail_pct"] = 0.005 + off2
    if spec["bracket"] and kind == "market":
        a, b = 1 + 0.01 + off2, 1 - 0.01 - off2
        kw["take_profit"] = round(price * (a if buy else b), 2)
        kw["stop_loss"] = round(price * (b if buy else a), 2)
    return OrderRequest(spec["symbol"], spec["side"], spec["qty"], kind, **kw)


def play(moves, order_lists, config, cash, check=None):
    """Run the scenario; call ``check(broker, k, group)`` after every bar group."""
    broker = SimulatedBroker(cash, config)
    groups = build_bars(moves)
    for k, group in enumerate(groups):
        broker.begin_bar(group[0].ts)
        for b in group:
            broker.process_bar(b, k)
            broker.mark(b.symbol, b.close)
        if check is not None:
            check(broker, k, group)
        for spec in order_lists[k] if k < len(order_lists) else []:
            price = next(b.close for b in group if b.symbol == spec["symbol"])
            try:
                request = make_request(spec, price)
            except ModelError:
                continue
            broker.submit(request, group[0].ts, k)
            if spec["cancel"] == 0 and broker.open_orders:
                broker.cancel(broker.open_orders[0].id)
    return broker, groups


@given(scenarios)
@SETTINGS
def test_accounting_invariants_after_every_bar(scenario):
    moves, order_lists, config, cash = scenario
    index_of_ts: dict = {}

    def check(broker: SimulatedBroker, k: int, group: list[Bar]) -> None:
        index_of_ts[group[0].ts] = k
        # recompute the account from the fills alone
        exp_cash = cash
        qty = dict.fromkeys(SYMBOLS, 0.0)
        for f in broker.fills:
            exp_cash -= f.side.sign * f.qty * f.price + f.commission
            qty[f.symbol] += f.side.sign * f.qty
        last = {b.symbol: b.close for b in group}
        assert broker.cash == pytest.approx(exp_cash, rel=1e-9, abs=1e-6)
        for sym in SYMBOLS:
            assert broker.position(sym).qty == pytest.approx(qty[sym], abs=1e-9)
        expected_equity = exp_cash + sum(qty[s] * last[s] for s in SYMBOLS)
        assert broker.equity == pytest.approx(expected_equity, rel=1e-9, abs=1e-6)
        # no fill at or before the bar its order was placed on
        for f in broker.fills:
            order = broker.orders[f.order_id]
            assert index_of_ts[f.ts] > order.placed_index
            assert f.ts > order.created_at
        # cash never negative without margin; no shorts when shorting is disabled
        assert broker.cash >= -1e-6
        if not config.allow_short:
            for sym in SYMBOLS:
                assert broker.position(sym).qty >= -1e-9
        for order in broker.orders.values():
            assert order.filled_qty <= order.qty + 1e-9
            if order.status is OrderStatus.FILLED:
                assert order.remaining == pytest.approx(0, abs=1e-9)

    play(moves, order_lists, config, cash, check)


@given(scenarios)
@SETTINGS
def test_replaying_the_same_bars_and_orders_gives_identical_fills(scenario):
    first, _ = play(*scenario)
    second, _ = play(*scenario)
    assert [f.to_dict() for f in first.fills] == [f.to_dict() for f in second.fills]
    assert [o.to_dict() for o in first.orders.values()] == [
        o.to_dict() for o in second.orders.values()
    ]
    assert first.cash == second.cash and first.equity == second.equity


@given(st.lists(bar_moves, min_size=40, max_size=120), st.booleans())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_engine_replay_is_deterministic_and_consistent(moves, allow_short):
    groups = build_bars(moves)

    def run() -> Engine:
        engine = Engine(
            SmaCross(fast=3, slow=9, qty=5),
            SimulatedBroker(50_000.0, BrokerConfig(allow_short=allow_short, slippage_bps=1)),
        )
        for group in groups:
            engine.step(group)
            broker = engine.broker
            value = sum(p.qty * p.last_price for p in broker.positions.values())
            assert engine.equity_values[-1] == pytest.approx(broker.cash + value)
            if not allow_short:
                assert all(p.qty >= 0 for p in broker.positions.values())
        return engine

    a, b = run(), run()
    assert [f.to_dict() for f in a.broker.fills] == [f.to_dict() for f in b.broker.fills]
    assert a.equity_values == b.equity_values
