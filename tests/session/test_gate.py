"""The paper gate: every rule refuses on its own and is listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import alphaswarm as aw
from alphaswarm.data import ReplayFeed
from alphaswarm.paper.gate import check_gate


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


# --------------------------------------------------------------------------- the evidence


def halting_bot(make_bot, drawdown: float) -> aw.Bot:
    """The demo bot with a drawdown limit its backtest breaches early (a risk halt)."""
    from tests.session.conftest import DEMO_RISK

    return make_bot(risk={**DEMO_RISK, "max_drawdown_pct": drawdown})


def test_gate_names_the_backtest_it_judged(ledger, make_bot):
    bot = make_bot()
    result = aw.backtest(bot, ledger=ledger)
    judged = check_gate(bot, ledger, bot.make_feed()).judged
    assert judged["id"] == result.id
    assert judged["bars"] == result.bars == 7800
    assert judged["num_trades"] == result.metrics["num_trades"]
    assert judged["start_ts"] == result.equity.index[0].isoformat()
    assert judged["end_ts"] == result.equity.index[-1].isoformat()
    assert judged["text"].startswith(f"{result.id}: 20") and "7800 bars" in judged["text"]
    # the session's metadata_gate frame carries it too
    session = aw.PaperSession(bot, speed=0, max_bars=5, duration_minutes=None).start()
    assert session.wait(60)
    gate_frame = session.frames.recent()[0]
    assert gate_frame["stage"] == "metadata_gate"
    assert gate_frame["judged"]["id"] == result.id


def test_a_one_trade_backtest_cut_short_by_a_halt_is_refused(ledger, make_bot):
    """1 trade, Sharpe 99, 50 bars, a drawdown halt: no evidence, whatever its Sharpe."""
    bot = halting_bot(make_bot, 0.0001)
    result = aw.backtest(bot, ledger=ledger)
    assert result.halted is not None and result.metrics["num_trades"] == 1
    assert result.metrics["sharpe"] > 50
    gate = check_gate(bot, ledger, bot.make_feed())
    assert gate.status == "error"
    assert any(f"backtest {result.id} has 1 trade(s) (min_trades 5)" in e for e in gate.errors)
    assert any(f"backtest {result.id} has 50 bar(s) (min_bars 100)" in e for e in gate.errors)
    assert any("ended in a risk halt (max_drawdown_pct" in e for e in gate.errors)
    with pytest.raises(aw.GateRefused) as info:
        aw.PaperSession(bot, speed=0).start()
    assert f"judged backtest {result.id}: " in str(info.value) and "50 bars, 1 trades" in str(
        info.value
    )


def test_a_halted_backtest_is_refused_on_its_own(ledger, make_bot):
    bot = halting_bot(make_bot, 0.001)
    result = aw.backtest(bot, ledger=ledger)
    assert result.halted is not None and result.metrics["num_trades"] >= 2
    errors = errors_for(bot, ledger, min_trades=1, min_bars=1)
    assert len(errors) == 1 and "ended in a risk halt" in errors[0], errors


def test_min_trades_and_min_bars_are_rules_and_configurable(ledger, make_bot):
    small = make_bot()
    result = aw.backtest(small, bars=60, ledger=ledger)
    assert result.metrics["num_trades"] < 5
    errors = errors_for(small, ledger, min_sharpe=-1e9)
    assert any("min_trades 5" in e for e in errors) and any("min_bars 100" in e for e in errors)
    # the bot's gate block lowers them
    relaxed = make_bot(gate={"min_trades": 0, "min_bars": 50})
    aw.backtest(relaxed, bars=60, ledger=ledger)
    assert errors_for(relaxed, ledger, min_sharpe=-1e9) == []
    # and overrides raise them on a good backtest
    good = make_bot(params={"fast": 10, "slow": 31})
    aw.backtest(good, ledger=ledger)
    errors = errors_for(good, ledger, min_trades=10_000, min_bars=10_000)
    assert len(errors) == 2 and "min_trades 10000" in errors[0] and "min_bars 10000" in errors[1]


def test_backtest_id_chooses_the_evidence_among_several(ledger, make_bot):
    """A good backtest, then an exploratory one of another period: the user chooses."""
    bot = make_bot()
    good = aw.backtest(bot, ledger=ledger)
    other = make_bot(data={"feed": "synthetic", "seed": 3, "interval": "1m"})
    bad = aw.backtest(bot, feed=other.make_feed(), ledger=ledger, bars=500)
    assert bad.bot_version == good.bot_version
    latest = check_gate(bot, ledger, bot.make_feed())
    assert latest.judged["id"] == bad.id and latest.errors
    assert any("latest of 2 backtests" in w and "backtest_id" in w for w in latest.warnings)
    chosen = check_gate(bot, ledger, bot.make_feed(), backtest_id=good.id)
    assert chosen.errors == [] and chosen.judged["id"] == good.id
    session = aw.PaperSession(bot, speed=0, max_bars=5, backtest_id=good.id).start()
    assert session.wait(60) and session.gate["judged"]["id"] == good.id


def test_backtest_id_must_exist_and_be_of_the_current_version(ledger, make_bot):
    old = make_bot()
    old_bt = aw.backtest(old, ledger=ledger)
    changed = make_bot(params={"fast": 12, "slow": 30})
    aw.backtest(changed, ledger=ledger)
    errors = errors_for(changed, ledger, backtest_id=old_bt.id)
    assert len(errors) == 1 and f"backtest {old_bt.id} is of bot sma-demo version 1" in errors[0]
    assert "not of sma-demo version 2" in errors[0]
    errors = errors_for(changed, ledger, backtest_id="bt-nope")
    assert errors == ["backtest_id: no backtest_runs row 'bt-nope'"]
