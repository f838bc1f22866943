"""A result's fills and orders frames, built a column at a time, equal the per-row dicts."""

from __future__ import annotations

import pandas as pd

from alphaswarm.engine.broker import BrokerConfig, SimulatedBroker
from alphaswarm.research.tables import FILL_COLUMNS, fills_frame, orders_frame
from tests.engine.helpers import SYM, Driver, bar


def traded_broker() -> SimulatedBroker:
    """Market, limit, stop and bracket orders; partial fills, cancels and rejects."""
    d = Driver(SimulatedBroker(100_000.0, BrokerConfig(max_participation=0.5)))
    d.step(bar(0, 100, v=100))
    d.submit(SYM, "buy", 30, "market", tag="m")
    d.submit(SYM, "buy", 100, "limit", limit_price=100, time_in_force="gtc",
             take_profit=105, stop_loss=95, tag="br")  # fmt: skip
    d.submit(SYM, "sell", 10, "stop", stop_price=80, tag="s")
    d.step(bar(1, 100, 101, 99, 100, v=100))
    d.step(bar(2, 104, 106, 103, 105, v=100))
    d.submit(SYM, "sell", 5, "limit", limit_price=200, time_in_force="day")
    d.step(bar(3, 101, 102, 99, 100, v=100))
    d.step(bar(4, 96, 97, 90, 91, v=1_000))
    return d.broker


def test_fills_frame_equals_the_rows_of_each_fills_dict():
    broker = traded_broker()
    assert len(broker.fills) >= 4
    rows = pd.DataFrame([f.to_dict() for f in broker.fills], columns=FILL_COLUMNS)
    pd.testing.assert_frame_equal(fills_frame(broker.fills, times=False), rows, check_exact=True)
    rows["filled_at"] = pd.to_datetime(rows["filled_at"], utc=True)
    pd.testing.assert_frame_equal(fills_frame(broker.fills), rows, check_exact=True)


def test_orders_frame_equals_the_rows_of_each_orders_dict():
    orders = list(traded_broker().orders.values())
    assert {o.status.value for o in orders} >= {"filled", "cancelled"}
    assert any(o.request.limit_price is None for o in orders)
    assert any(o.parent_id is not None for o in orders)
    rows = pd.DataFrame([o.to_dict() for o in orders])
    pd.testing.assert_frame_equal(orders_frame(orders), rows, check_exact=True)


def test_no_fills_or_orders_give_the_frames_a_run_without_trades_had():
    pd.testing.assert_frame_equal(fills_frame([]), pd.DataFrame([], columns=FILL_COLUMNS))
    pd.testing.assert_frame_equal(orders_frame([]), pd.DataFrame([]))
