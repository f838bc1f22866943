"""SimulatedBroker fill model, driven bar by bar with hand-made bars."""

from __future__ import annotations

import pytest

from alphaswarm.engine.broker import BrokerConfig, IntrabarRule, SimulatedBroker
from alphaswarm.model import ModelError, OrderStatus, Side
from tests.engine.helpers import SYM, Driver, bar, ts_of


def make(cash: float = 100_000.0, **config) -> Driver:
    return Driver(SimulatedBroker(cash, BrokerConfig(**config)))


def fills_of(d: Driver, order_id: str):
    return [f for f in d.broker.fills if f.order_id == order_id]


def long_position(d: Driver, qty: float = 10, price: float = 100.0) -> None:
    """Step to a held position of ``qty`` bought at ``price`` (two bars)."""
    d.step(bar(d.index + 1, price))
    d.submit(SYM, "buy", qty)
    d.step(bar(d.index + 1, price))
    assert d.broker.position(SYM).qty == qty


# ------------------------------------------------------------------------- config


def test_config_validation_names_the_field():
    with pytest.raises(ModelError, match=r"^intrabar_rule: 'random' is not one of pessimistic"):
        BrokerConfig(intrabar_rule="random")
    with pytest.raises(ModelError, match=r"^slippage_bps: "):
        BrokerConfig(slippage_bps=-1)
    with pytest.raises(ModelError, match=r"^max_participation: "):
        BrokerConfig(max_participation=1.5)
    with pytest.raises(ModelError, match=r"^broker: unknown key\(s\) slipage; allowed: "):
        BrokerConfig.from_dict({"slipage": 1})
    with pytest.raises(ModelError, match=r"^starting_cash: "):
        SimulatedBroker(0)
    assert BrokerConfig().intrabar_rule == IntrabarRule.PESSIMISTIC


# ------------------------------------------------------------------------- market


def test_market_order_never_fills_on_its_placement_bar():
    d = make()
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 10)
    assert order.status is OrderStatus.ACCEPTED
    assert "waiting for the next bar" in d.broker.why_open(order.id)
    # processing the placement bar again must not fill it
    assert d.broker.process_bar(bar(0, 100), 0) == []
    assert order.filled_qty == 0
    d.step(bar(1, 102, 103, 101, 102.5))
    assert order.status is OrderStatus.FILLED
    [fill] = d.broker.fills
    assert fill.price == 102.0
    assert fill.ts == ts_of(1)


@pytest.mark.parametrize(("side", "expected"), [("buy", 100.1), ("sell", 99.9)])
def test_market_slippage_is_adverse(side, expected):
    d = make(slippage_bps=10, allow_short=True)
    d.step(bar(0, 95))
    d.submit(SYM, side, 10)
    d.step(bar(1, 100, 101, 99, 100))
    [fill] = d.broker.fills
    assert fill.price == pytest.approx(expected)
    assert fill.slippage == pytest.approx(0.1 * 10)


# -------------------------------------------------------------------------- limit


def test_limit_buy_fills_at_limit_when_traded_through():
    d = make()
    d.step(bar(0, 102))
    order = d.submit(SYM, "buy", 10, "limit", limit_price=100)
    d.step(bar(1, 101, 102, 99.5, 101))
    assert order.status is OrderStatus.FILLED
    assert d.broker.fills[0].price == 100.0


def test_limit_buy_gap_fills_at_the_better_open():
    d = make()
    d.step(bar(0, 102))
    d.submit(SYM, "buy", 10, "limit", limit_price=100)
    d.step(bar(1, 98, 99, 97, 98.5))
    assert d.broker.fills[0].price == 98.0


def test_limit_buy_not_reached_says_why():
    d = make()
    d.step(bar(0, 102))
    order = d.submit(SYM, "buy", 10, "limit", limit_price=101, time_in_force="gtc")
    d.step(bar(1, 102, 103, 101.2, 102))
    assert order.is_open and not d.broker.fills
    assert d.broker.why_open(order.id) == "limit 101.00 not reached: bar low 101.20"
    assert order.reason_code == "limit_not_reached"


