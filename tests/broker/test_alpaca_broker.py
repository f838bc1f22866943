"""The Alpaca paper adapter driven through the loopback Alpaca server."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

import pytest

from alphaswarm.broker.alpaca import AlpacaPaperBroker, kit_status
from alphaswarm.broker.base import Broker, BrokerAuthError, BrokerError, UpdateKind
from alphaswarm.model import OrderRequest, OrderStatus, OrderType, Side
from tests.broker.alpaca_server import API_KEY, SECRET_KEY
from tests.broker.conftest import wait_for


def buy(symbol: str = "AAPL", qty: float = 10, **kw) -> OrderRequest:
    return OrderRequest(symbol, Side.BUY, qty, **kw)


def updates_until(broker, predicate, what: str):
    """Poll the broker's updates until ``predicate(all updates so far)`` holds."""
    seen = []

    def check():
        seen.extend(broker.poll_updates())
        return predicate(seen)

    wait_for(check, what=what)
    return seen


def _get(server, path: str):
    req = urllib.request.Request(
        server.http + path, headers={"APCA-API-KEY-ID": API_KEY, "APCA-API-SECRET-KEY": SECRET_KEY}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_loopback_records_parse_with_the_sdk_models(make_broker, trading_server):
    """The server's orders, events, account and positions validate as alpaca-py's models."""
    from alpaca.trading.models import Order, Position, TradeAccount, TradeUpdate

    broker = make_broker()
    order = broker.submit(buy())
    trading_server.fill("aw-r1-o1", 10, 190.25)
    Order(**_get(trading_server, f"/v2/orders/{broker.broker_order_id(order.id)}"))
    TradeAccount(**_get(trading_server, "/v2/account"))
    Position(**_get(trading_server, "/v2/positions")[0])
    for message in trading_server.sent:
        TradeUpdate(**message["data"])


def test_fills_arrive_on_the_stream_and_map_onto_the_order_lifecycle(make_broker, trading_server):
    broker = make_broker()
    assert isinstance(broker, Broker)
    order = broker.submit(buy(qty=10))
    assert order.status is OrderStatus.ACCEPTED
    assert order.id == "r1-o1"
    server_order = trading_server.order_by_cid("aw-r1-o1")
    assert broker.broker_order_id(order.id) == server_order["id"]
    trading_server.fill("aw-r1-o1", 4, 190.0)
    trading_server.fill("aw-r1-o1", 6, 191.0)
    seen = updates_until(broker, lambda u: any(x.kind is UpdateKind.FILLED for x in u), "fill")
    kinds = [u.kind for u in seen]
    assert kinds == [UpdateKind.ACCEPTED, UpdateKind.PARTIALLY_FILLED, UpdateKind.FILLED]
    assert [u.status for u in seen] == ["accepted", "partially_filled", "filled"]
    fills = [u.fill for u in seen if u.fill is not None]
    assert [(f.qty, f.price) for f in fills] == [(4.0, 190.0), (6.0, 191.0)]
    assert all(u.broker_order_id == server_order["id"] for u in seen)
    assert order.status is OrderStatus.FILLED and order.filled_qty == 10
    assert order.avg_fill_price == pytest.approx(190.6)
    assert broker.positions()["AAPL"].qty == 10
    assert broker.account().cash == pytest.approx(100_000 - 1906)


def test_a_repeated_fill_event_gives_one_fill(make_broker, trading_server):
    broker = make_broker()
    broker.submit(buy(qty=5))
    trading_server.fill("aw-r1-o1", 5, 100.0)
    updates_until(broker, lambda u: any(x.kind is UpdateKind.FILLED for x in u), "fill")
    trading_server.replay_last()
    broker.submit(buy("MSFT", qty=1))  # a later event on the same stream: the replay came first
    updates_until(broker, lambda u: any(x.order.symbol == "MSFT" for x in u), "MSFT accepted")
    assert len(broker.fills) == 1
    assert broker.positions()["AAPL"].qty == 5


def test_a_late_partial_fill_event_does_not_reopen_a_filled_order(make_broker, trading_server):
    broker = make_broker()
    order = broker.submit(buy(qty=10))
    trading_server.fill("aw-r1-o1", 4, 190.0)
    trading_server.fill("aw-r1-o1", 6, 191.0)
    updates_until(broker, lambda u: not order.is_open, "fill")
    trading_server.replay_last(back=2)  # the partial fill, again and late
    broker.submit(buy("MSFT", qty=1))
    seen = updates_until(broker, lambda u: any(x.order.symbol == "MSFT" for x in u), "MSFT")
    assert [u.order.symbol for u in seen] == ["MSFT"]
    assert order.status is OrderStatus.FILLED and order.filled_qty == 10
    assert len(broker.fills) == 2


def test_a_broker_rejection_carries_the_brokers_reason(make_broker, trading_server):
    trading_server.refuse_orders["TSLA"] = (403, 40310000, "insufficient buying power")
    broker = make_broker()
    order = broker.submit(buy("TSLA", qty=1000))
    assert order.status is OrderStatus.REJECTED
    assert order.reason_code == "broker_rejected"
    assert "insufficient buying power" in order.reason and "HTTP 403" in order.reason
    (update,) = broker.poll_updates()
    assert update.kind is UpdateKind.REJECTED and "insufficient buying power" in update.reason
    assert broker.available  # a rejection is an answer: the broker still takes orders


def test_rejected_and_expired_events_after_acceptance(make_broker, trading_server):
    broker = make_broker()
    first = broker.submit(buy(qty=1))
    second = broker.submit(buy("MSFT", qty=1, type=OrderType.LIMIT, limit_price=300.0))
    trading_server.reject("aw-r1-o1")
    trading_server.expire("aw-r1-o2")
    seen = updates_until(broker, lambda u: not first.is_open and not second.is_open, "closing")
    kinds = {u.order.id: u.kind for u in seen if u.kind is not UpdateKind.ACCEPTED}
    assert kinds == {"r1-o1": UpdateKind.REJECTED, "r1-o2": UpdateKind.EXPIRED}
    assert (first.status, first.reason_code) == (OrderStatus.REJECTED, "broker_rejected")
    assert first.reason == "rejected by alpaca after acceptance"
    assert (second.status, second.reason_code) == (OrderStatus.CANCELLED, "expired")


def test_a_connection_dropped_after_the_broker_took_the_order_does_not_submit_twice(
    make_broker, trading_server
):
    trading_server.drop_after_accept = 1
    broker = make_broker(stream=False)
    order = broker.submit(buy(qty=3))
    assert order.status is OrderStatus.ACCEPTED
    assert trading_server.hits["POST /v2/orders"] == 1
    assert trading_server.hits["GET /v2/orders:by_client_order_id"] == 1
    assert trading_server.open_count() == 1
    assert broker.broker_order_id(order.id) == trading_server.order_by_cid("aw-r1-o1")["id"]


def test_a_connection_dropped_before_the_broker_took_the_order_submits_once_more(
    make_broker, trading_server
):
    trading_server.drop_before_accept = 1
    broker = make_broker(stream=False)
    order = broker.submit(buy(qty=3))
    assert order.status is OrderStatus.ACCEPTED
    assert trading_server.hits["POST /v2/orders"] == 2
    assert trading_server.open_count() == 1


def test_a_resubmission_clashing_with_the_first_submission_adopts_it(make_broker, trading_server):
    trading_server.drop_after_accept = 1  # the order lands, its answer is lost
    trading_server.lookup_misses = 1  # and the first look-up does not see it yet
    broker = make_broker(stream=False)
    order = broker.submit(buy(qty=3))
    assert order.status is OrderStatus.ACCEPTED, order.reason
    assert trading_server.hits["POST /v2/orders"] == 2  # the second got "must be unique"
    assert trading_server.open_count() == 1
    assert broker.broker_order_id(order.id) == trading_server.order_by_cid("aw-r1-o1")["id"]


def test_a_silent_broker_leaves_the_order_unconfirmed_and_refuses_new_orders(
    make_broker, trading_server
):
    trading_server.drop_before_accept = 10
    broker = make_broker(stream=False, retries=2)
    order = broker.submit(buy(qty=3))
    assert order.status is OrderStatus.NEW and order.reason_code == "broker_unconfirmed"
    assert not broker.available
    refused = broker.submit(buy(qty=1))
    assert refused.status is OrderStatus.REJECTED and refused.reason_code == "broker_unavailable"
    assert trading_server.hits["POST /v2/orders"] == 3  # the refused order never went out
    trading_server.drop_before_accept = 0
    broker.reconcile()
    assert broker.available
    assert order.status is OrderStatus.REJECTED  # the broker never got it: known now
    assert broker.submit(buy(qty=1)).status is OrderStatus.ACCEPTED


def test_a_stream_dropped_mid_order_neither_loses_nor_duplicates_a_fill(
    make_broker, trading_server
):
    broker = make_broker()
    order = broker.submit(buy(qty=10))
    connections = trading_server.connections
    trading_server.drop_streams()
    trading_server.fill("aw-r1-o1", 10, 50.0)  # nobody listening: this event is lost
    wait_for(lambda: trading_server.connections > connections and trading_server.listening(),
             what="the stream to reconnect")  # fmt: skip
    assert all(u.kind is UpdateKind.ACCEPTED for u in broker.poll_updates())
    assert order.is_open
    broker.sync_orders()  # what the stream missed, read over REST
    (update,) = broker.poll_updates()
    assert update.kind is UpdateKind.FILLED and update.fill.qty == 10 and update.fill.price == 50
    trading_server.replay_last()  # the lost event arrives late after all
    broker.submit(buy("MSFT", qty=1))
    updates_until(broker, lambda u: any(x.order.symbol == "MSFT" for x in u), "MSFT accepted")
    assert len(broker.fills) == 1 and broker.positions()["AAPL"].qty == 10
    assert trading_server.hits["POST /v2/orders"] == 2


def test_cancel_all_cancels_every_open_order_with_a_timed_confirmation(make_broker, trading_server):
    trading_server.cancel_delay = 0.05
    broker = make_broker()
    orders = [broker.submit(buy(s, qty=1, type=OrderType.LIMIT, limit_price=1.0))
              for s in ("AAPL", "MSFT", "NVDA")]  # fmt: skip
    done = broker.submit(buy("AMD", qty=1))
    trading_server.fill("aw-r1-o4", 1, 120.0)
    updates_until(broker, lambda u: not done.is_open, "AMD filled")
    confirmations = broker.cancel_all("kill switch")
    assert sorted(c.order_id for c in confirmations) == [o.id for o in orders]
    for c in confirmations:
        assert c.confirmed and c.status == "cancelled", c
        assert c.broker_order_id == broker.broker_order_id(c.order_id)
        assert c.seconds > 0
    assert all(o.status is OrderStatus.CANCELLED for o in orders)
    assert trading_server.open_count() == 0
    assert broker.available and broker.open_orders() == []


def test_cancel_all_confirms_by_reading_orders_back_without_the_stream(make_broker, trading_server):
    trading_server.cancel_delay = 0.1  # pending_cancel first: the first read is too early
    broker = make_broker(stream=False)
    orders = [broker.submit(buy(s, qty=1, type=OrderType.LIMIT, limit_price=1.0)) for s in "AB"]
    confirmations = broker.cancel_all("kill switch")
    assert [(c.order_id, c.confirmed, c.status) for c in confirmations] == [
        (o.id, True, "cancelled") for o in orders
    ]
    assert all(c.seconds >= 0.1 for c in confirmations)
    assert trading_server.hits["GET /v2/orders/"] == 0  # (paths carry the id)
    reads = sum(n for k, n in trading_server.hits.items() if k.startswith("GET /v2/orders/"))
    assert reads >= 4  # at least one read too early and one confirming, per order
    assert all(o.status is OrderStatus.CANCELLED for o in orders)


def test_cancel_all_against_a_silent_broker_fails_closed(make_broker, trading_server):
    broker = make_broker(stream=False, timeout=1.0)
    order = broker.submit(buy(qty=1, type=OrderType.LIMIT, limit_price=1.0))
    trading_server.hang_cancels = True
    (confirmation,) = broker.cancel_all("kill switch")
    assert not confirmation.confirmed and confirmation.order_id == order.id
    assert "no answer" in confirmation.detail
    assert not broker.available
    assert broker.submit(buy(qty=1)).reason_code == "broker_unavailable"


def test_a_restart_reads_back_open_orders_and_positions(make_broker, trading_server):
    first = make_broker()
    partial = first.submit(buy(qty=10, type=OrderType.LIMIT, limit_price=150.0))
    first.submit(buy("MSFT", qty=2))
    first.submit(buy("NVDA", qty=5, type=OrderType.LIMIT, limit_price=90.0))
    trading_server.fill("aw-r1-o1", 4, 149.5)
    trading_server.fill("aw-r1-o2", 2, 410.0)
    trading_server.call(lambda: trading_server.new_order(
        {"symbol": "AMZN", "side": "buy", "type": "market"}, "placed-by-hand", 1))  # fmt: skip
    first.close()

    second = make_broker()
    report = second.reconcile()
    adopted = {o.id: o for o in report.adopted}
    assert sorted(adopted) == ["r1-o1", "r1-o3"]
    assert adopted["r1-o1"].status is OrderStatus.PARTIALLY_FILLED
    assert adopted["r1-o1"].filled_qty == 4 and adopted["r1-o1"].request.limit_price == 150.0
    assert adopted["r1-o3"].request.type is OrderType.LIMIT
    assert report.foreign == [trading_server.order_by_cid("placed-by-hand")["id"]]
    assert report.other_runs == []
    other_run = make_broker("r2-", stream=False).reconcile()  # another run of the kit
    assert sorted(other_run.other_runs) == sorted(
        trading_server.order_by_cid(c)["id"] for c in ("aw-r1-o1", "aw-r1-o3")
    )
    assert report.positions == {"AAPL": 4.0, "MSFT": 2.0}
    assert second.broker_order_id("r1-o1") == first.broker_order_id(partial.id)
    assert second.poll_updates() == []  # reading back is not news
    assert second.submit(buy("AMD", qty=1)).id == "r1-o4"  # ids continue: no client id clash
    trading_server.fill("aw-r1-o1", 6, 149.0)  # the adopted order keeps filling
    seen = updates_until(second, lambda u: any(x.kind is UpdateKind.FILLED for x in u), "fill")
    fill = next(u.fill for u in seen if u.fill is not None)
    assert fill.qty == 6 and second.positions()["AAPL"].qty == 10


def test_replace_keeps_our_id_and_follows_the_new_broker_order(make_broker, trading_server):
    broker = make_broker()
    order = broker.submit(buy(qty=5, type=OrderType.LIMIT, limit_price=100.0))
    old_id = broker.broker_order_id(order.id)
    broker.replace(order.id, qty=8, limit_price=101.0)
    new_id = broker.broker_order_id(order.id)
    assert new_id != old_id and order.qty == 8 and order.request.limit_price == 101.0
    assert trading_server.call(lambda: trading_server.orders[old_id]["status"]) == "replaced"
    restarted = make_broker(stream=False)  # a restart finds the replacement as ours
    (adopted,) = restarted.reconcile().adopted
    assert (adopted.id, adopted.qty, adopted.request.limit_price) == ("r1-o1", 8, 101.0)
    assert restarted.broker_order_id("r1-o1") == new_id
    assert trading_server.order_by_cid("aw-r1-o1-r1")["id"] == new_id
    trading_server.call(lambda: trading_server._fill(new_id, 8, 100.5))
    updates_until(broker, lambda u: not order.is_open, "fill of the replacement")
    assert order.status is OrderStatus.FILLED and order.filled_qty == 8


def test_orders_wait_for_market_hours(make_broker, trading_server):
    sunday = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
    broker = make_broker(stream=False, calendar="equities", clock=lambda: sunday)
    order = broker.submit(buy())
    assert order.status is OrderStatus.REJECTED and order.reason_code == "market_closed"
    assert "next open 2026-12-07" in order.reason
    assert trading_server.hits["POST /v2/orders"] == 0


def test_keys_come_only_from_the_environment(monkeypatch, trading_server):
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET_KEY", raising=False)
    with pytest.raises(BrokerError, match="ALPACA_API_KEY, ALPACA_SECRET_KEY"):
        AlpacaPaperBroker("r1-", urls=trading_server.urls, stream=False)
    monkeypatch.setenv("ALPACA_API_KEY", API_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET_KEY)
    broker = AlpacaPaperBroker("r1-", urls=trading_server.urls, stream=False, calendar="24x7")
    try:
        assert SECRET_KEY not in repr(broker) and API_KEY not in repr(broker)
        order = broker.submit(buy())
        assert SECRET_KEY not in json.dumps(order.to_dict())
    finally:
        broker.close()


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("new", 0, (OrderStatus.ACCEPTED, "")),
        ("accepted", 0, (OrderStatus.ACCEPTED, "")),
        ("pending_cancel", 2, (OrderStatus.PARTIALLY_FILLED, "partial")),
        ("partially_filled", 2, (OrderStatus.PARTIALLY_FILLED, "partial")),
        ("filled", 5, (OrderStatus.FILLED, "")),
        ("canceled", 0, (OrderStatus.CANCELLED, "broker_cancelled")),
        ("expired", 0, (OrderStatus.CANCELLED, "expired")),
        ("rejected", 0, (OrderStatus.REJECTED, "broker_rejected")),
    ],
)
def test_alpaca_states_map_onto_the_kit_lifecycle(status, filled, expected):
    assert kit_status(status, filled) == expected


