"""A paper run records the minimum-commission rule and charges it per order."""

from __future__ import annotations

import json

import pytest

import alphaswarm as aw


@pytest.mark.parametrize("per", ["order", "fill"])
def test_paper_run_config_and_fills_follow_the_minimum_commission_rule(ledger, make_bot, per):
    broker = {"commission_per_share": 0.001, "commission_min": 1.0, "max_participation": 0.02,
              "min_commission_per": per}  # fmt: skip
    bot = make_bot(broker=broker, params={"fast": 5, "slow": 20, "qty": 400})
    aw.backtest(bot, bars=600, ledger=ledger)
    session = aw.PaperSession(bot, speed=0, max_bars=600, duration_minutes=None).start()
    assert session.wait(60), "session did not finish"
    config = ledger.get_run(session.paper_run_id)["config"]
    if isinstance(config, str):
        config = json.loads(config)
    assert config["broker"]["min_commission_per"] == per
    fills = ledger.fills(session.paper_run_id)
    parts = fills.groupby("order_id")["commission"].agg(["count", "sum"])
    assert (parts["count"] > 1).any(), "no order filled in parts"
    for order_id, group in fills.groupby("order_id"):
        fees = 0.001 * group["qty"]
        expected = max(fees.sum(), 1.0) if per == "order" else fees.clip(lower=1.0).sum()
        assert group["commission"].sum() == pytest.approx(expected), order_id