def test_limit_sell_fills_at_limit_gap_and_not_reached():
    d = make(allow_short=True)
    d.step(bar(0, 100))
    through = d.submit(SYM, "sell", 1, "limit", limit_price=105)
    d.step(bar(1, 103, 105.5, 102, 104))
    assert fills_of(d, through.id)[0].price == 105.0

    gap = d.submit(SYM, "sell", 1, "limit", limit_price=105)
    d.step(bar(2, 106, 107, 105.5, 106))
    assert fills_of(d, gap.id)[0].price == 106.0

    miss = d.submit(SYM, "sell", 1, "limit", limit_price=110)
    d.step(bar(3, 106, 109.5, 105, 106))
    assert miss.is_open
    assert d.broker.why_open(miss.id) == "limit 110.00 not reached: bar high 109.50"


# --------------------------------------------------------------------------- stops


def test_stop_buy_triggers_on_range_with_slippage():
    d = make(slippage_bps=10)
    d.step(bar(0, 100))
    d.submit(SYM, "buy", 10, "stop", stop_price=105)
    d.step(bar(1, 103, 106, 102, 104))
    assert d.broker.fills[0].price == pytest.approx(105 * 1.001)


def test_stop_buy_gap_through_fills_at_open():
    d = make()
    d.step(bar(0, 100))
    d.submit(SYM, "buy", 10, "stop", stop_price=105)
    d.step(bar(1, 107, 108, 106, 107))
    assert d.broker.fills[0].price == 107.0


def test_stop_sell_triggers_on_range_and_gap():
    d = make()
    long_position(d, 20, 100)
    ranged = d.submit(SYM, "sell", 10, "stop", stop_price=95)
    d.step(bar(2, 97, 98, 94, 96))
    assert fills_of(d, ranged.id)[0].price == 95.0
    gapped = d.submit(SYM, "sell", 10, "stop", stop_price=95)
    d.step(bar(3, 93, 94, 92, 93))
    assert fills_of(d, gapped.id)[0].price == 93.0


def test_stop_not_triggered_says_why():
    d = make()
    long_position(d)
    order = d.submit(SYM, "sell", 10, "stop", stop_price=95, time_in_force="gtc")
    d.step(bar(2, 97, 98, 95.5, 96))
    assert order.is_open
    assert d.broker.why_open(order.id) == "stop 95.00 not triggered: bar low 95.50"


def test_stop_limit_triggers_and_fills_within_limit():
    d = make()
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 10, "stop_limit", stop_price=105, limit_price=106)
    d.step(bar(1, 103, 105.5, 102, 105))
    assert order.status is OrderStatus.FILLED
    assert d.broker.fills[0].price == 105.0


def test_stop_limit_gapping_beyond_its_limit_waits_as_a_limit():
    d = make()
    d.step(bar(0, 100))
    order = d.submit(
        SYM, "buy", 10, "stop_limit", stop_price=105, limit_price=106, time_in_force="gtc"
    )
    d.step(bar(1, 108, 109, 107, 108))
    assert order.is_open and order.triggered and not d.broker.fills
    assert "beyond limit 106.00" in d.broker.why_open(order.id)
    # a bar that stays above the limit: still waiting, now as a plain limit
    d.step(bar(2, 108, 109, 106.5, 107))
    assert order.is_open
    assert d.broker.why_open(order.id) == "limit 106.00 not reached: bar low 106.50"
    d.step(bar(3, 107, 107.5, 105, 106))
    assert order.status is OrderStatus.FILLED
    assert d.broker.fills[0].price == 106.0


def test_stop_limit_sell_gap_below_limit_waits():
    d = make()
    long_position(d)
    order = d.submit(
        SYM, "sell", 10, "stop_limit", stop_price=95, limit_price=94, time_in_force="gtc"
    )
    d.step(bar(2, 92, 93, 91, 92))
    assert order.is_open and order.triggered
    d.step(bar(3, 93, 94.5, 92, 94))
    assert fills_of(d, order.id)[0].price == 94.0


def test_trailing_stop_follows_the_high_water_mark():
    d = make()
    long_position(d, 10, 100)  # last close 100 anchors the trail
    order = d.submit(SYM, "sell", 10, "trailing_stop", trail_pct=0.10, time_in_force="gtc")
    assert order.trail_anchor == 100.0
    d.step(bar(2, 100, 120, 99, 118))  # stop 90 not hit; anchor -> 120
    assert order.is_open and order.trail_anchor == 120.0
    d.step(bar(3, 115, 116, 109, 110))  # stop 108 not hit; anchor stays 120
    assert order.is_open and order.trail_anchor == 120.0
    d.step(bar(4, 110, 111, 105, 106))  # stop 108 hit on the range
    assert order.status is OrderStatus.FILLED
    assert fills_of(d, order.id)[0].price == pytest.approx(108.0)


