"""RiskLimits: every pre-trade denial and post-bar breach names limit, value and threshold."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import pytest

from alphaswarm.model import ModelError, OrderRequest, Position
from alphaswarm.risk.limits import AccountState, RiskDecision, RiskLimits
from tests.engine.helpers import SYM, T0

OTHER = "ABC"


def state(
    equity: float = 100_000.0,
    held: dict[str, float] | None = None,
    prices: dict[str, float] | None = None,
    **kw,
) -> AccountState:
    prices = prices or {SYM: 100.0, OTHER: 100.0}
    positions = {}
    for sym, qty in (held or {}).items():
        positions[sym] = Position(sym, qty=qty, avg_price=prices[sym], last_price=prices[sym])
    return AccountState(equity=equity, cash=equity, positions=positions, prices=prices, **kw)


def limits(**kw) -> RiskLimits:
    kw.setdefault("universe", [SYM])
    return RiskLimits(**kw)


def buy(qty: float, symbol: str = SYM, **kw) -> OrderRequest:
    return OrderRequest(symbol, "buy", qty, **kw)


def sell(qty: float, symbol: str = SYM, **kw) -> OrderRequest:
    return OrderRequest(symbol, "sell", qty, **kw)


def denied(decision: RiskDecision | None, limit: str, value: float, threshold: float) -> str:
    assert decision is not None, f"expected a {limit} denial"
    assert decision.limit == limit
    assert decision.value == pytest.approx(value)
    assert decision.threshold == pytest.approx(threshold)
    assert decision.to_dict()["limit"] == limit
    return decision.message


# ---------------------------------------------------------------------- pre-trade


def test_no_limits_nothing_denied():
    assert limits().check_order(buy(1_000_000), state()) is None


def test_max_order_qty():
    risk = limits(max_order_qty=100)
    assert risk.check_order(buy(100), state()) is None
    msg = denied(risk.check_order(buy(101), state()), "max_order_qty", 101, 100)
    assert msg == "order qty 101 > 100"


def test_max_order_notional_uses_limit_price_then_last():
    risk = limits(max_order_notional=10_000)
    assert risk.check_order(buy(100), state()) is None
    denied(risk.check_order(buy(101), state()), "max_order_notional", 10_100, 10_000)
    denied(
        risk.check_order(buy(100, type="limit", limit_price=101), state()),
        "max_order_notional",
        10_100,
        10_000,
    )


def test_max_position_qty_counts_held_and_pending():
    risk = limits(max_position_qty=500)
    st = state(held={SYM: 300})
    assert risk.check_order(buy(200), st) is None
    denied(risk.check_order(buy(201), st), "max_position_qty", 501, 500)
    st.pending[SYM] = 100.0
    denied(risk.check_order(buy(101), st), "max_position_qty", 501, 500)


def test_max_position_qty_applies_to_shorts():
    risk = limits(max_position_qty=500)
    denied(risk.check_order(sell(600), state()), "max_position_qty", 600, 500)


def test_max_position_notional():
    risk = limits(max_position_notional=20_000)
    st = state(held={SYM: 150})
    denied(risk.check_order(buy(60), st), "max_position_notional", 21_000, 20_000)


def test_max_position_pct():
    risk = limits(max_position_pct=0.25)
    assert risk.check_order(buy(250), state()) is None
    denied(risk.check_order(buy(300), state()), "max_position_pct", 0.30, 0.25)


def test_max_gross_exposure_includes_other_symbols():
    risk = limits(max_gross_exposure=1.0, universe=[SYM, OTHER])
    st = state(held={OTHER: 500})
    assert risk.check_order(buy(500), st) is None
    denied(risk.check_order(buy(600), st), "max_gross_exposure", 1.1, 1.0)


def test_max_concentration_pct_with_two_symbols():
    risk = limits(max_concentration_pct=0.6, universe=[SYM, OTHER])
    st = state(held={OTHER: 100})
    assert risk.check_order(buy(150), st) is None  # 15k of 25k = 0.6
    denied(risk.check_order(buy(300), st), "max_concentration_pct", 0.75, 0.6)


def test_max_concentration_pct_off_with_one_symbol():
    risk = limits(max_concentration_pct=0.6)
    assert risk.check_order(buy(300), state()) is None


def test_max_orders_per_minute_counts_session_time():
    risk = limits(max_orders_per_minute=3)
    now = T0 + timedelta(minutes=5)
    times = deque([now - timedelta(seconds=s) for s in (90, 50, 20, 0)])
    st = state(now=now, order_times=times)
    # the order 90 s ago falls out of the window: 3 in the last minute
    msg = denied(risk.check_order(buy(1), st), "max_orders_per_minute", 4, 3)
    assert msg == "orders per minute 4 > 3"
    assert len(st.order_times) == 3
    st.now = now + timedelta(seconds=45)  # only the order at `now` is inside the window
    assert risk.check_order(buy(1), st) is None


def test_price_collar_bps():
    risk = limits(price_collar_bps=200)
    assert risk.check_order(buy(1, type="limit", limit_price=101.9), state()) is None
    msg = denied(
        risk.check_order(buy(1, type="limit", limit_price=103), state()),
        "price_collar_bps",
        300,
        200,
    )
    assert "103.00 is 300 bps from the last close 100.00" in msg
    denied(
        risk.check_order(sell(1, type="stop", stop_price=95), state(held={SYM: 1})),
        "price_collar_bps",
        500,
        200,
    )
    assert risk.check_order(buy(1), state()) is None  # market orders are not collared


def test_universe_refuses_other_symbols():
    risk = limits(universe=[SYM])
    decision = risk.check_order(buy(1, OTHER), state())
    assert decision is not None and decision.limit == "universe"
    assert OTHER in decision.message


def test_no_price_yet_is_denied():
    decision = limits().check_order(buy(1), state(prices={OTHER: 1.0}))
    assert decision is not None and decision.limit == "no_price"


def test_reducing_orders_pass_position_limits():
    risk = limits(
        max_position_qty=100,
        max_position_notional=1_000,
        max_position_pct=0.01,
        max_gross_exposure=0.01,
    )
    st = state(held={SYM: 1_000})  # already far above every position limit
    assert risk.check_order(sell(400), st) is None
    denied(risk.check_order(buy(1), st), "max_position_qty", 1_001, 100)


def test_order_limits_apply_to_reducing_orders_too():
    risk = limits(max_order_qty=100)
    denied(risk.check_order(sell(400), state(held={SYM: 1_000})), "max_order_qty", 400, 100)


def test_reduce_only_mode():
    risk = limits()
    st = state(held={SYM: 100})
    assert risk.check_order(sell(50), st, mode="reduce_only") is None
    msg = denied(risk.check_order(buy(10), st, mode="reduce_only"), "reduce_only", 110, 100)
    assert "would not shrink the position 100" in msg
    flat = state()
    assert risk.check_order(buy(1), flat, mode="reduce_only").limit == "reduce_only"


@pytest.mark.parametrize("mode", ["frozen", "halted"])
def test_frozen_and_halted_deny_everything(mode):
    decision = limits().check_order(sell(1), state(held={SYM: 10}), mode=mode)
    assert decision is not None and decision.limit == mode
    assert decision.message == f"trading is {mode}: no new orders"


# ----------------------------------------------------------------------- post-bar


def test_max_drawdown_pct_breach():
    risk = limits(max_drawdown_pct=0.10)
    st = state(equity=100_000)
    st.update(110_000, 0, T0)
    st.update(99_500, 0, T0 + timedelta(minutes=1))
    assert risk.check_state(st) is None  # 9.5 % from the 110k peak
    st.update(98_000, 0, T0 + timedelta(minutes=2))
    breach = risk.check_state(st)
    assert breach is not None and breach.limit == "max_drawdown_pct"
    assert breach.value == pytest.approx(12_000 / 110_000)
    assert breach.threshold == 0.10
    assert breach.message.startswith("drawdown ")
    assert st.max_drawdown == pytest.approx(12_000 / 110_000)


def test_max_daily_loss_breach_and_reset_on_a_new_day():
    risk = limits(max_daily_loss=5_000)
    st = state(equity=100_000)
    st.update(100_000, 0, T0)
    st.update(96_000, 0, T0 + timedelta(minutes=1))
    assert risk.check_state(st) is None
    st.update(94_000, 0, T0 + timedelta(minutes=2))
    breach = risk.check_state(st)
    assert breach is not None and breach.limit == "max_daily_loss"
    assert (breach.value, breach.threshold) == (6_000, 5_000)
    # the next trading day starts from the previous day's last equity
    st.update(90_000, 0, T0 + timedelta(days=1))
    assert st.day_start_equity == 94_000
    assert risk.check_state(st) is None
    st.update(88_900, 0, T0 + timedelta(days=1, minutes=1))
    assert risk.check_state(st).value == pytest.approx(5_100)


def test_max_daily_loss_pct_breach():
    risk = limits(max_daily_loss_pct=0.02)
    st = state(equity=50_000)
    st.update(50_000, 0, T0)
    st.update(49_100, 0, T0 + timedelta(minutes=1))
    assert risk.check_state(st) is None
    st.update(48_900, 0, T0 + timedelta(minutes=2))
    breach = risk.check_state(st)
    assert breach is not None and breach.limit == "max_daily_loss_pct"
    assert breach.value == pytest.approx(0.022)
    assert breach.threshold == 0.02


def test_no_breach_without_limits():
    st = state(equity=100_000)
    st.update(1_000, 0, T0)
    assert limits().check_state(st) is None


def test_utilisation_lists_set_limits():
    risk = limits(max_position_qty=1_000, max_drawdown_pct=0.2)
    rows = {r["limit"]: r for r in risk.utilisation(state(held={SYM: 250}))}
    assert set(rows) == {"max_position_qty", "max_drawdown_pct"}
    assert rows["max_position_qty"]["used"] == pytest.approx(0.25)


# ------------------------------------------------------------------------ from_spec


def test_from_spec_round_trip():
    spec = {
        "max_order_notional": 50_000,
        "max_position_qty": 1_000,
        "max_drawdown_pct": 0.2,
        "max_daily_loss": 5_000,
        "max_orders_per_minute": 30.0,
        "kill_switch_attached": True,
    }
    risk = RiskLimits.from_spec(spec, ["DEMO"])
    assert risk.universe == ["DEMO"]
    assert risk.max_orders_per_minute == 30 and isinstance(risk.max_orders_per_minute, int)
    out = risk.to_spec()
    assert out["max_order_notional"] == 50_000 and out["on_breach"] == "flatten"
    assert out["kill_switch_attached"] is True


def test_from_spec_names_unknown_keys_and_allowed():
    with pytest.raises(ModelError, match=r"^risk: unknown key\(s\) max_oder_qty; allowed: "):
        RiskLimits.from_spec({"max_oder_qty": 1}, [SYM])


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"max_order_qty": "10"}, r"^risk\.max_order_qty: expected a number"),
        ({"max_order_qty": True}, r"^risk\.max_order_qty: expected a number"),
        ({"max_daily_loss": -5}, r"^risk\.max_daily_loss: must be a finite number > 0"),
        ({"max_position_qty": float("inf")}, r"^risk\.max_position_qty: must be a finite"),
        ({"max_orders_per_minute": 2.5}, r"^risk\.max_orders_per_minute: expected a whole"),
        ({"max_drawdown_pct": 1.5}, r"max_drawdown_pct"),
        ({"on_breach": "explode"}, r"on_breach"),
        ({"kill_switch_attached": "yes"}, r"kill_switch_attached"),
    ],
)
def test_from_spec_bad_values_named(spec, pattern):
    with pytest.raises(ModelError, match=pattern):
        RiskLimits.from_spec(spec, [SYM])


def test_equity_limits_fail_closed_when_equity_is_gone():
    risk = limits(max_position_pct=0.5)
    decision = risk.check_order(buy(1), state(equity=0.0))
    assert decision is not None and decision.limit == "max_position_pct"
    assert "undefined (equity <= 0)" in decision.message


def test_limits_changed_after_construction_apply_to_the_next_order():
    """Thresholds are compiled once; setting a limit or the universe later recompiles them."""
    risk = limits(max_order_qty=10)
    assert risk.check_order(buy(20), state()).limit == "max_order_qty"
    risk.max_order_qty = 50
    assert risk.check_order(buy(20), state()) is None
    assert risk.check_order(buy(1, OTHER), state()).limit == "universe"
    risk.param.update(max_order_qty=5, universe=[SYM, OTHER])
    assert risk.check_order(buy(20), state()).threshold == 5
    assert risk.check_order(buy(1, OTHER), state()) is None
    with pytest.raises(ValueError):
        risk.max_order_qty = -1  # refused by the parameter: the compiled limit stays
    assert risk.check_order(buy(6), state()).threshold == 5
