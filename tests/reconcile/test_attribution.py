"""Two causes at once: each cause's P&L is measured exactly and the causes add up.

Each expected share is measured independently, by backtesting the bot with one
setting changed at a time over the same bars; the reconciliation must find the
same amounts (within a cent) and no ``unexplained`` rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alphaswarm as aw
from alphaswarm.data import ReplayFeed
from alphaswarm.reconcile import Reconciliation, reconcile
from tests.reconcile.conftest import scripted_spec
from tests.ui.conftest import wait_until

if TYPE_CHECKING:
    import pandas as pd

CENT = 0.01
COMMISSION = {"commission_per_share": 0.01}
SLIPPAGE = {"slippage_bps": 5.0}
CAP_400 = {"kill_switch_attached": True, "max_order_qty": 400}


def backtest_pnl(spec: dict[str, Any], bars: pd.DataFrame) -> float:
    """The P&L of a plain backtest of ``spec`` over ``bars`` (not stored)."""
    result = aw.backtest(spec, feed=ReplayFeed.from_frame(bars), store=False, engine="event")
    return float(result.equity["equity"].iloc[-1]) - 100_000.0


def assert_sums_to_total(rec: Reconciliation) -> None:
    """Every row's shares add up to its P&L effect; the causes add up to the whole difference."""
    s = rec.summary
    assert "unexplained" not in s["explained"], s["explained"]
    assert sum(s["explained"].values()) == pytest.approx(s["pnl_difference"], abs=CENT)
    for row in rec.differences.itertuples():
        assert sum(row.causes.values()) == pytest.approx(row.pnl_effect, abs=1e-6), row
        assert row.cause in row.causes


def test_slippage_and_commission_both_changed(paper_run, ledger, bars):
    """Slippage 5 bps and 0.01/share in the run, neither in the backtest: each gets its own P&L."""
    session = paper_run(scripted_spec(broker={**COMMISSION, **SLIPPAGE}))
    rec = reconcile(session.paper_run_id, ledger, bot=scripted_spec())
    base = backtest_pnl(scripted_spec(), bars)
    commission_only = backtest_pnl(scripted_spec(broker=COMMISSION), bars) - base
    slippage_only = backtest_pnl(scripted_spec(broker=SLIPPAGE), bars) - base
    assert commission_only < -1 and slippage_only < -1  # both settings cost something
    explained = rec.summary["explained"]
    assert set(explained) == {"commission_changed", "slippage_changed"}
    assert explained["commission_changed"] == pytest.approx(commission_only, abs=CENT)
    assert explained["slippage_changed"] == pytest.approx(slippage_only, abs=CENT)
    assert_sums_to_total(rec)
    # every one of the five fills carries both causes, each with its share
    diff = rec.differences
    assert len(diff) == 5
    for row in diff.itertuples():
        assert set(row.causes) == {"commission_changed", "slippage_changed"}
        assert row.causes["commission_changed"] == pytest.approx(-0.01 * row.paper_qty)
        assert "commission_changed" in row.reason and "slippage_changed" in row.reason
    assert rec.summary["counts"] == {"commission_changed": 5, "slippage_changed": 5}


def test_risk_denial_during_a_changed_commission_run(paper_run, ledger, bars):
    """The run caps orders at 400 and pays 0.01/share; the backtest does neither."""
    session = paper_run(scripted_spec(risk=CAP_400, broker=COMMISSION))
    rec = reconcile(session.paper_run_id, ledger, bot=scripted_spec())
    base = backtest_pnl(scripted_spec(), bars)
    capped = backtest_pnl(scripted_spec(risk=CAP_400), bars)
    capped_with_commission = backtest_pnl(scripted_spec(risk=CAP_400, broker=COMMISSION), bars)
    explained = rec.summary["explained"]
    assert set(explained) == {"risk_denial", "commission_changed"}
    assert explained["risk_denial"] == pytest.approx(capped - base, abs=CENT)
    assert explained["commission_changed"] == pytest.approx(
        capped_with_commission - capped, abs=CENT
    )
    assert_sums_to_total(rec)
    # the exit sold 100 in the run and 600 in the backtest: the denial's share and the
    # commission the run paid on its 100, both on one row
    diff = rec.differences
    sell = diff[(diff["kind"] == "matched") & (diff["qty_diff"] == -500)].iloc[0]
    assert set(sell["causes"]) == {"risk_denial", "commission_changed"}
    assert sell["causes"]["commission_changed"] == pytest.approx(-1.0)
    assert sell["cause"] == "risk_denial"


