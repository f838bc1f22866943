"""Shadow simulation beside the (loopback) Alpaca broker, and its reconciliation."""

from __future__ import annotations

import pytest
import requests

import alphaswarm as aw
from alphaswarm.model import ModelError, OrderType
from alphaswarm.research.shadow_report import shadow_report
from alphaswarm.server import ServerThread
from tests.broker.conftest import wait_for
from tests.broker.test_engine_bridge import bar, engine_for, stages
from tests.server.conftest import free_port, wait_until
from tests.session.conftest import demo_bot

PLANTED_BPS = 7.0
SIM_BPS = 2.0
#: the loopback prints prices with 6 significant digits (like "100.123"): 0.1 bps at most
TOL_BPS = 0.1


def next_opens(bot) -> dict:
    """Bar time -> the open of the next bar (where the fill model fills a market order)."""
    bars = [b for group in bot.make_feed().groups(limit=200) for b in group]
    return {a.ts: b.open for a, b in zip(bars, bars[1:], strict=False)}


def test_shadow_reconciliation_finds_a_planted_broker_slippage(
    session_ledger, alpaca_keys, trading_server
):
    bot = demo_bot(
        params={"fast": 3, "slow": 8},
        broker={
            "kind": "alpaca_paper",
            "calendar": "24x7",
            "urls": trading_server.urls,
            "shadow": True,
            "slippage_bps": SIM_BPS,
        },
    )
    aw.backtest(bot, ledger=session_ledger)
    opens = next_opens(bot)
    session = aw.PaperSession(
        bot, speed=0, duration_minutes=180, force=True, reason="shadow test: any strategy"
    )

    def broker_price(order):  # the broker fills 7 bps worse than the fill model's reference
        sign = 1 if order["side"] == "buy" else -1
        return opens[session._engine.last_ts] * (1 + sign * PLANTED_BPS / 1e4)

    trading_server.auto_fill = {"DEMO": broker_price}
    session.start()
    assert session.wait(120), "session did not finish"
    wait_for(lambda: trading_server.listening() == 0, what="the session to close its stream")

    report = shadow_report(session.paper_run_id, session_ledger)
    s = report.summary
    assert s["counts"].get("matched", 0) >= 3
    assert s["slippage_bps"] == SIM_BPS
    assert s["suggested_slippage_bps"] == pytest.approx(PLANTED_BPS, abs=TOL_BPS)
    assert s["price_diff_bps"] == pytest.approx(PLANTED_BPS - SIM_BPS, abs=TOL_BPS)
    matched = report.orders[report.orders["outcome"] == "matched"]
    assert matched["broker_order_id"].notna().all()
    assert (matched["needed_slip_bps"] - PLANTED_BPS).abs().max() < TOL_BPS
    assert (matched["pnl_effect"] < 0).all()  # worse prices cost the run money
    assert (matched["shadow_latency_s"] == 60).all()  # the fill model fills on the next bar
    assert "would have matched the broker" in report.text()
    as_dict = report.to_dict()
    assert as_dict["paper_run_id"] == session.paper_run_id and as_dict["orders"]

    # aw.reconcile carries the same report beside the backtest comparison
    rec = aw.reconcile(session.paper_run_id, session_ledger)
    assert rec.shadow is not None
    assert rec.shadow.summary["suggested_slippage_bps"] == pytest.approx(PLANTED_BPS, abs=TOL_BPS)
    assert "would have matched the broker" in rec.text()
    assert rec.to_dict()["shadow"]["summary"]["counts"] == s["counts"]

    # and the notebook / dashboard view shows it
    from alphaswarm.ui.reconcile_view import ReconciliationView

    view = ReconciliationView(reconciliation=rec)
    assert 'data-suggested-slippage="7.0' in view.shadow_pane.object
    assert view.shadow_table.visible and len(view.shadow_table.value) == len(report.orders)

    # and the run view's route serves it
    server = ServerThread("127.0.0.1", free_port(), ledger=session_ledger, dashboard=False).start()
    try:
        wait_until(lambda: requests.get(server.url + "/health", timeout=5).status_code == 200)
        r = requests.get(f"{server.url}/paper/{session.paper_run_id}/reconcile", timeout=60)
        assert r.status_code == 200, r.text
        served = r.json()["shadow"]
        assert served["summary"]["suggested_slippage_bps"] == pytest.approx(
            PLANTED_BPS, abs=TOL_BPS
        )
        assert len(served["orders"]) == len(report.orders)
    finally:
        server.stop()