def test_trailing_buy_stop_follows_the_low_water_mark():
    d = make(allow_short=True)
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 5, "trailing_stop", trail_pct=0.05, time_in_force="gtc")
    d.step(bar(1, 100, 101, 80, 82))  # stop 105 not hit; anchor -> 80
    assert order.trail_anchor == 80.0
    d.step(bar(2, 83, 85, 82, 84))  # stop 84 hit
    assert fills_of(d, order.id)[0].price == pytest.approx(84.0)


def test_trailing_stop_without_a_price_anchors_on_the_first_bar():
    d = make()
    long_position(d)
    d.broker.positions[SYM].last_price = 0.0  # no price known at submission
    order = d.submit(SYM, "sell", 10, "trailing_stop", trail_pct=0.1, time_in_force="gtc")
    assert order.trail_anchor is None
    d.step(bar(2, 100, 101, 50, 60))  # only anchors, even though the range is wide
    assert order.is_open and order.trail_anchor == 101.0


# ------------------------------------------------------------------ participation


def test_participation_cap_gives_partial_fills_across_bars_gtc():
    d = make(max_participation=0.1)
    d.step(bar(0, 100, v=50))
    order = d.submit(SYM, "buy", 12, time_in_force="gtc")
    d.step(bar(1, 100, v=50))
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_qty == 5 and order.remaining == 7
    assert "capped at 0.1 of bar volume 50" in d.broker.why_open(order.id)
    d.step(bar(2, 101, v=50))
    d.step(bar(3, 102, v=30))
    assert order.status is OrderStatus.FILLED
    assert [f.qty for f in fills_of(d, order.id)] == [5, 5, 2]
    assert order.avg_fill_price == pytest.approx((5 * 100 + 5 * 101 + 2 * 102) / 12)


def test_no_volume_no_fill():
    d = make(max_participation=0.5)
    d.step(bar(0, 100, v=0))
    order = d.submit(SYM, "buy", 3, time_in_force="gtc")
    d.step(bar(1, 100, v=1))
    assert order.is_open and order.filled_qty == 0
    assert order.reason_code == "volume_cap"


def test_day_order_remainder_expires_on_the_next_trading_day():
    d = make(max_participation=0.1)
    d.step(bar(0, 100, v=50))
    order = d.submit(SYM, "buy", 12)  # DAY by default
    d.step(bar(1, 100, v=50))
    assert order.filled_qty == 5 and order.is_open
    events = d.step(bar(0, 100, v=50, day=1))
    assert order.status is OrderStatus.CANCELLED
    assert order.reason_code == "day_expired"
    assert order.reason == "day order expired at the end of 2024-01-02 with 7 unfilled"
    assert [e.kind for e in events] == ["cancelled"]
    assert order.filled_qty == 5


def test_gtc_order_survives_the_day_change():
    d = make()
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 1, "limit", limit_price=90, time_in_force="gtc")
    d.step(bar(0, 100, day=1))
    assert order.is_open


def test_ioc_remainder_is_cancelled_after_the_first_bar():
    d = make(max_participation=0.1)
    d.step(bar(0, 100, v=50))
    order = d.submit(SYM, "buy", 12, time_in_force="ioc")
    d.step(bar(1, 100, v=50))
    assert order.filled_qty == 5
    assert order.status is OrderStatus.CANCELLED and order.reason_code == "ioc_remainder"
    d.step(bar(2, 100, v=50))
    assert order.filled_qty == 5


def test_ioc_limit_not_reached_is_cancelled():
    d = make()
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 1, "limit", limit_price=90, time_in_force="ioc")
    d.step(bar(1, 100, 101, 95, 100))
    assert order.status is OrderStatus.CANCELLED and order.filled_qty == 0


