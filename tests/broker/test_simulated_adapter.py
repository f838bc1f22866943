"""The simulated broker behind the broker interface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alphaswarm.broker.base import Broker, BrokerError, UpdateKind
from alphaswarm.broker.simulated import SimulatedBrokerAdapter
from alphaswarm.engine.broker import SimulatedBroker
from alphaswarm.model import Bar, OrderRequest, OrderStatus, OrderType, Side

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def bar(i: int, price: float, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, T0 + timedelta(minutes=i), price, price + 1, price - 1, price, 1e6)


@pytest.fixture
def broker():
    adapter = SimulatedBrokerAdapter(SimulatedBroker(100_000, id_prefix="s-"))
    adapter.process_bar(bar(0, 100.0), 0)
    return adapter


def test_the_simulated_broker_reports_through_the_interface(broker):
    assert isinstance(broker, Broker)
    order = broker.submit(OrderRequest("AAPL", Side.BUY, 10))
    assert order.status is OrderStatus.ACCEPTED
    assert broker.broker_order_id(order.id) == order.id
    broker.process_bar(bar(1, 101.0), 1)
    kinds = [(u.kind, u.status) for u in broker.poll_updates()]
    assert kinds == [(UpdateKind.ACCEPTED, "accepted"), (UpdateKind.FILLED, "filled")]
    assert broker.positions()["AAPL"].qty == 10
    assert broker.account().cash == pytest.approx(100_000 - 1010)
    assert broker.poll_updates() == []


def test_simulated_rejection_cancel_all_and_expiry(broker):
    rejected = broker.submit(OrderRequest("AAPL", Side.SELL, 5))  # shorting is off
    assert rejected.status is OrderStatus.REJECTED
    limits = [
        broker.submit(OrderRequest("AAPL", Side.BUY, 1, OrderType.LIMIT, limit_price=50.0))
        for _ in range(2)
    ]
    confirmations = broker.cancel_all("kill switch")
    assert [c.order_id for c in confirmations] == [o.id for o in limits]
    assert all(c.confirmed and c.status == "cancelled" for c in confirmations)
    day = broker.submit(OrderRequest("AAPL", Side.BUY, 1, OrderType.LIMIT, limit_price=50.0))
    broker.process_bar(bar(1, 100.0), 1)
    broker.process_bar(bar(60 * 24, 100.0), 2)  # the next day: the day order expires
    kinds = [u.kind for u in broker.poll_updates() if u.order is day]
    assert kinds == [UpdateKind.ACCEPTED, UpdateKind.EXPIRED]


def test_simulated_replace_changes_the_open_order(broker):
    order = broker.submit(OrderRequest("AAPL", Side.BUY, 1, OrderType.LIMIT, limit_price=50.0))
    broker.replace(order.id, qty=3, limit_price=99.5)
    broker.process_bar(bar(1, 100.0), 1)
    assert order.status is OrderStatus.FILLED and order.filled_qty == 3
    assert order.avg_fill_price == 99.5
    with pytest.raises(BrokerError, match="not an open order"):
        broker.replace(order.id, qty=4)
