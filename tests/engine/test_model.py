"""Domain model: constructors reject nonsense and name the field; position accounting."""

from __future__ import annotations

import math

import pytest

from alphaswarm.model import (
    Bar,
    ModelError,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    to_utc,
)
from tests.engine.helpers import SYM, T0


@pytest.mark.parametrize("qty", [0, -1, -0.5, math.nan, math.inf])
def test_order_request_rejects_bad_qty(qty):
    with pytest.raises(ModelError, match=r"^qty: "):
        OrderRequest(SYM, "buy", qty)


@pytest.mark.parametrize("qty", ["10", None, True])
def test_order_request_rejects_non_numeric_qty(qty):
    with pytest.raises(ModelError, match=r"^qty: expected a number"):
        OrderRequest(SYM, "buy", qty)


@pytest.mark.parametrize("price", [math.nan, math.inf, -math.inf, 0, -1.0])
def test_limit_price_must_be_positive_and_finite(price):
    with pytest.raises(ModelError, match=r"^limit_price: "):
        OrderRequest(SYM, "buy", 1, "limit", limit_price=price)


@pytest.mark.parametrize("price", [math.nan, math.inf, 0])
def test_stop_price_must_be_positive_and_finite(price):
    with pytest.raises(ModelError, match=r"^stop_price: "):
        OrderRequest(SYM, "sell", 1, "stop", stop_price=price)


def test_limit_order_requires_limit_price():
    with pytest.raises(ModelError, match=r"^limit_price: a price is required"):
        OrderRequest(SYM, "buy", 1, "limit")


def test_stop_order_requires_stop_price():
    with pytest.raises(ModelError, match=r"^stop_price: a price is required"):
        OrderRequest(SYM, "sell", 1, "stop")


def test_stop_limit_requires_both_prices():
    with pytest.raises(ModelError, match=r"^stop_price: "):
        OrderRequest(SYM, "buy", 1, "stop_limit", limit_price=101)
    with pytest.raises(ModelError, match=r"^limit_price: "):
        OrderRequest(SYM, "buy", 1, "stop_limit", stop_price=101)


def test_prices_not_allowed_on_the_wrong_type():
    with pytest.raises(ModelError, match=r"^limit_price: not allowed on a market order"):
        OrderRequest(SYM, "buy", 1, limit_price=100)
    with pytest.raises(ModelError, match=r"^stop_price: not allowed on a limit order"):
        OrderRequest(SYM, "buy", 1, "limit", limit_price=100, stop_price=99)


def test_bad_side_names_field_and_choices():
    with pytest.raises(ModelError, match=r"^side: 'long' is not one of buy, sell"):
        OrderRequest(SYM, "long", 1)


def test_bad_type_names_field_and_choices():
    with pytest.raises(ModelError, match=r"^type: 'iceberg' is not one of market, limit"):
        OrderRequest(SYM, "buy", 1, "iceberg")


def test_bad_time_in_force_named():
    with pytest.raises(ModelError, match=r"^time_in_force: 'fok'"):
        OrderRequest(SYM, "buy", 1, time_in_force="fok")


def test_strings_are_coerced_case_insensitively():
    req = OrderRequest(SYM, "BUY", 3, "Limit", limit_price=10, time_in_force="GTC")
    assert req.side is Side.BUY
    assert req.type is OrderType.LIMIT
    assert req.time_in_force is TimeInForce.GTC
    assert isinstance(req.qty, float) and req.qty == 3.0


@pytest.mark.parametrize("symbol", ["", "   ", None, 5])
def test_symbol_required(symbol):
    with pytest.raises(ModelError, match=r"^symbol: "):
        OrderRequest(symbol, "buy", 1)


def test_trailing_stop_needs_trail_pct_in_unit_interval():
    with pytest.raises(ModelError, match=r"^trail_pct: required"):
        OrderRequest(SYM, "sell", 1, "trailing_stop")
    with pytest.raises(ModelError, match=r"^trail_pct: must be in \(0, 1\)"):
        OrderRequest(SYM, "sell", 1, "trailing_stop", trail_pct=1.5)
    with pytest.raises(ModelError, match=r"^trail_pct: only allowed"):
        OrderRequest(SYM, "sell", 1, trail_pct=0.1)
    assert OrderRequest(SYM, "sell", 1, "trailing_stop", trail_pct=0.05).trail_pct == 0.05