# ---------------------------------------------------------------------- commission


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"commission_per_share": 0.01}, 1.0),  # 100 x 0.01
        ({"commission_bps": 10}, 10.0),  # 10 bps of 10_000
        ({"commission_per_share": 0.01, "commission_min": 5}, 5.0),  # minimum applies
        ({"commission_per_share": 0.1, "commission_min": 5}, 10.0),  # above the minimum
        ({"commission_per_share": 0.01, "commission_bps": 1}, 2.0),
    ],
)
def test_commission_schedule(config, expected):
    d = make(**config)
    d.step(bar(0, 100))
    d.submit(SYM, "buy", 100)
    d.step(bar(1, 100))
    [fill] = d.broker.fills
    assert fill.commission == pytest.approx(expected)
    assert d.broker.cash == pytest.approx(100_000 - 10_000 - expected)
    assert d.broker.total_commission == pytest.approx(expected)
    assert d.broker.realized_pnl == pytest.approx(-expected)


def test_commission_minimum_per_fill_is_paid_by_every_partial_fill():
    d = make(commission_min=1.0, max_participation=0.1, min_commission_per="fill")
    d.step(bar(0, 100, v=20))
    order = d.submit(SYM, "buy", 4, time_in_force="gtc")
    d.step(bar(1, 100, v=20))
    d.step(bar(2, 100, v=20))
    assert [f.commission for f in fills_of(d, order.id)] == [1.0, 1.0]
    assert order.commission == 2.0


def test_commission_minimum_is_per_order_by_default():
    # an order filled in four parts pays the minimum once, not four times
    d = make(commission_min=1.0, max_participation=0.1)
    assert d.broker.config.min_commission_per == "order"
    d.step(bar(0, 100, v=10))
    order = d.submit(SYM, "buy", 4, time_in_force="gtc")
    for i in range(1, 5):
        d.step(bar(i, 100, v=10))
    assert order.status is OrderStatus.FILLED
    assert [f.commission for f in fills_of(d, order.id)] == [1.0, 0.0, 0.0, 0.0]
    assert order.commission == 1.0
    assert d.broker.cash == pytest.approx(100_000 - 400 - 1.0)


@pytest.mark.parametrize(
    ("per", "fees"),
    [
        # 0.3 per share, minimum 5: the fills' fees are 3, 3, 3, 3 (12 in all)
        ("order", [5.0, 1.0, 3.0, 3.0]),  # max(3, 5); then max(6, 5) - 5; then + 3, + 3
        ("fill", [5.0, 5.0, 5.0, 5.0]),
    ],
)
def test_commission_minimum_rule_above_the_minimum(per, fees):
    d = make(commission_per_share=0.3, commission_min=5.0, max_participation=0.1,
             min_commission_per=per)  # fmt: skip
    d.step(bar(0, 100, v=100))
    order = d.submit(SYM, "buy", 40, time_in_force="gtc")
    for i in range(1, 5):
        d.step(bar(i, 100, v=100))
    paid = [f.commission for f in fills_of(d, order.id)]
    assert paid == pytest.approx(fees)
    assert order.commission == pytest.approx(sum(fees))
    assert d.broker.total_commission == pytest.approx(sum(fees))


def test_commission_minimum_rule_is_validated_and_recorded():
    with pytest.raises(ModelError, match=r"^min_commission_per: 'trade' is not one of order, fill"):
        BrokerConfig(min_commission_per="trade")
    assert (
        BrokerConfig.from_dict({"min_commission_per": "fill"}).to_dict()["min_commission_per"]
        == "fill"
    )
    assert BrokerConfig().to_dict()["min_commission_per"] == "order"


# -------------------------------------------------------------------------- shorts


def test_short_refused_at_submit_when_disabled():
    d = make()
    d.step(bar(0, 100))
    order = d.submit(SYM, "sell", 1)
    assert order.status is OrderStatus.REJECTED
    assert order.reason_code == "short_disabled"
    assert "would go short" in order.reason
    assert order not in d.broker.open_orders


def test_short_check_counts_open_sells():
    d = make()
    long_position(d, 10)
    first = d.submit(SYM, "sell", 6)
    second = d.submit(SYM, "sell", 6)
    assert first.status is OrderStatus.ACCEPTED
    assert second.status is OrderStatus.REJECTED and "open sells 6" in second.reason


def test_short_refused_at_fill_when_position_is_gone():
    d = make()
    d.step(bar(0, 100))
    d.submit(SYM, "buy", 10, stop_loss=90)
    d.step(bar(1, 100))
    [sl] = [o for o in d.broker.open_orders if o.parent_id]
    # a plain sell closes the position; the stop-loss child now has nothing to sell
    d.submit(SYM, "sell", 10)
    d.step(bar(2, 100))
    assert d.broker.position(SYM).qty == 0
    d.step(bar(3, 91, 92, 85, 86))
    assert sl.status is OrderStatus.CANCELLED
    assert sl.reason_code == "short_disabled"
    assert d.broker.position(SYM).qty == 0