def test_a_run_without_a_shadow_says_how_to_get_one(session_ledger, alpaca_keys, trading_server):
    bot = demo_bot(broker={"kind": "alpaca_paper", "calendar": "24x7", "urls": trading_server.urls})
    aw.backtest(bot, ledger=session_ledger)
    session = aw.PaperSession(bot, speed=0, duration_minutes=30)
    session.start()
    assert session.wait(120)
    with pytest.raises(ModelError, match="shadow: true"):
        shadow_report(session.paper_run_id, session_ledger)
    with pytest.raises(KeyError, match="no paper run"):
        shadow_report("nope", session_ledger)


def test_the_shadow_sees_every_order_cancel_and_bar(make_broker, trading_server):
    """A rejection the simulator did not predict, a cancel, a fill only the shadow made."""
    trading_server.refuse_orders["MSFT"] = (403, 40310000, "insufficient buying power")
    broker = make_broker()

    def place(ctx):
        ctx.buy(5, "MSFT")  # refused by the broker only
        ctx.buy(2, "AAPL", type=OrderType.LIMIT, limit_price=101.0)  # fills in the shadow
        ctx.buy(1, "AAPL", type=OrderType.LIMIT, limit_price=50.0)  # cancelled below

    engine, bridge, frames = engine_for(broker, {0: place}, shadow=True)
    engine.step([bar(0, 100.0), bar(0, 200.0, "MSFT")])
    assert bridge.wants_every_bar and len(stages(frames, "order.rejected")) == 1
    engine.cancel("r1-o3", "user_cancel", "no longer wanted")
    wait_for(lambda: trading_server.open_count() == 1, what="the cancel at the broker")
    engine.step([bar(1, 100.0), bar(1, 200.0, "MSFT")])
    recorded = bridge.to_dict()["shadow"]
    orders = recorded["orders"]
    assert orders["r1-o1"]["status"] == "filled"  # the simulator would have filled it
    assert orders["r1-o2"]["status"] == "filled" and orders["r1-o2"]["fills"][0]["qty"] == 2
    assert orders["r1-o3"]["status"] == "cancelled"
    assert recorded["marks"] == {"AAPL": 100.0, "MSFT": 200.0}
    assert bridge.positions.get("AAPL") is None or bridge.positions["AAPL"].qty == 0


def test_rejections_the_simulator_did_not_predict(session_ledger, alpaca_keys, trading_server):
    trading_server.refuse_orders["DEMO"] = (403, 40310000, "insufficient buying power")
    bot = demo_bot(
        params={"fast": 3, "slow": 8},
        broker={
            "kind": "alpaca_paper",
            "calendar": "24x7",
            "urls": trading_server.urls,
            "shadow": True,
        },
    )
    aw.backtest(bot, ledger=session_ledger)
    session = aw.PaperSession(bot, speed=0, duration_minutes=60, force=True, reason="shadow")
    session.start()
    assert session.wait(120)
    report = shadow_report(session.paper_run_id, session_ledger)
    rejected = report.orders[report.orders["outcome"] == "rejected_by_broker"]
    assert len(rejected) >= 1
    assert rejected["broker_reason"].str.contains("insufficient buying power").all()
    assert rejected["broker_order_id"].isna().all()  # Alpaca never took them
    assert report.summary["suggested_slippage_bps"] is None  # nothing to compare prices on
