"""The ccxt sandbox adapter against a loopback Binance spot testnet."""

from __future__ import annotations

import pytest

pytest.importorskip("ccxt")  # the test extra installs alphaswarm[ccxt]

import alphaswarm as aw  # noqa: E402
from alphaswarm.broker.base import BrokerError, UpdateKind  # noqa: E402
from alphaswarm.broker.ccxt_sandbox import CcxtSandboxBroker  # noqa: E402
from alphaswarm.model import OrderRequest, OrderStatus, OrderType, Side  # noqa: E402
from tests.broker.binance_server import API_KEY, SECRET, BinanceTestnet  # noqa: E402
from tests.session.conftest import demo_bot  # noqa: E402

SYMBOL = "BTC/USDT"


@pytest.fixture
def testnet(monkeypatch):
    monkeypatch.setenv("CCXT_API_KEY", API_KEY)
    monkeypatch.setenv("CCXT_SECRET", SECRET)
    server = BinanceTestnet().start()
    yield server
    server.stop()


def urls(server) -> dict[str, str]:
    return {"public": server.url, "private": server.url}


def limit_buy(qty=0.01, price=50_000.0) -> OrderRequest:
    return OrderRequest(SYMBOL, Side.BUY, qty, OrderType.LIMIT, limit_price=price)


def test_orders_fills_and_cancels_through_the_sandbox(testnet):
    broker = CcxtSandboxBroker("r1-", urls=urls(testnet), timeout=5)
    order = broker.submit(limit_buy())
    assert order.status is OrderStatus.ACCEPTED and order.id == "r1-o1"
    assert broker.broker_order_id(order.id) == "1"
    assert [u.kind for u in broker.poll_updates()] == [UpdateKind.ACCEPTED]
    testnet.fill("aw-r1-o1", 0.004, 49_990.0)
    (partial,) = broker.poll_updates()
    assert partial.kind is UpdateKind.PARTIALLY_FILLED
    assert (partial.fill.qty, partial.fill.price) == (pytest.approx(0.004), pytest.approx(49_990))
    assert broker.poll_updates() == []  # reading the order again adds no fill
    testnet.fill("aw-r1-o1", 0.006, 50_000.0)
    (filled,) = broker.poll_updates()
    assert filled.kind is UpdateKind.FILLED and filled.fill.price == pytest.approx(50_000.0)
    assert broker.positions()[SYMBOL].qty == pytest.approx(0.01)
    second = broker.submit(limit_buy(price=40_000.0))
    (done,) = broker.cancel_all("drill")
    assert done.confirmed and done.order_id == second.id and second.status.value == "cancelled"
    assert testnet.open_count() == 0
    assert broker.account().cash == pytest.approx(10_000 - 0.004 * 49_990 - 0.006 * 50_000)


def test_the_exchanges_rejection_and_unsupported_orders(testnet):
    broker = CcxtSandboxBroker("r1-", urls=urls(testnet), timeout=5)
    testnet.reject_reason = "Account has insufficient balance for requested action."
    order = broker.submit(limit_buy())
    assert order.status is OrderStatus.REJECTED and order.reason_code == "broker_rejected"
    assert "insufficient balance" in order.reason
    stop = broker.submit(OrderRequest(SYMBOL, Side.SELL, 0.01, OrderType.STOP, stop_price=1.0))
    assert stop.reason_code == "unsupported"
    assert testnet.hits["POST /api/v3/order"] == 1


def test_keys_only_from_the_environment(testnet, monkeypatch):
    monkeypatch.delenv("CCXT_SECRET")
    with pytest.raises(BrokerError, match="CCXT_SECRET"):
        CcxtSandboxBroker("r1-", urls=urls(testnet))
    monkeypatch.setenv("CCXT_SECRET", SECRET)
    assert SECRET not in repr(CcxtSandboxBroker("r1-", urls=urls(testnet)))
    with pytest.raises(BrokerError, match="no sandbox"):
        CcxtSandboxBroker("r1-", exchange="kraken")


def test_a_paper_session_trades_in_the_sandbox(session_ledger, testnet):
    testnet.market_price = 100.0
    bot = demo_bot(
        universe=[SYMBOL],
        params={"fast": 3, "slow": 8},
        broker={"kind": "ccxt_sandbox", "exchange": "binance", "urls": urls(testnet)},
    )
    aw.backtest(bot, ledger=session_ledger)
    session = aw.PaperSession(bot, speed=0, duration_minutes=60, force=True, reason="sandbox")
    session.start()
    assert session.wait(120), "session did not finish"
    rows = session_ledger.sql(
        "SELECT id, broker_order_id FROM paper_orders WHERE paper_run_id = :run_id",
        run_id=session.paper_run_id,
    )
    fills = session_ledger.sql(
        "SELECT price FROM paper_fills WHERE paper_run_id = :run_id", run_id=session.paper_run_id
    )
    assert len(rows) == testnet.hits["POST /api/v3/order"] > 0
    assert rows["broker_order_id"].notna().all()
    assert len(fills) > 0 and set(fills["price"]) == {100.0}
