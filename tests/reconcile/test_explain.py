"""Every order's life in one place: signal, risk checks, fills, cancellations, open reasons."""

from __future__ import annotations

import pytest

from alphaswarm.model import OrderRequest, Side
from alphaswarm.paper.explain import OrderNotFound, explain_order
from alphaswarm.risk.limits import AccountState, RiskLimits
from tests.reconcile.conftest import scripted_spec
from tests.ui.conftest import wait_until

LIMITS = {"kill_switch_attached": True, "max_order_qty": 400, "max_position_qty": 1000}


def test_filled_order(paper_run, ledger):
    session = paper_run(scripted_spec(risk=LIMITS))
    order_id = session.orders["id"].iloc[0]
    e = session.explain(order_id)
    assert e["status"] == "filled" and e["origin"] == "signal"
    assert e["signal"]["signal"] == "buy" and e["signal"]["target_qty"] == 100
    assert e["signal"]["bar_ts"] == "2024-01-02T14:40:00+00:00" and e["signal"]["signal_no"] == 1
    checks = {c["limit"]: c for c in e["risk_checks"]}
    expected = {"limit": "max_order_qty", "what": "order qty", "value": 100.0, "threshold": 400}
    assert checks["max_order_qty"] == {**expected, "passed": True}
    assert checks["max_position_qty"]["value"] == 100 and checks["max_position_qty"]["passed"]
    assert e["risk_passed"] and e["risk_failed"] is None
    [fill] = e["fills"]
    assert fill["qty"] == 100 and fill["filled_at"] == "2024-01-02T14:41:00+00:00"
    assert e["cancellations"] == [] and e["open_reason"] is None
    assert "Caused by signal #1 'buy'" in e["text"] and "max_order_qty 100 <= 400" in e["text"]
    assert [ev["stage"] for ev in e["events"]] == ["order.placed", "order.filled"]


def test_denied_request_never_placed(paper_run, ledger):
    session = paper_run(scripted_spec(risk=LIMITS))
    denied = ledger.risk_events(session.paper_run_id)
    [request_id] = denied.loc[denied["action"] == "denied", "order_id"]
    assert request_id == f"{session.paper_run_id}-d1"
    assert request_id not in set(session.orders["id"])  # it never reached the broker
    e = explain_order(ledger, session.paper_run_id, request_id)
    assert e["status"] == "denied" and e["order"] is None and e["fills"] == []
    assert e["signal"]["signal"] == "buy" and e["signal"]["target_qty"] == 600
    assert e["risk_failed"] == {"limit": "max_order_qty", "what": "order qty", "value": 500.0,
                                "threshold": 400, "passed": False}  # fmt: skip
    assert not e["risk_passed"] and e["qty"] == 500
    assert "never reached the broker" in e["text"]


def test_cancelled_order(paper_run, ledger):
    """A limit far below the market never fills; the end of the data cancels it."""
    session = paper_run(scripted_spec(params={"plan": [[5, "limit", 10, 50.0]]}))
    [order_id] = session.orders["id"]
    e = session.explain(order_id)
    assert e["status"] == "cancelled" and e["fills"] == []
    assert e["origin"] == "strategy (placed directly, no signal)" and e["signal"] is None
    [c] = e["cancellations"]
    assert c["reason_code"] == "session_end" and c["reason"] == "end of data"
    assert c["bar_ts"] == "2024-01-02T16:29:00+00:00"
    assert "Cancelled at 2024-01-02 16:29: session_end: end of data." in e["text"]


def test_open_order(paper_run, ledger):
    session = paper_run(scripted_spec(params={"plan": [[5, "limit", 10, 50.0]]}), speed=300)
    wait_until(lambda: len(session.orders) and session.bars_seen >= 8, timeout=20)
    order_id = session.orders["id"].iloc[0]
    e = session.explain(order_id)
    assert e["status"] == "accepted" and e["cancellations"] == []
    assert e["open_reason"].startswith("limit 50.00 not reached")
    assert "Still open: limit 50.00 not reached" in e["text"]
    session.stop("test done")
    assert session.explain(order_id)["cancellations"][0]["reason_code"] == "session_end"


def test_unknown_order(paper_run, ledger):
    session = paper_run(scripted_spec())
    with pytest.raises(OrderNotFound, match="no order 'nope'"):
        session.explain("nope")


@pytest.mark.parametrize("qty", [50, 100, 150, 400, 401])
def test_risk_checks_agree_with_check_order(qty):
    limits = RiskLimits(max_order_qty=400, max_position_qty=150, universe=["DEMO"])
    state = AccountState(equity=100_000.0, cash=100_000.0, prices={"DEMO": 100.0})
    request = OrderRequest("DEMO", Side.BUY, qty)
    denial = limits.check_order(request, state)
    checks = limits.checks(request, state)
    failed = [c for c in checks if not c["passed"]]
    assert (denial is None) == (not failed)
    if denial is not None:
        assert failed == checks[-1:] and failed[0]["limit"] == denial.limit
        assert failed[0]["value"] == denial.value and failed[0]["threshold"] == denial.threshold