def test_sell_capped_at_the_held_qty_cancels_its_rest_and_its_oco_sibling():
    d = make()
    d.step(bar(0, 100))
    entry = d.submit(SYM, "buy", 10, take_profit=120, stop_loss=90, tag="br")
    d.step(bar(1, 100))
    tp, sl = children(d, entry)
    d.submit(SYM, "sell", 4)  # reduces the position under the bracket's legs
    d.step(bar(2, 100))
    d.step(bar(3, 92, 93, 88, 89))  # the stop-loss sells the 6 still held
    assert sl.filled_qty == 6
    assert sl.status is OrderStatus.CANCELLED and sl.reason_code == "short_disabled"
    assert "reduced to 6" in sl.reason
    assert tp.status is OrderStatus.CANCELLED and tp.reason_code == "oco_cancelled"
    assert not d.broker.open_orders
    # a new position must not be sold by the stale legs
    d.submit(SYM, "buy", 50)
    d.step(bar(4, 95))
    d.step(bar(5, 100, 125, 99, 121))
    d.step(bar(6, 95, 96, 80, 85))
    assert d.broker.position(SYM).qty == 50


def test_day_order_placed_on_the_last_bar_works_the_next_day():
    d = make()
    d.step(bar(389, 100))  # last minute of day 0
    market = d.submit(SYM, "buy", 1)
    limit = d.submit(SYM, "buy", 1, "limit", limit_price=90)
    d.step(bar(0, 101, day=1))
    assert market.status is OrderStatus.FILLED and d.broker.fills[0].price == 101
    assert limit.is_open
    d.step(bar(1, 100, day=1))
    d.step(bar(0, 100, day=2))
    assert limit.status is OrderStatus.CANCELLED and limit.reason_code == "day_expired"
    assert limit.reason == "day order expired at the end of 2024-01-03 with 1 unfilled"


def test_short_allowed_when_enabled_with_correct_pnl():
    d = make(cash=10_000, allow_short=True)
    d.step(bar(0, 100))
    d.submit(SYM, "sell", 10)
    d.step(bar(1, 100))
    pos = d.broker.position(SYM)
    assert pos.qty == -10 and pos.avg_price == 100
    assert d.broker.cash == pytest.approx(11_000)
    d.step(bar(2, 95))
    assert pos.unrealized_pnl == pytest.approx(50)
    assert d.broker.equity == pytest.approx(10_050)
    d.submit(SYM, "buy", 10)
    d.step(bar(3, 90))
    assert pos.qty == 0 and pos.realized_pnl == pytest.approx(100)
    assert d.broker.cash == pytest.approx(10_100)
    assert d.broker.equity == pytest.approx(10_100)


# ---------------------------------------------------------------------------- cash


def test_insufficient_cash_reduces_and_cancels_the_rest():
    d = make(cash=1_000)
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 25)
    events = d.step(bar(1, 100))
    assert order.filled_qty == 10
    assert order.status is OrderStatus.CANCELLED and order.reason_code == "insufficient_cash"
    assert "reduced to 10" in order.reason
    assert [e.kind for e in events] == ["filled", "cancelled"]
    assert d.broker.cash == pytest.approx(0)


def test_insufficient_cash_counts_commission():
    d = make(cash=1_000, commission_min=5)
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 25)
    d.step(bar(1, 100))
    assert order.filled_qty == 9
    assert d.broker.cash == pytest.approx(1_000 - 900 - 5)
    assert d.broker.cash >= 0


def test_no_cash_cancels_with_a_sentence():
    d = make(cash=50)
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 1)
    d.step(bar(1, 100))
    assert order.status is OrderStatus.CANCELLED
    assert order.reason == "insufficient cash: 1 @ 100.00 needs 100.00, cash 50.00"
    assert d.broker.why_open(order.id).startswith("cancelled: insufficient cash")


def test_margin_allows_negative_cash():
    d = make(cash=1_000, allow_margin=True)
    d.step(bar(0, 100))
    d.submit(SYM, "buy", 20)
    d.step(bar(1, 100))
    assert d.broker.position(SYM).qty == 20 and d.broker.cash == pytest.approx(-1_000)


