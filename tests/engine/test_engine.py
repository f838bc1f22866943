"""Engine: the bar loop's stages, pre-trade risk, halts, the order gate, bad signals."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from alphaswarm.engine.broker import BrokerConfig, SimulatedBroker
from alphaswarm.engine.loop import Engine, History
from alphaswarm.model import ModelError, OrderRequest, OrderStatus
from alphaswarm.risk.limits import RiskDecision, RiskLimits
from alphaswarm.strategies import Strategy
from tests.engine.helpers import SYM, bar


class Scripted(Strategy):
    """Runs ``script[i](ctx)`` on the i-th bar; returns what it returns as the signal."""

    name: ClassVar[str] = "scripted"

    def validate(self) -> None:
        self.script: dict[int, Any] = {}
        self.calls = 0
        self.fills: list = []
        self.started = self.stopped = 0

    def on_start(self, ctx) -> None:
        self.started += 1

    def on_stop(self, ctx) -> None:
        self.stopped += 1

    def on_bar(self, bar, ctx):
        i = self.calls
        self.calls += 1
        action = self.script.get(i)
        return action(ctx) if callable(action) else action

    def on_fill(self, fill, ctx) -> None:
        self.fills.append(fill)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def __call__(self, stage: str, message: str, extras: dict) -> None:
        self.events.append((stage, message, extras))

    def stages(self) -> list[str]:
        return [e[0] for e in self.events]

    def take(self) -> list[str]:
        out = self.stages()
        self.events.clear()
        return out

    def of(self, stage: str) -> list[dict]:
        return [e[2] for e in self.events if e[0] == stage]


def make(
    script: dict[int, Any] | None = None,
    cash: float = 100_000.0,
    risk: RiskLimits | None = None,
    params: dict | None = None,
    **kw,
):
    strategy = Scripted(**(params or {"qty": 10}))
    strategy.script = script or {}
    config = BrokerConfig(**kw.pop("broker", {}))
    rec = Recorder()
    engine = Engine(strategy, SimulatedBroker(cash, config), risk, listener=rec, **kw)
    return engine, strategy, rec


def run(engine: Engine, closes: list[float], start: int = 0, **kw) -> None:
    for i, c in enumerate(closes, start):
        engine.step([bar(i, c, **kw)])


# ------------------------------------------------------------------ stages


def test_stages_of_a_signal_and_its_fill():
    engine, strategy, rec = make({0: "buy"})
    engine.step([bar(0, 100)])
    assert rec.take() == ["bar.received", "signal.emitted", "order.placed", "equity.update"]
    engine.step([bar(1, 101, 102, 100, 101.5)])
    assert rec.stages() == ["bar.received", "order.filled", "equity.update"]
    [filled] = rec.of("order.filled")
    assert filled["fill"]["price"] == 101.0 and filled["fill"]["qty"] == 10
    assert filled["order"]["status"] == "filled"
    assert filled["cash"] == pytest.approx(100_000 - 1_010)
    [eq] = rec.of("equity.update")
    assert eq["equity"] == pytest.approx(100_000 + 5)
    assert strategy.started == 1 and [f.qty for f in strategy.fills] == [10]
    engine.finish()
    engine.finish()
    assert strategy.stopped == 1


def test_signal_event_extras():
    engine, _, rec = make({0: "buy"})
    engine.step([bar(0, 50)])
    [sig] = rec.of("signal.emitted")
    assert sig == {"signal": "buy", "symbol": SYM, "target_qty": 10.0, "price": 50.0,
                   "signal_no": 1}  # fmt: skip
    [placed] = rec.of("order.placed")
    assert placed["order"]["side"] == "buy" and placed["order"]["qty"] == 10


def test_no_listener_no_events_same_result():
    with_listener, _, _ = make({0: "buy", 3: "flat"})
    silent = Engine(Scripted(qty=10), SimulatedBroker(100_000.0))
    silent.strategy.script = {0: "buy", 3: "flat"}
    closes = [100, 101, 103, 99, 98, 97]
    run(with_listener, closes)
    run(silent, closes)
    assert [f.to_dict() for f in silent.broker.fills] == [
        f.to_dict() for f in with_listener.broker.fills
    ]
    assert silent.equity_values == with_listener.equity_values


def test_market_order_from_a_signal_fills_on_the_next_open():
    engine, _, _ = make({0: "buy"})
    engine.step([bar(0, 100, 105, 95, 104)])
    assert not engine.broker.fills
    engine.step([bar(1, 106, 107, 105, 106)])
    [fill] = engine.broker.fills
    assert fill.price == 106 and fill.ts == bar(1, 1).ts


def test_sell_signal_goes_flat_without_shorting_and_short_with_it():
    engine, _, _ = make({0: "buy", 2: "sell"})
    run(engine, [100] * 4)
    assert engine.broker.position(SYM).qty == 0
    engine, _, _ = make({0: "buy", 2: "sell"}, broker={"allow_short": True})
    run(engine, [100] * 4)
    assert engine.broker.position(SYM).qty == -10


def test_equity_curve_recorded_per_step():
    engine, _, _ = make({0: "buy"})
    run(engine, [100, 100, 110, 90])
    assert engine.equity_values == pytest.approx([100_000, 100_000, 100_100, 99_900])
    assert engine.bars_in_market == 3
    summary = engine.summary()
    assert summary["bars_seen"] == 4 and summary["num_fills"] == 1
    assert summary["total_pnl"] == pytest.approx(-100)
    assert summary["max_drawdown"] == pytest.approx(200 / 100_100)


def test_multi_symbol_group_is_one_step():
    engine, strategy, _ = make({0: lambda ctx: ctx.buy(1, "B") and None})
    engine.step([bar(0, 10, symbol="A"), bar(0, 20, symbol="B")])
    assert engine.bar_index == 0 and engine.bars_seen == 2 and strategy.calls == 2
    engine.step([bar(1, 11, symbol="A"), bar(1, 21, symbol="B")])
    assert engine.broker.position("B").qty == 1
    assert engine.broker.equity == pytest.approx(100_000)


# ---------------------------------------------------------------- context


def test_context_helpers():
    seen: dict[str, Any] = {}

    def look(ctx):
        seen["history"] = ctx.history(3).tolist()
        seen["highs"] = ctx.history(2, "high").tolist()
        seen["pos"] = ctx.position().qty
        seen["now"] = ctx.now
        seen["cash"], seen["equity"] = ctx.cash, ctx.equity
        ctx.target_position(5)
        ctx.target_position(5)  # net of the open order: nothing more
        seen["open"] = [o.qty for o in ctx.open_orders(SYM)]

    engine, _, _ = make({3: look})
    run(engine, [100, 101, 102, 103])
    assert seen["history"] == [101, 102, 103]
    assert seen["highs"] == [102, 103]
    assert seen["pos"] == 0 and seen["now"] == bar(3, 1).ts
    assert seen["cash"] == seen["equity"] == 100_000
    assert seen["open"] == [5]
    with pytest.raises(ModelError, match=r"^n: must be in 1\.\.500"):
        engine.ctx.history(501)
    with pytest.raises(ModelError, match=r"^field: 'vwap'"):
        engine.ctx.history(1, "vwap")


def test_context_cancel_and_flat():
    orders = {}

    def place(ctx):
        orders["limit"] = ctx.buy(1, type="limit", limit_price=50, time_in_force="gtc")

    engine, _, rec = make({0: lambda ctx: ctx.buy(3) and None, 1: place})
    engine.strategy.script[2] = lambda ctx: ctx.cancel(orders["limit"].id)
    engine.strategy.script[3] = lambda ctx: ctx.flat() and None
    run(engine, [100] * 5)
    assert orders["limit"].status is OrderStatus.CANCELLED
    assert orders["limit"].reason_code == "strategy_cancel"
    assert engine.broker.position(SYM).qty == 0
    assert "order.cancelled" in rec.stages()


def test_history_ring_wraps():
    h = History(3)
    for i in range(10):
        h.push(bar(i, 10 + i))
    assert h.get(SYM, 3).tolist() == [17, 18, 19]
    assert h.get("NONE", 2).size == 0


# -------------------------------------------------------------- pre-trade risk


def test_risk_denial_emits_order_rejected_with_limit():
    engine, _, rec = make({0: "buy"}, risk=RiskLimits(max_order_qty=5, universe=[SYM]))
    engine.step([bar(0, 100)])
    assert rec.stages() == ["bar.received", "signal.emitted", "order.rejected", "equity.update"]
    [rej] = rec.of("order.rejected")
    assert (rej["limit"], rej["value"], rej["threshold"]) == ("max_order_qty", 10, 5)
    assert rej["reason_code"] == "risk_denied"
    assert engine.risk_events[0]["action"] == "denied"
    assert not engine.broker.orders


def test_position_limits_see_the_brokers_holdings():
    engine, _, rec = make({0: "buy", 2: lambda ctx: ctx.buy(10) and None})
    engine.risk = RiskLimits(max_position_qty=15, universe=[SYM])
    run(engine, [100] * 4)
    assert engine.broker.position(SYM).qty == 10
    [rej] = rec.of("order.rejected")
    assert rej["limit"] == "max_position_qty" and rej["value"] == 20


def test_max_orders_per_minute_through_the_engine():
    def five(ctx):
        for _ in range(5):
            ctx.buy(1)

    engine, _, rec = make({0: five, 1: five}, risk=RiskLimits(max_orders_per_minute=4))
    engine.step([bar(0, 100)])
    assert len(engine.broker.orders) == 4
    [rej] = rec.of("order.rejected")
    assert (rej["limit"], rej["value"], rej["threshold"]) == ("max_orders_per_minute", 5, 4)
    # a minute later the orders of bar 0 have left the 60 s window
    engine.step([bar(1, 100)])
    assert len(engine.broker.orders) == 8


def test_broker_rejection_is_reported():
    engine, _, rec = make({0: lambda ctx: ctx.sell(1) and None})
    engine.step([bar(0, 100)])
    [rej] = rec.of("order.rejected")
    assert rej["reason_code"] == "short_disabled"


# ------------------------------------------------------------------ order gate


def test_order_gate_raising_fails_closed():
    def broken():
        raise RuntimeError("store down")

    engine, _, rec = make({0: "buy"}, order_gate=broken)
    engine.step([bar(0, 100)])
    assert engine.trading_mode() == "frozen"
    [rej] = rec.of("order.rejected")
    assert rej["limit"] == "frozen"
    assert not engine.broker.orders


def test_order_gate_reduce_only():
    mode = {"value": None}
    engine, _, rec = make(
        {0: "buy", 2: lambda ctx: ctx.buy(1) and None, 3: "flat"},
        order_gate=lambda: mode["value"],
    )
    run(engine, [100, 100])
    mode["value"] = "reduce_only"
    run(engine, [100, 100, 100], start=2)
    assert [r["limit"] for r in rec.of("order.rejected")] == ["reduce_only"]
    assert engine.broker.position(SYM).qty == 0


def test_order_gate_frozen():
    engine, _, rec = make({0: "buy"}, order_gate=lambda: "frozen")
    engine.step([bar(0, 100)])
    assert rec.of("order.rejected")[0]["limit"] == "frozen"


# ------------------------------------------------------------------------ halts


def halting_run(on_breach: str):
    def setup(ctx):
        ctx.buy(100)
        ctx.buy(1, type="limit", limit_price=50, time_in_force="gtc")

    risk = RiskLimits(max_drawdown_pct=0.05, on_breach=on_breach, universe=[SYM])
    engine, strategy, rec = make({0: setup}, cash=20_000, risk=risk)
    engine.step([bar(0, 100)])
    engine.step([bar(1, 100)])  # the market buy fills at 100
    rec.events.clear()
    engine.step([bar(2, 95, 96, 89, 90)])  # equity 19_000: drawdown 5 % ... not above
    assert engine.halted is None
    engine.step([bar(3, 90, 91, 85, 85)])  # equity 18_500: 7.5 % -> halt
    return engine, strategy, rec


def test_halt_flattens_and_cancels_open_orders():
    engine, strategy, rec = halting_run("flatten")
    assert engine.halted is not None and engine.halted.limit == "max_drawdown_pct"
    stages = rec.stages()
    # causal order: the halt, then the cancellation and the flattening fill it causes
    assert stages[-3:] == ["risk.halted", "order.cancelled", "order.filled"]
    [halt] = rec.of("risk.halted")
    assert halt["limit"] == "max_drawdown_pct"
    assert halt["value"] == pytest.approx(0.075)
    assert halt["threshold"] == 0.05
    assert halt["action"]["on_breach"] == "flatten"
    assert halt["action"]["positions_flattened"] == [SYM]
    assert len(halt["action"]["orders_cancelled"]) == 1
    assert not engine.broker.open_orders
    assert engine.broker.position(SYM).qty == 0
    assert engine.broker.cash == pytest.approx(18_500)
    assert engine.equity_values[-1] == pytest.approx(18_500)
    assert engine.risk_events[-1]["action"] == "halted"
    # after a halt the strategy is not called and nothing new is placed
    calls = strategy.calls
    engine.step([bar(4, 80)])
    assert strategy.calls == calls
    assert engine.trading_mode() == "halted"
    assert engine.place(OrderRequest(SYM, "buy", 1)) is None


def test_halt_hold_keeps_positions():
    engine, _, rec = halting_run("hold")
    [halt] = rec.of("risk.halted")
    assert halt["action"] == {
        "orders_cancelled": halt["action"]["orders_cancelled"],
        "positions_flattened": [],
        "on_breach": "hold",
        "mode": "cancel",
    }
    assert halt["mode"] == "cancel" and engine.halt_action == halt["action"]
    assert len(halt["action"]["orders_cancelled"]) == 1
    assert "order.filled" not in rec.stages()
    assert engine.broker.position(SYM).qty == 100
    assert not engine.broker.open_orders


def test_daily_loss_halt_through_the_engine():
    risk = RiskLimits(max_daily_loss=300, on_breach="hold")
    engine, _, rec = make({0: "buy"}, risk=risk, params={"qty": 100})
    run(engine, [100, 100, 98])  # -200 today
    assert engine.halted is None
    engine.step([bar(3, 96.5)])  # -350
    assert engine.halted.limit == "max_daily_loss"
    assert rec.of("risk.halted")[0]["value"] == pytest.approx(350)


def test_halt_direct_call_returns_action():
    engine, _, _ = make({0: "buy"})
    run(engine, [100, 100])
    action = engine.halt(RiskDecision("manual", 1, 0, "operator"))
    assert action["positions_flattened"] == [SYM]


# ---------------------------------------------------------------- bad signals


@pytest.mark.parametrize("signal", ["long", 1, "BUY"])
def test_bad_signal_raises_a_readable_error(signal):
    engine, _, _ = make({0: signal})
    with pytest.raises(ModelError, match=r"strategy 'scripted' returned .*; a signal is one of"):
        engine.step([bar(0, 100)])


def test_history_window_arrays_are_numpy():
    engine, _, _ = make({})
    run(engine, [1, 2, 3])
    assert isinstance(engine.ctx.history(2, symbol=SYM), np.ndarray)


def test_trailing_stop_from_the_engine_anchors_on_the_last_close():
    def trail(ctx):
        ctx.buy(5, type="trailing_stop", trail_pct=0.05, time_in_force="gtc")

    engine, _, _ = make({0: trail})
    engine.step([bar(0, 100)])
    [order] = engine.broker.orders.values()
    assert order.trail_anchor == 100.0  # the symbol has never been traded
    engine.step([bar(1, 101, 106, 100, 104)])
    assert order.status is OrderStatus.FILLED
    assert engine.broker.fills[0].price == pytest.approx(105.0)