def test_an_unknown_alpaca_state_is_an_error():
    with pytest.raises(BrokerError, match="unknown order status 'bogus'"):
        kit_status("bogus")


def test_refused_keys_are_named_and_refuse_orders(monkeypatch, trading_server):
    monkeypatch.setenv("ALPACA_API_KEY", "PKWRONG")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "wrong-secret")
    broker = AlpacaPaperBroker("r1-", urls=trading_server.urls, stream=False, calendar="24x7")
    try:
        with pytest.raises(BrokerAuthError, match=r"\$ALPACA_API_KEY/\$ALPACA_SECRET_KEY"):
            broker.reconcile()
        order = broker.submit(buy())
        assert order.status is OrderStatus.REJECTED and order.reason_code == "broker_auth"
        assert "wrong-secret" not in order.reason
        assert not broker.available
        assert trading_server.open_count() == 0
    finally:
        broker.close()


def test_a_bracket_order_goes_to_alpaca_with_its_exit_legs(make_broker, trading_server):
    from alpaca.trading.models import Order as SdkOrder

    broker = make_broker()
    entry = broker.submit(buy(qty=5, take_profit=110.0, stop_loss=95.0))
    assert entry.status is OrderStatus.ACCEPTED
    sent = trading_server.order_by_cid("aw-r1-o1")
    assert sent["order_class"] == "bracket"
    assert [(leg["type"], leg["limit_price"], leg["stop_price"]) for leg in sent["legs"]] == [
        ("limit", "110", None),
        ("stop", None, "95"),
    ]
    SdkOrder(**sent)  # the loopback's bracket record is what alpaca-py parses
    tp, sl = (o for o in broker.orders.values() if o.parent_id == entry.id)
    assert (tp.request.type, tp.request.limit_price, tp.side) == (OrderType.LIMIT, 110.0, Side.SELL)
    assert (sl.request.type, sl.request.stop_price) == (OrderType.STOP, 95.0)
    assert tp.oco_group == sl.oco_group == entry.id
    assert broker.broker_order_id(tp.id) == sent["legs"][0]["id"]
    trading_server.fill("aw-r1-o1", 5, 100.0)
    trading_server.fill(trading_server.leg_cid("aw-r1-o1", 0), 5, 110.0)
    seen = updates_until(
        broker, lambda u: any(x.order is sl and x.kind is UpdateKind.CANCELLED for x in u), "oco"
    )
    fills = [(u.order.id, u.fill.qty, u.fill.price) for u in seen if u.fill is not None]
    assert fills == [(entry.id, 5.0, 100.0), (tp.id, 5.0, 110.0)]
    assert tp.status is OrderStatus.FILLED and sl.status is OrderStatus.CANCELLED
    assert broker.positions() == {}
    assert trading_server.open_count() == 0


def test_one_exit_leg_goes_as_an_oto_order(make_broker, trading_server):
    broker = make_broker()
    entry = broker.submit(buy(qty=2, stop_loss=90.0))
    sent = trading_server.order_by_cid("aw-r1-o1")
    assert sent["order_class"] == "oto" and len(sent["legs"]) == 1
    (leg,) = (o for o in broker.orders.values() if o.parent_id == entry.id)
    assert leg.request.stop_price == 90.0 and leg.oco_group is None
