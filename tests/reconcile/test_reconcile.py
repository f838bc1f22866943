"""Reconciliation finds each known difference between a paper run and its backtest."""

from __future__ import annotations

import pytest

import alphaswarm as aw
from alphaswarm.reconcile import Reconciliation, RunNotFound, reconcile
from tests.reconcile.conftest import scripted_spec
from tests.ui.conftest import wait_until


def assert_adds_up(rec: Reconciliation) -> None:
    """The P&L explained by the causes is the whole difference, nothing unexplained."""
    s = rec.summary
    assert "unexplained" not in s["explained"], s["explained"]
    assert sum(s["explained"].values()) == pytest.approx(s["pnl_difference"], abs=1e-6)


def test_identical_replay_reconciles_with_zero_differences(paper_run, ledger):
    session = paper_run(scripted_spec())
    rec = reconcile(session.paper_run_id, ledger)
    s = rec.summary
    assert s["fills"] == {"paper": 5, "backtest": 5, "matched": 5, "only_in_paper": 0,
                          "only_in_backtest": 0}  # fmt: skip
    assert s["differences"] == 0 and rec.differences.empty
    assert s["explained"] == {} and s["settings_changes"] == []
    assert s["pnl_difference"] == pytest.approx(0.0, abs=1e-9)
    assert s["paper_pnl"] == pytest.approx(session.total_pnl)
    assert (rec.trades["time_diff_s"] == 0).all() and (rec.trades["price_diff"] == 0).all()
    assert s["backtest_bot"]["same_as_run"]


def test_risk_denial_in_paper_only(paper_run, ledger):
    """The run's bot caps orders at 400; the research backtest does not: its buy of 500 differs."""
    session = paper_run(scripted_spec(risk={"kill_switch_attached": True, "max_order_qty": 400}))
    rec = reconcile(session.paper_run_id, ledger, bot=scripted_spec())
    diff = rec.differences
    assert list(diff["kind"]) == ["only_in_backtest", "matched"]
    denied, sell = diff.iloc[0], diff.iloc[1]
    assert denied["cause"] == "risk_denial" and denied["backtest_qty"] == 500
    assert "order qty 500 > 400" in denied["reason"] and "risk_events denied" in denied["reason"]
    assert str(denied["backtest_time"]) == "2024-01-02 15:01:00+00:00"  # filled on the next bar
    # the exit sold 100 in the run and 600 in the backtest: it follows from the denial
    assert sell["cause"] == "risk_denial" and sell["qty_diff"] == -500
    assert "follows from the risk_denial" in sell["reason"]
    assert rec.summary["counts"] == {"risk_denial": 2}
    assert rec.summary["risk_denials"] == {"paper": 1, "backtest": 0}
    assert {"setting": "risk.max_order_qty", "paper": 400, "backtest": None} in rec.summary[
        "settings_changes"
    ]
    assert_adds_up(rec)
    assert set(rec.summary["explained"]) == {"risk_denial"}


def test_partial_fill(paper_run, ledger):
    """A 20 % participation cap fills the run's orders over several bars."""
    session = paper_run(scripted_spec(broker={"max_participation": 0.2}))
    rec = reconcile(session.paper_run_id, ledger, bot=scripted_spec())
    diff = rec.differences
    assert set(diff["cause"]) == {"partial_fill"}
    first = diff.iloc[0]  # the buy of 100 at minute 10 fits under the cap: no difference
    assert first["kind"] == "matched" and first["paper_qty"] == 200 and first["backtest_qty"] == 500
    assert "capped at 0.2 of bar volume 1000" in first["reason"]
    rest = diff[diff["paper_order_id"] == first["paper_order_id"]].iloc[1:]
    assert list(rest["kind"]) == ["only_in_paper", "only_in_paper"]
    assert list(rest["paper_qty"]) == [200, 100]  # 200 + 200 + 100 = 500
    assert rec.summary["fills"]["paper"] > rec.summary["fills"]["backtest"] == 5
    assert_adds_up(rec)


