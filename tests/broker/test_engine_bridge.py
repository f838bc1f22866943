"""The unchanged bar engine trading through Alpaca (the loopback) via EngineBroker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alphaswarm.broker.bridge import EngineBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.model import Bar, OrderType
from alphaswarm.risk.limits import RiskLimits
from tests.broker.conftest import wait_for
from tests.engine.test_engine import Scripted

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def bar(i: int, price: float, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, T0 + timedelta(minutes=i), price, price + 1, price - 1, price, 1e6)


def engine_for(broker, script, risk=None, **bridge_options):
    strategy = Scripted()
    strategy.script = script
    frames: list[tuple[str, str, dict]] = []
    bridge = EngineBroker(broker, 100_000, id_prefix="r1-", **bridge_options)
    engine = Engine(strategy, bridge, risk or RiskLimits(), listener=lambda *f: frames.append(f))
    return engine, bridge, frames


def stages(frames, stage):
    return [f for f in frames if f[0] == stage]


def test_fills_from_the_broker_reach_the_engine_and_its_frames(make_broker, trading_server):
    broker = make_broker()
    engine, bridge, frames = engine_for(broker, {0: lambda ctx: ctx.buy(10) and None})
    engine.step([bar(0, 100.0)])
    assert [f[2]["order"]["order_id"] for f in stages(frames, "order.placed")] == ["r1-o1"]
    trading_server.fill("aw-r1-o1", 10, 100.4)
    wait_for(
        lambda: any(m.get("event") == "fill" for m in list(broker._events.queue)),
        what="the fill event",
    )
    engine.step([bar(1, 101.0)])
    (filled,) = stages(frames, "order.filled")
    assert filled[2]["fill"]["price"] == 100.4 and filled[2]["fill"]["qty"] == 10
    assert bridge.positions["AAPL"].qty == 10
    assert bridge.cash == pytest.approx(100_000 - 1004)
    assert engine.strategy.fills[0].price == 100.4
    assert "r1-o1" in bridge.dirty_orders and bridge.fills[0].order_id == "r1-o1"


def test_a_broker_rejection_becomes_an_order_rejected_frame_with_the_reason(
    make_broker, trading_server
):
    trading_server.refuse_orders["AAPL"] = (403, 40310000, "insufficient buying power")
    broker = make_broker()
    engine, bridge, frames = engine_for(broker, {0: lambda ctx: ctx.buy(10) and None})
    engine.step([bar(0, 100.0)])
    (rejected,) = stages(frames, "order.rejected")
    assert "insufficient buying power" in rejected[2]["reason"]
    assert rejected[2]["reason_code"] == "broker_rejected"
    assert bridge.open_orders == []


def test_risk_limits_deny_before_anything_reaches_the_broker(make_broker, trading_server):
    broker = make_broker()
    risk = RiskLimits(max_order_notional=500)
    engine, _, frames = engine_for(broker, {0: lambda ctx: ctx.buy(10) and None}, risk)
    engine.step([bar(0, 100.0)])
    (denied,) = stages(frames, "order.rejected")
    assert denied[2]["reason_code"] == "risk_denied"
    assert trading_server.hits["POST /v2/orders"] == 0


def test_cancel_all_on_halt_cancels_at_the_broker_with_confirmations(make_broker, trading_server):
    trading_server.cancel_delay = 0.02
    broker = make_broker()

    def place(ctx):
        for symbol in ("AAPL", "MSFT"):
            ctx.buy(1, symbol, type=OrderType.LIMIT, limit_price=1.0)

    engine, bridge, frames = engine_for(broker, {0: place})
    engine.step([bar(0, 100.0)])
    cancelled = engine.cancel_all("kill_switch", "kill switch engaged")
    assert sorted(o.id for o in cancelled) == ["r1-o1", "r1-o2"]
    assert all("broker confirmed in" in o.reason for o in cancelled)
    assert [c.confirmed for c in bridge.last_cancel] == [True, True]
    assert len(stages(frames, "order.cancelled")) == 2
    assert trading_server.open_count() == 0 and bridge.open_orders == []
    engine.step([bar(1, 100.0)])  # the cancels are not reported a second time
    assert len(stages(frames, "order.cancelled")) == 2


def test_a_rejection_after_acceptance_becomes_an_order_rejected_frame(make_broker, trading_server):
    broker = make_broker()
    engine, bridge, frames = engine_for(broker, {0: lambda ctx: ctx.buy(10) and None})
    engine.step([bar(0, 100.0)])
    trading_server.reject("aw-r1-o1")
    wait_for(
        lambda: any(m.get("event") == "rejected" for m in list(broker._events.queue)),
        what="the rejected event",
    )
    engine.step([bar(1, 100.0)])
    (rejected,) = stages(frames, "order.rejected")
    assert rejected[2]["order"]["order_id"] == "r1-o1"
    assert rejected[2]["reason_code"] == "broker_rejected"
    assert bridge.open_orders == [] and bridge.pending_qty("AAPL") == 0


def test_flatten_sends_market_orders_and_takes_the_brokers_fills(make_broker, trading_server):
    trading_server.auto_fill = {"AAPL": 100.0}
    broker = make_broker()
    engine, bridge, frames = engine_for(broker, {0: lambda ctx: ctx.buy(10) and None})
    engine.step([bar(0, 100.0)])
    wait_for(lambda: broker._events.qsize() or not broker.orders["r1-o1"].is_open, what="fill")
    trading_server.auto_fill = {"AAPL": 98.5}
    engine.step([bar(1, 99.0)])
    assert bridge.positions["AAPL"].qty == 10
    fills = engine.flatten("kill switch: flatten")
    assert [(f.side.value, f.qty, f.price) for f in fills] == [("sell", 10.0, 98.5)]
    assert bridge.positions["AAPL"].qty == 0
    assert trading_server.call(lambda: float(trading_server.positions["AAPL"]["qty"])) == 0


def test_a_silent_broker_refuses_orders_until_it_answers_again(
    alpaca_keys, trading_server, make_broker
):
    trading_server.drop_before_accept = 3
    broker = make_broker(stream=False, retries=2)

    def buy_each_bar(ctx):
        ctx.buy(1, type=OrderType.LIMIT, limit_price=1.0)

    strategy_script = {i: buy_each_bar for i in range(3)}
    strategy = Scripted()
    strategy.script = strategy_script
    frames: list = []
    bridge = EngineBroker(broker, 100_000, id_prefix="r1-", sync_interval=0)
    engine = Engine(strategy, bridge, RiskLimits(), listener=lambda *f: frames.append(f))
    engine.step([bar(0, 100.0)])  # no answer: the order is unconfirmed
    assert broker.orders["r1-o1"].reason_code == "broker_unconfirmed"
    assert not broker.available
    trading_server.drop_before_accept = 0
    engine.step([bar(1, 100.0)])  # the broker answers again: reconciled, then the new order
    rejected = stages(frames, "order.rejected")
    assert [(f[2]["order"]["order_id"], f[2]["reason_code"]) for f in rejected] == [
        ("r1-o1", "broker_unconfirmed")
    ]
    assert "never reached the broker" in rejected[0][2]["reason"]
    assert broker.available and broker.orders["r1-o2"].status.value == "accepted"
    assert trading_server.open_count() == 1


def test_orders_are_refused_while_the_broker_is_silent(alpaca_keys, trading_server, make_broker):
    trading_server.drop_before_accept = 100
    broker = make_broker(stream=False, retries=0)
    engine, _, frames = engine_for(
        broker,
        {0: lambda ctx: ctx.buy(1) and None, 1: lambda ctx: ctx.buy(1, "MSFT") and None},
        sync_interval=3600,  # no read-back between the two bars
    )
    engine.step([bar(0, 100.0)])
    engine.step([bar(1, 100.0, "MSFT")])
    (refused,) = [
        f for f in stages(frames, "order.rejected") if f[2]["reason_code"] != "broker_unconfirmed"
    ]
    assert refused[2]["reason_code"] == "broker_unavailable"
    assert "broker not answering" in refused[2]["reason"]


@pytest.mark.parametrize("cash", [0, -5, float("nan"), True, "100"])
def test_the_bridge_checks_starting_cash_like_the_simulator(make_broker, cash):
    from alphaswarm.model import ModelError

    with pytest.raises(ModelError, match="starting_cash"):
        EngineBroker(make_broker(stream=False), cash)


def test_a_bracket_entry_and_its_exit_reach_the_engine_from_alpaca(make_broker, trading_server):
    broker = make_broker()
    engine, bridge, frames = engine_for(
        broker, {0: lambda ctx: ctx.buy(10, take_profit=105.0, stop_loss=95.0) and None}
    )
    engine.step([bar(0, 100.0)])
    legs = [o for o in bridge.open_orders if o.parent_id == "r1-o1"]
    assert len(legs) == 2  # the exits Alpaca holds are open orders of the run
    trading_server.fill("aw-r1-o1", 10, 100.0)
    trading_server.fill(trading_server.leg_cid("aw-r1-o1", 1), 10, 95.0)
    wait_for(lambda: broker._events.qsize() >= 5, what="entry fill, legs, exit fill, oco cancel")
    engine.step([bar(1, 95.0)])
    filled = [
        (f[2]["fill"]["order_id"], f[2]["fill"]["price"]) for f in stages(frames, "order.filled")
    ]
    assert filled == [("r1-o1", 100.0), (legs[1].id, 95.0)]
    assert [f[2]["order"]["order_id"] for f in stages(frames, "order.cancelled")] == [legs[0].id]
    assert bridge.positions["AAPL"].qty == 0 and bridge.open_orders == []
    assert bridge.cash == pytest.approx(100_000 - 50)
