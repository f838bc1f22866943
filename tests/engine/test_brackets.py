"""Brackets whose entry fills in parts: the exit legs always cover the open quantity.

The two scenarios of issue 21 item 1 as regression tests, then a property test
over random partial-fill sequences (hypothesis): random bars, participation caps,
entry types and leg mixes, checking after every bar that a bracket's position is
covered by its open legs exactly, never flips, and that no order ever reports
more filled than its quantity or has a closed state rewritten.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaswarm.engine.broker import BrokerConfig, IntrabarRule, SimulatedBroker
from alphaswarm.model import Bar, ModelError, OrderRequest, OrderStatus
from tests.engine.helpers import SYM, T0, Driver, bar


def legs_of(d: Driver, entry) -> list:
    return [o for o in d.broker.orders.values() if o.parent_id == entry.id]


def open_legs(d: Driver, entry) -> dict[str, object]:
    return {o.request.tag: o for o in legs_of(d, entry) if o.is_open}


def test_entry_filling_after_the_take_profit_closed_gets_new_legs():
    # participation 0.5, GTC buy-limit bracket of 100 (take-profit 105, stop-loss 95)
    d = Driver(SimulatedBroker(100_000.0, BrokerConfig(max_participation=0.5)))
    d.step(bar(0, 100, v=100))
    entry = d.submit(SYM, "buy", 100, "limit", limit_price=100, time_in_force="gtc",
                     take_profit=105, stop_loss=95, tag="br")  # fmt: skip
    d.step(bar(1, 100, 101, 99, 100, v=100))  # the entry fills 50
    assert entry.filled_qty == 50
    first = open_legs(d, entry)
    assert {k: o.qty for k, o in first.items()} == {"br:tp": 50, "br:sl": 50}
    d.step(bar(2, 104, 106, 103, 105, v=100))  # the take-profit fills 50, OCO cancels the SL
    tp1, sl1 = first["br:tp"], first["br:sl"]
    assert tp1.status is OrderStatus.FILLED and tp1.filled_qty == 50
    assert sl1.status is OrderStatus.CANCELLED
    assert d.broker.position(SYM).qty == 0
    d.step(bar(3, 101, 102, 99, 100, v=100))  # the entry fills its last 50
    assert entry.status is OrderStatus.FILLED
    assert d.broker.position(SYM).qty == 50
    # the closed take-profit is not rewritten
    assert (tp1.status, tp1.qty, tp1.filled_qty) == (OrderStatus.FILLED, 50, 50)
    assert (sl1.status, sl1.qty, sl1.filled_qty) == (OrderStatus.CANCELLED, 50, 0)
    # the new 50-share position is protected by a new pair
    second = open_legs(d, entry)
    assert set(second) == {"br:tp", "br:sl"}
    assert all(o.qty == 50 and o.filled_qty == 0 for o in second.values())
    assert not {o.id for o in second.values()} & {tp1.id, sl1.id}
    d.step(bar(4, 96, 97, 90, 91, v=1_000))  # the new stop-loss sells the 50
    assert second["br:sl"].status is OrderStatus.FILLED
    assert second["br:tp"].status is OrderStatus.CANCELLED
    assert d.broker.position(SYM).qty == 0
    for order in d.broker.orders.values():
        assert order.filled_qty <= order.qty
        if order.status is OrderStatus.FILLED:
            assert order.filled_qty == order.qty


def test_stop_loss_never_oversells_into_a_short():
    d = Driver(SimulatedBroker(100_000.0, BrokerConfig(max_participation=0.5, allow_short=True)))
    d.step(bar(0, 100, v=100))
    entry = d.submit(SYM, "buy", 100, "limit", limit_price=100, time_in_force="gtc",
                     take_profit=105, stop_loss=95, tag="br")  # fmt: skip
    d.step(bar(1, 100, 101, 99, 100, v=100))  # entry fills 50
    d.step(bar(2, 104, 106, 103, 105, v=40))  # take-profit fills 20 (cap 0.5 x 40)
    legs = open_legs(d, entry)
    assert legs["br:tp"].filled_qty == 20
    assert legs["br:sl"].remaining == 30
    d.step(bar(3, 101, 102, 99, 100, v=100))  # entry fills its last 50: 80 held
    assert d.broker.position(SYM).qty == 80
    legs = open_legs(d, entry)
    assert legs["br:tp"].remaining == 80 and legs["br:sl"].remaining == 80
    assert legs["br:sl"].qty == 80  # not 100 against an 80-share position
    d.step(bar(4, 96, 97, 90, 91, v=1_000))
    assert legs["br:sl"].status is OrderStatus.FILLED and legs["br:sl"].filled_qty == 80
    assert d.broker.position(SYM).qty == 0  # no 20-share short


def test_an_exit_leg_never_reverses_a_position_reduced_by_other_orders():
    d = Driver(SimulatedBroker(100_000.0, BrokerConfig(allow_short=True)))
    d.step(bar(0, 100))
    entry = d.submit(SYM, "buy", 10, take_profit=120, stop_loss=90, tag="br")
    d.step(bar(1, 100))
    legs = open_legs(d, entry)
    d.submit(SYM, "sell", 4)  # a plain sell under the bracket's legs
    d.step(bar(2, 100))
    d.step(bar(3, 92, 93, 88, 89))
    sl, tp = legs["br:sl"], legs["br:tp"]
    assert sl.filled_qty == 6 and sl.reason_code == "position_closed"
    assert tp.status is OrderStatus.CANCELLED and tp.reason_code == "oco_cancelled"
    assert d.broker.position(SYM).qty == 0


# ------------------------------------------------------------------ property test

bar_moves = st.tuples(
    st.floats(-0.03, 0.03),  # open gap
    st.floats(-0.03, 0.03),  # open -> close
    st.floats(0, 0.02),  # high above
    st.floats(0, 0.02),  # low below
    st.integers(0, 300),  # volume
)

bracket_spec = st.fixed_dictionaries(
    {
        "qty": st.integers(1, 150),
        "type": st.sampled_from(["market", "limit", "stop"]),
        "offset": st.floats(-0.02, 0.02),
        "tp": st.floats(0.002, 0.03),
        "sl": st.floats(0.002, 0.03),
        "legs": st.sampled_from(["both", "tp", "sl"]),
        "tif": st.sampled_from(["gtc", "day"]),
        "cancel_after": st.one_of(st.none(), st.integers(1, 6)),
    }
)

bracket_scenarios = st.tuples(
    st.lists(bar_moves, min_size=3, max_size=30),
    st.lists(st.lists(bracket_spec, max_size=2), max_size=30),
    st.sampled_from([None, 0.1, 0.3, 0.5, 1.0]),
    st.booleans(),  # short brackets (sell entries, buy legs) with allow_short
    st.booleans(),  # allow_short also for long brackets
    st.sampled_from([r.value for r in IntrabarRule]),
    st.sampled_from([0.0, 1.0]),  # commission minimum
)


def _bars(moves) -> list[Bar]:
    out, close = [], 100.0
    for k, (gap, move, up, down, volume) in enumerate(moves):
        o = round(close * math.exp(gap), 2)
        c = round(o * math.exp(move), 2)
        h = round(max(o, c) * (1 + up), 2)
        lo = round(min(o, c) * (1 - down), 2)
        close = c
        out.append(Bar(SYM, T0 + timedelta(minutes=k), o, h, lo, c, float(volume)))
    return out


def _request(spec: dict, price: float, short: bool) -> OrderRequest:
    sign = -1 if short else 1
    kw: dict = {"time_in_force": spec["tif"], "tag": "br"}
    if spec["type"] == "limit":
        kw["limit_price"] = round(price * (1 + spec["offset"]), 2)
    elif spec["type"] == "stop":
        kw["stop_price"] = round(price * (1 + spec["offset"]), 2)
    ref = kw.get("limit_price") or kw.get("stop_price") or price
    if spec["legs"] in ("both", "tp"):
        kw["take_profit"] = round(ref * (1 + sign * spec["tp"]), 2)
    if spec["legs"] in ("both", "sl"):
        kw["stop_loss"] = round(ref * (1 - sign * spec["sl"]), 2)
    side = "sell" if short else "buy"
    return OrderRequest(SYM, side, spec["qty"], spec["type"], **kw)


@given(bracket_scenarios)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_bracket_position_is_always_covered_and_never_flips(scenario):
    moves, order_lists, participation, short, allow_short, rule, minimum = scenario
    config = BrokerConfig(
        max_participation=participation,
        allow_short=short or allow_short,
        intrabar_rule=rule,
        commission_per_share=0.01,
        commission_min=minimum,
    )
    cash = 1_000_000.0
    broker = SimulatedBroker(cash, config)
    sign = -1 if short else 1
    closed: dict[str, tuple] = {}  # order id -> (status, qty, filled) once closed
    entries: list = []
    cancel_at: dict[str, int] = {}
    for k, b in enumerate(_bars(moves)):
        broker.begin_bar(b.ts)
        n_fills = len(broker.fills)
        broker.process_bar(b, k)
        broker.mark(SYM, b.close)
        # participation: the bar's fills together stay within the cap
        if participation is not None:
            taken = sum(f.qty for f in broker.fills[n_fills:])
            assert taken <= participation * b.volume + 1e-9
        for order in broker.orders.values():
            assert order.filled_qty <= order.qty + 1e-9, order
            if order.status is OrderStatus.FILLED:
                assert order.filled_qty == pytest.approx(order.qty, abs=1e-9)
            state = (order.status, order.qty, order.filled_qty)
            if order.id in closed:
                assert closed[order.id] == state, f"closed order {order.id} rewritten"
            elif not order.is_open:
                closed[order.id] = state
        # each bracket: its open legs cover exactly what its entry bought and legs did not sell
        total = 0.0
        for entry in entries:
            legs = [o for o in broker.orders.values() if o.parent_id == entry.id]
            exposure = entry.filled_qty - sum(leg.filled_qty for leg in legs)
            assert exposure >= -1e-9
            total += exposure
            live = [leg for leg in legs if leg.is_open]
            if exposure <= 1e-9:
                assert not live, "legs left open on a closed position"
                continue
            kinds = sorted(leg.request.type.value for leg in live)
            want = sorted(
                ([] if entry.request.take_profit is None else ["limit"])
                + ([] if entry.request.stop_loss is None else ["stop"])
            )
            assert kinds == want, f"bracket {entry.id} unprotected: open legs {kinds}"
            for leg in live:
                assert leg.remaining == pytest.approx(exposure, abs=1e-9)
                assert leg.side is entry.side.opposite
        position = broker.position(SYM).qty
        assert position == pytest.approx(sign * total, abs=1e-9)
        assert sign * position >= -1e-9, "the position flipped"
        # cash + positions accounting from the fills alone
        exp_cash = cash - sum(f.side.sign * f.qty * f.price + f.commission for f in broker.fills)
        assert broker.cash == pytest.approx(exp_cash, rel=1e-12, abs=1e-6)
        # new brackets and cancellations of working entries
        for entry in entries:
            if cancel_at.get(entry.id) == k:
                broker.cancel(entry.id)
        for spec in order_lists[k] if k < len(order_lists) else []:
            try:
                request = _request(spec, b.close, short)
            except ModelError:
                continue
            entry = broker.submit(request, b.ts, k)
            if entry.status is OrderStatus.REJECTED:
                continue
            entries.append(entry)
            if spec["cancel_after"] is not None:
                cancel_at[entry.id] = k + spec["cancel_after"]