def test_changed_commission(paper_run, ledger):
    """The bot was re-registered with a commission after the run: every fill differs by it."""
    session = paper_run(scripted_spec())
    changed = aw.Bot(scripted_spec(broker={"commission_per_share": 0.01}))
    ledger.register_bot(changed.name, changed.spec, changed.spec_hash)
    rec = reconcile(session.paper_run_id, ledger, bot="latest")
    diff = rec.differences
    assert len(diff) == 5 and set(diff["kind"]) == {"matched"}
    assert set(diff["cause"]) == {"commission_changed"}
    assert (diff["price_diff"] == 0).all() and (diff["time_diff_s"] == 0).all()
    assert diff["commission_diff"].tolist() == pytest.approx([-1.0, -5.0, -6.0, -2.5, -2.5])
    assert rec.summary["explained"] == {"commission_changed": pytest.approx(17.0)}
    assert rec.summary["settings_changes"] == [
        {"setting": "broker.commission_per_share", "paper": 0.0, "backtest": 0.01}
    ]
    assert not rec.summary["backtest_bot"]["same_as_run"]


def test_missing_bar(paper_run, ledger, bars):
    """The run's feed lost the bar its first order would have filled on."""
    holed = bars.drop(index=11)  # 14:41, the bar after the buy signal at 14:40
    session = paper_run(scripted_spec(), holed)
    rec = reconcile(session.paper_run_id, ledger, bars=bars)
    diff = rec.differences
    assert len(diff) == 1
    row = diff.iloc[0]
    assert row["kind"] == "matched" and row["cause"] == "bars_missing"
    assert row["time_diff_s"] == 60.0 and row["price_diff"] != 0
    assert "14:41, which the run never received" in row["reason"]
    bars_info = rec.summary["bars"]
    assert bars_info["missing"] == [
        {"symbol": "DEMO", "ts": "2024-01-02T14:41:00+00:00", "problem": "missing"}
    ]
    assert bars_info["time_gaps"][0]["missing"] == 1  # provable from the run's own bar times
    assert_adds_up(rec)
    # over exactly the bars the run saw, the same run reconciles with no difference
    assert reconcile(session.paper_run_id, ledger).summary["differences"] == 0


def test_strategy_nondeterminism(paper_run, ledger):
    """Same bars, another signal: the strategy keeps state across runs."""
    from tests.reconcile.strategies import TakesTurns

    TakesTurns.runs = 0
    spec = {"name": "rec-turns", "strategy": "tests.reconcile.strategies:TakesTurns",
            "params": {"qty": 10}, "risk": {"kill_switch_attached": True}}  # fmt: skip
    session = paper_run(spec)
    rec = reconcile(session.paper_run_id, ledger)
    diff = rec.differences
    assert list(diff["cause"]) == ["nondeterminism"]
    assert diff.iloc[0]["time_diff_s"] == -600.0  # the run bought at minute 10, the replay at 20
    assert "signal was 'buy' and the backtest's None" in diff.iloc[0]["reason"]


def test_kill_with_flatten_is_halt_or_kill(paper_run, ledger):
    """The kill switch flattened the run's position; the backtest kept it."""
    session = paper_run(scripted_spec(params={"plan": [[2, 100]]}), speed=600)
    wait_until(lambda: session.num_fills >= 1 and session.bars_seen >= 5, timeout=20)
    session.kill("test kill", mode="flatten")
    rec = reconcile(session.paper_run_id, ledger)
    diff = rec.differences
    assert list(diff["kind"]) == ["only_in_paper"] and diff.iloc[0]["side"] == "sell"
    assert diff.iloc[0]["cause"] == "halt_or_kill"
    assert "run killed: test kill" in diff.iloc[0]["reason"]
    assert rec.summary["stopped"]["positions_flattened"] == ["DEMO"]


def test_reconciliation_renders_and_serialises(paper_run, ledger):
    import json

    import panel as pn

    session = paper_run(scripted_spec(risk={"kill_switch_attached": True, "max_order_qty": 400}))
    rec = reconcile(session.paper_run_id, ledger, bot=scripted_spec())
    out = json.loads(json.dumps(rec.to_dict(), default=str))
    assert out["summary"]["differences"] == 2 and len(out["trades"]) == 5
    view = pn.panel(rec)
    html = view.objects[1].object
    assert 'data-differences="2"' in html and "risk_denial" in html
    assert "risk_denial" in repr(rec)


def test_unknown_run(ledger):
    with pytest.raises(RunNotFound):
        reconcile("paper-nope", ledger)