# ------------------------------------------------------------------------ brackets


def bracket(rule: str = "pessimistic", open2: float = 100.0) -> tuple[Driver, object]:
    d = make(intrabar_rule=rule)
    d.step(bar(0, 100))
    entry = d.submit(SYM, "buy", 10, take_profit=110, stop_loss=90, tag="br")
    assert not [o for o in d.broker.orders.values() if o.parent_id]  # no children yet
    d.step(bar(1, 100, 112, 88, 100))  # entry fills; children must not fill here
    assert entry.status is OrderStatus.FILLED
    d.step(bar(2, open2, 111, 89, 100))  # both legs inside the range
    return d, entry


def children(d: Driver, entry):
    kids = {o.request.tag: o for o in d.broker.orders.values() if o.parent_id == entry.id}
    return kids["br:tp"], kids["br:sl"]


def test_bracket_children_created_after_entry_fill_and_wait_a_bar():
    d = make()
    d.step(bar(0, 100))
    entry = d.submit(SYM, "buy", 10, take_profit=110, stop_loss=90)
    d.step(bar(1, 100, 112, 88, 100))
    kids = [o for o in d.broker.orders.values() if o.parent_id == entry.id]
    assert len(kids) == 2
    assert all(k.is_open and k.filled_qty == 0 for k in kids)
    tp = next(k for k in kids if k.request.limit_price == 110)
    sl = next(k for k in kids if k.request.stop_price == 90)
    assert tp.side is Side.SELL and sl.side is Side.SELL
    assert tp.qty == sl.qty == 10
    assert tp.oco_group == sl.oco_group == entry.id
    assert d.broker.position(SYM).qty == 10


def test_bracket_pessimistic_picks_the_stop_loss():
    d, entry = bracket("pessimistic")
    tp, sl = children(d, entry)
    assert sl.status is OrderStatus.FILLED and sl.avg_fill_price == 90
    assert tp.status is OrderStatus.CANCELLED and tp.reason_code == "oco_cancelled"
    assert d.broker.position(SYM).qty == 0
    assert d.broker.position(SYM).realized_pnl == pytest.approx(-100)


def test_bracket_optimistic_picks_the_take_profit():
    d, entry = bracket("optimistic")
    tp, sl = children(d, entry)
    assert tp.status is OrderStatus.FILLED and tp.avg_fill_price == 110
    assert sl.status is OrderStatus.CANCELLED and sl.reason_code == "oco_cancelled"
    assert d.broker.position(SYM).realized_pnl == pytest.approx(100)


@pytest.mark.parametrize(("open2", "winner"), [(108, "tp"), (92, "sl")])
def test_bracket_open_distance_picks_the_nearer_leg(open2, winner):
    d, entry = bracket("open_distance", open2)
    tp, sl = children(d, entry)
    won, lost = (tp, sl) if winner == "tp" else (sl, tp)
    assert won.status is OrderStatus.FILLED
    assert lost.status is OrderStatus.CANCELLED and lost.reason_code == "oco_cancelled"


def test_bracket_one_leg_fill_cancels_the_sibling():
    d = make()
    d.step(bar(0, 100))
    entry = d.submit(SYM, "buy", 10, take_profit=110, stop_loss=90, tag="br")
    d.step(bar(1, 100))
    d.step(bar(2, 105, 111, 104, 110))
    tp, sl = children(d, entry)
    assert tp.status is OrderStatus.FILLED
    assert sl.status is OrderStatus.CANCELLED
    assert sl.reason == f"one-cancels-other: {tp.id} filled"
    assert not d.broker.open_orders


def test_short_bracket_legs_are_buys():
    d = make(allow_short=True)
    d.step(bar(0, 100))
    entry = d.submit(SYM, "sell", 5, take_profit=90, stop_loss=110, tag="br")
    d.step(bar(1, 100))
    tp, sl = children(d, entry)
    assert tp.side is Side.BUY and sl.side is Side.BUY
    d.step(bar(2, 100, 112, 99, 111))
    assert sl.status is OrderStatus.FILLED and sl.avg_fill_price == 110
    assert d.broker.position(SYM).qty == 0


