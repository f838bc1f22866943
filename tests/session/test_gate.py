"""The paper gate: every rule refuses on its own and is listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import alphaswarm as aw
from alphaswarm.data import ReplayFeed
from alphaswarm.trading.gate import check_gate


def errors_for(bot, ledger, **kw):
    return check_gate(bot, ledger, bot.make_feed(), **kw).errors


def test_passes_after_good_backtest(ledger, bot):
    result = check_gate(bot, ledger, bot.make_feed())
    assert result.status in ("ok", "warning") and result.errors == []
    assert result.backtest["sharpe"] >= 0.5


def test_no_backtest(ledger, make_bot):
    errors = errors_for(make_bot(), ledger)
    assert len(errors) == 1 and "no backtest_runs row" in errors[0]


def test_backtest_of_an_older_version_does_not_count(ledger, bot, make_bot):
    changed = make_bot(params={"fast": 12, "slow": 30})
    errors = errors_for(changed, ledger)
    assert any("no backtest_runs row" in e and "version 2" in e for e in errors)


def test_too_old_backtest(ledger, bot):
    later = datetime.now(UTC) + timedelta(days=8)
    errors = check_gate(bot, ledger, bot.make_feed(), now=later).errors
    assert any("days old" in e for e in errors)


def test_old_but_not_stale_backtest_warns(ledger, bot):
    later = datetime.now(UTC) + timedelta(hours=30)
    result = check_gate(bot, ledger, bot.make_feed(), now=later)
    assert result.status == "warning" and not result.errors
    assert any("h old" in w for w in result.warnings)


def test_low_sharpe_and_drawdown(ledger, bot):
    errors = errors_for(bot, ledger, min_sharpe=50, max_drawdown=0.001)
    assert any(e.startswith("sharpe") for e in errors)
    assert any(e.startswith("max_drawdown") for e in errors)


def test_kill_switch_not_attached(ledger, make_bot):
    bot = make_bot(risk={"max_order_notional": 50_000})
    aw.backtest(bot, ledger=ledger)
    assert any("kill_switch_attached" in e for e in errors_for(bot, ledger))


def test_feed_must_cover_universe(ledger, bot):
    df = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-02 14:30", periods=5, freq="1min", tz="UTC"),
            "symbol": "OTHER",
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
        }
    )
    feed = ReplayFeed.from_frame(df)
    errors = check_gate(bot, ledger, feed).errors
    assert any("cannot serve" in e and "DEMO" in e for e in errors)


def test_backtest_only_and_metric_thresholds(ledger, make_bot):
    bot = make_bot(
        deploy_target="backtest_only",
        metrics=["sharpe", {"name": "win_rate", "threshold": 0.99, "direction": ">="}],
    )
    aw.backtest(bot, ledger=ledger)
    errors = errors_for(bot, ledger)
    assert any("backtest_only" in e for e in errors)
    assert any("win_rate" in e for e in errors)


def test_an_aliased_metric_threshold_names_the_metric_it_reads(ledger, make_bot):
    bot = make_bot(metrics=[{"name": "hit_rate", "threshold": 0.99, "direction": ">="}])
    aw.backtest(bot, ledger=ledger)
    errors = errors_for(bot, ledger)
    assert any(e.startswith("metric hit_rate (win_rate) = ") for e in errors), errors


def test_refusal_lists_every_rule(ledger, make_bot):
    bot = make_bot(risk={"max_order_notional": 1}, deploy_target="backtest_only")
    with pytest.raises(aw.GateRefused) as info:
        aw.PaperSession(bot, speed=0).start()
    errors = info.value.result.errors
    assert len(errors) == 3, errors
    for text in ("no backtest_runs", "kill_switch_attached", "backtest_only"):
        assert text in str(info.value)
    assert ledger.sql("SELECT count(*) AS n FROM paper_trading_runs")["n"].iloc[0] == 0