def test_kill_after_missing_bars(paper_run, ledger, bars):
    """The run's feed lost the fill bar of its buy; later the kill switch flattened it."""
    holed = bars.drop(index=3)  # 14:33, the bar after the buy signal at minute 2
    session = paper_run(scripted_spec(params={"plan": [[2, 100]]}), holed, speed=600)
    wait_until(lambda: session.num_fills >= 1 and session.bars_seen >= 8, timeout=30)
    session.kill("test kill", mode="flatten")
    rec = reconcile(session.paper_run_id, ledger, bars=bars)
    seen = rec.summary["bars"]["paper"]
    last = holed.iloc[seen - 1]["ts"]
    spec = scripted_spec(params={"plan": [[2, 100]]})
    reference = backtest_pnl(spec, bars[bars["ts"] <= last])
    over_seen = backtest_pnl(spec, holed[holed["ts"] <= last])
    explained = rec.summary["explained"]
    assert set(explained) == {"bars_missing", "halt_or_kill"}
    assert explained["bars_missing"] == pytest.approx(over_seen - reference, abs=CENT)
    assert explained["halt_or_kill"] == pytest.approx(
        rec.summary["paper_pnl"] - over_seen, abs=CENT
    )
    assert_sums_to_total(rec)
    assert list(rec.differences["cause"]) == ["bars_missing", "halt_or_kill"]


costs = st.fixed_dictionaries(
    {
        "slippage_bps": st.sampled_from([0.0, 2.0, 7.5]),
        "commission_per_share": st.sampled_from([0.0, 0.005, 0.02]),
        "commission_bps": st.sampled_from([0.0, 1.0, 3.0]),
    }
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(paper=costs, backtest=costs)
def test_cost_shares_are_the_shapley_values_of_the_two_settings(
    paper_run, ledger, bars, paper, backtest
):
    """Any commission and slippage on either side: each share is what switching that setting
    alone changes, averaged over the other setting's two values (no interaction: exactly the
    one-at-a-time change), measured by backtests; the shares add up to the whole difference."""
    session = paper_run(scripted_spec(broker=paper))
    rec = reconcile(session.paper_run_id, ledger, bot=scripted_spec(broker=backtest))
    slip = {"slippage_bps": paper["slippage_bps"]}
    comm = {k: v for k, v in paper.items() if k != "slippage_bps"}
    keep_slip = {"slippage_bps": backtest["slippage_bps"]}
    keep_comm = {k: v for k, v in backtest.items() if k != "slippage_bps"}

    def pnl(broker: dict[str, float]) -> float:
        return backtest_pnl(scripted_spec(broker=broker), bars)

    base, both = pnl(backtest), pnl(paper)
    slip_only, comm_only = pnl({**keep_comm, **slip}), pnl({**keep_slip, **comm})
    expected = {
        "slippage_changed": 0.5 * ((slip_only - base) + (both - comm_only)),
        "commission_changed": 0.5 * ((comm_only - base) + (both - slip_only)),
    }
    explained = rec.summary["explained"]
    for cause, value in expected.items():
        assert explained.get(cause, 0.0) == pytest.approx(value, abs=CENT), (cause, explained)
    assert set(explained) <= set(expected)
    assert_sums_to_total(rec)