def test_bracket_children_follow_a_partially_filled_entry():
    d = make(max_participation=0.1)
    d.step(bar(0, 100, v=40))
    entry = d.submit(SYM, "buy", 8, take_profit=120, stop_loss=80, tag="br", time_in_force="gtc")
    d.step(bar(1, 100, v=40))
    tp, sl = children(d, entry)
    assert entry.filled_qty == 4 and tp.qty == sl.qty == 4
    d.step(bar(2, 100, v=40))
    assert entry.status is OrderStatus.FILLED
    assert tp.qty == sl.qty == 8
    assert len([o for o in d.broker.orders.values() if o.parent_id == entry.id]) == 2


# -------------------------------------------------------------------------- cancel


def test_cancel_an_open_order():
    d = make()
    d.step(bar(0, 100))
    order = d.submit(SYM, "buy", 1, "limit", limit_price=90, time_in_force="gtc")
    assert d.broker.cancel(order.id) is order
    assert order.status is OrderStatus.CANCELLED and order.reason_code == "user_cancel"
    assert d.broker.why_open(order.id) == "cancelled: cancelled on request"
    assert d.broker.cancel(order.id) is None
    assert d.broker.cancel("nope") is None
    d.step(bar(1, 85))
    assert not d.broker.fills
    with pytest.raises(KeyError, match="nope"):
        d.broker.why_open("nope")


def test_cancel_all_by_symbol():
    d = make()
    d.step(bar(0, 100))
    d.step(bar(0, 50, symbol="ABC"))
    a = d.submit(SYM, "buy", 1, "limit", limit_price=90)
    b = d.submit("ABC", "buy", 1, "limit", limit_price=40)
    assert d.broker.cancel_all("test", "why", symbol="ABC") == [b]
    assert a.is_open and not b.is_open and b.reason == "why"


# ---------------------------------------------------------------------- accounting


def test_accounting_through_partial_close_and_flip():
    d = make(cash=10_000, allow_short=True)
    d.step(bar(0, 100))
    d.submit(SYM, "buy", 10)
    d.step(bar(1, 100))
    d.submit(SYM, "buy", 10)
    d.step(bar(2, 110))
    pos = d.broker.position(SYM)
    assert pos.qty == 20 and pos.avg_price == pytest.approx(105)
    assert d.broker.cash == pytest.approx(10_000 - 1_000 - 1_100)
    d.submit(SYM, "sell", 5)
    d.step(bar(3, 120))
    assert pos.qty == 15 and pos.realized_pnl == pytest.approx(75)
    d.submit(SYM, "sell", 25)  # closes 15 at 100 (-75) and opens 10 short at 100
    d.step(bar(4, 100))
    assert pos.qty == -10 and pos.avg_price == 100
    assert pos.realized_pnl == pytest.approx(0)
    assert d.broker.cash == pytest.approx(10_000 - 2_100 + 600 + 2_500)
    assert d.broker.equity == pytest.approx(10_000)
    assert d.broker.gross_exposure == pytest.approx(1_000)


def test_fills_never_before_the_bar_after_placement():
    d = make()
    for i in range(5):
        d.step(bar(i, 100 + i, 100 + i + 5, 100 + i - 5, 100 + i))
        d.submit(SYM, "buy", 1, "limit", limit_price=100 + i)
    placed = {o.id: o.created_at for o in d.broker.orders.values()}
    assert d.broker.fills
    for f in d.broker.fills:
        assert f.ts > placed[f.order_id]


def _scripted_run() -> list[dict]:
    d = make(
        slippage_bps=3,
        commission_per_share=0.005,
        commission_min=1,
        max_participation=0.2,
        allow_short=True,
    )
    prices = [100, 101, 99, 103, 98, 97, 104, 106, 102, 100]
    for i, p in enumerate(prices):
        d.step(bar(i, p, p + 2, p - 2, p + 0.5, v=100 + 10 * i))
        if i % 3 == 0:
            d.submit(SYM, "buy", 30, time_in_force="gtc", take_profit=p + 3, stop_loss=p - 3)
        elif i % 3 == 1:
            d.submit(SYM, "sell", 15, "limit", limit_price=p + 1)
        else:
            d.submit(SYM, "buy", 7, "stop", stop_price=p + 1.5)
    return [f.to_dict() for f in d.broker.fills] + [
        {"cash": d.broker.cash, "equity": d.broker.equity}
    ]


def test_deterministic_replay():
    first, second = _scripted_run(), _scripted_run()
    assert len(first) > 5
    assert first == second