def test_buy_bracket_needs_take_profit_above_stop_loss():
    ok = OrderRequest(SYM, "buy", 1, take_profit=110, stop_loss=90)
    assert ok.is_bracket
    with pytest.raises(ModelError, match=r"^take_profit/stop_loss: for a buy bracket .* above"):
        OrderRequest(SYM, "buy", 1, take_profit=90, stop_loss=110)


def test_sell_bracket_needs_take_profit_below_stop_loss():
    assert OrderRequest(SYM, "sell", 1, take_profit=90, stop_loss=110).is_bracket
    with pytest.raises(ModelError, match=r"^take_profit/stop_loss: for a sell bracket .* below"):
        OrderRequest(SYM, "sell", 1, take_profit=110, stop_loss=90)


def test_bracket_legs_validated_as_prices():
    with pytest.raises(ModelError, match=r"^take_profit: "):
        OrderRequest(SYM, "buy", 1, take_profit=math.nan)
    with pytest.raises(ModelError, match=r"^stop_loss: "):
        OrderRequest(SYM, "buy", 1, stop_loss=-5)
    assert not OrderRequest(SYM, "buy", 1).is_bracket


def test_tag_must_be_string():
    with pytest.raises(ModelError, match=r"^tag: "):
        OrderRequest(SYM, "buy", 1, tag=3)


@pytest.mark.parametrize("field", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", [math.nan, math.inf, 0.0, -1.0])
def test_bar_rejects_bad_prices(field, value):
    prices = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0}
    prices[field] = value
    with pytest.raises(ModelError, match=rf"^{field}: "):
        Bar(SYM, T0, volume=10, **prices)


def test_bar_rejects_inconsistent_range_and_bad_volume():
    with pytest.raises(ModelError, match=r"^high/low: "):
        Bar(SYM, T0, 100, 99, 98, 100, 1)
    with pytest.raises(ModelError, match=r"^volume: "):
        Bar(SYM, T0, 100, 101, 99, 100, -1)
    with pytest.raises(ModelError, match=r"^volume: "):
        Bar(SYM, T0, 100, 101, 99, 100, math.nan)


def test_bar_timestamps_are_utc():
    b = Bar(SYM, "2024-01-02T14:30:00Z", 1, 1, 1, 1)
    assert b.ts == T0
    assert to_utc(T0.replace(tzinfo=None)) == T0
    assert to_utc(T0.timestamp()) == T0
    with pytest.raises(ModelError, match=r"^ts: "):
        to_utc("yesterday")


def test_order_lifecycle_properties():
    req = OrderRequest(SYM, "buy", 10)
    order = Order("o1", req, T0, 0)
    assert order.status is OrderStatus.NEW and order.is_open
    assert order.remaining == 10
    order.filled_qty = 4
    order.status = OrderStatus.PARTIALLY_FILLED
    assert order.is_open and order.remaining == 6
    for done in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED):
        order.status = done
        assert not order.is_open
    d = order.to_dict()
    assert d["order_id"] == "o1" and d["side"] == "buy" and d["type"] == "market"


def test_position_average_price_and_partial_close():
    pos = Position(SYM)
    assert pos.apply_fill(Side.BUY, 10, 100.0) == 0.0
    assert pos.apply_fill(Side.BUY, 10, 110.0) == 0.0
    assert pos.qty == 20 and pos.avg_price == pytest.approx(105.0)
    realized = pos.apply_fill(Side.SELL, 5, 120.0)
    assert realized == pytest.approx(75.0)
    assert pos.qty == 15 and pos.avg_price == pytest.approx(105.0)
    pos.last_price = 100.0
    assert pos.unrealized_pnl == pytest.approx(-75.0)
    assert pos.market_value == pytest.approx(1500.0)


def test_position_flip_realizes_then_reopens_at_fill_price():
    pos = Position(SYM)
    pos.apply_fill(Side.BUY, 10, 100.0)
    realized = pos.apply_fill(Side.SELL, 15, 90.0)
    assert realized == pytest.approx(-100.0)
    assert pos.qty == -5 and pos.avg_price == 90.0
    realized = pos.apply_fill(Side.BUY, 5, 80.0)
    assert realized == pytest.approx(50.0)
    assert pos.qty == 0 and pos.avg_price == 0
    assert pos.realized_pnl == pytest.approx(-50.0)
