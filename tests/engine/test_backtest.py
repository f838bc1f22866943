"""backtest(): metrics, equity and trades frames, bars/start/end, the ledger row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from alphaswarm.backtest import backtest
from alphaswarm.bots import Bot
from alphaswarm.data import ReplayFeed
from alphaswarm.ledger import Ledger
from alphaswarm.model import ModelError

METRIC_KEYS = {
    "sharpe", "sortino", "max_drawdown", "total_return", "num_trades", "win_rate", "exposure",
}  # fmt: skip


def wave_frame(n: int = 2 * 390, symbol: str = "AAA") -> pd.DataFrame:
    """Two trading days of minute bars on a sine wave, so an SMA cross trades."""
    day1 = pd.date_range("2024-01-02 14:30", periods=n // 2, freq="1min", tz="UTC")
    day2 = pd.date_range("2024-01-03 14:30", periods=n - n // 2, freq="1min", tz="UTC")
    ts = day1.append(day2)
    close = 100 + 5 * np.sin(np.arange(n) / 15.0)
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": symbol,
            "open": open_,
            "high": np.maximum(open_, close) + 0.1,
            "low": np.minimum(open_, close) - 0.1,
            "close": close,
            "volume": 10_000.0,
        }
    )


@pytest.fixture(scope="module")
def feed() -> ReplayFeed:
    return ReplayFeed.from_frame(wave_frame())


def sma_bot(**over) -> Bot:
    spec = {
        "name": "bt-test",
        "strategy": "sma_cross",
        "params": {"fast": 3, "slow": 8, "qty": 10},
        "universe": ["AAA"],
        "broker": {"commission_per_share": 0.01, "slippage_bps": 1},
    }
    spec.update(over)
    return Bot(spec)


def test_result_has_metrics_equity_and_trades(feed):
    result = backtest(sma_bot(), feed=feed, store=False)
    assert set(result.metrics) == METRIC_KEYS
    assert result.id is None and result.bot_id is None
    eq = result.equity
    assert isinstance(eq, pd.DataFrame) and list(eq.columns) == ["equity", "cash", "drawdown"]
    assert isinstance(eq.index, pd.DatetimeIndex) and eq.index.name == "ts"
    assert len(eq) == len(feed) == result.bars
    assert eq.index.is_monotonic_increasing
    assert (eq["drawdown"] <= 0).all()
    trades = result.trades
    assert isinstance(trades, pd.DataFrame)
    assert {"entry_price", "exit_price", "pnl", "commission"} <= set(trades.columns)
    assert result.metrics["num_trades"] == len(trades) > 5
    assert result.metrics["total_return"] == pytest.approx(eq["equity"].iloc[-1] / 100_000 - 1)
    assert 0 < result.metrics["exposure"] < 1
    assert len(result.fills) > 0
    dtype = result.fills["filled_at"].dtype
    assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"
    assert result.config["fill_rule"] == "pessimistic"
    assert result.config["spec_hash"] == sma_bot().spec_hash
    assert "sharpe=" in repr(result)


def test_fills_come_after_their_orders(feed):
    result = backtest(sma_bot(), feed=feed, store=False)
    created = pd.to_datetime(result.orders.set_index("order_id")["created_at"], utc=True)
    for _, f in result.fills.iterrows():
        assert f["filled_at"] > created[f["order_id"]]


def test_final_equity_is_cash_plus_positions(feed):
    result = backtest(sma_bot(), feed=feed, store=False)
    fills = result.fills
    qty = (fills["qty"] * np.where(fills["side"] == "buy", 1, -1)).sum()
    last_close = feed.frame()["close"].iloc[-1]
    final = result.equity.iloc[-1]
    assert final["equity"] == pytest.approx(final["cash"] + qty * last_close)


def test_bars_limits_the_run(feed):
    result = backtest(sma_bot(), 100, feed=feed, store=False)
    assert len(result.equity) == 100 and result.config["bars"] == 100


def test_start_and_end_select_a_range(feed):
    result = backtest(sma_bot(), start="2024-01-03", end="2024-01-03", feed=feed, store=False)
    eq = result.equity
    assert len(eq) == 390
    assert (eq.index.date == pd.Timestamp("2024-01-03").date()).all()
    part = backtest(
        sma_bot(),
        start="2024-01-02 15:00",
        end="2024-01-02 15:09",
        feed=feed,
        store=False,
    )
    assert len(part.equity) == 10
    assert part.equity.index[0] == pd.Timestamp("2024-01-02 15:00", tz="UTC")


def test_bad_arguments_named(feed):
    with pytest.raises(ModelError, match=r"^bars: expected a whole number > 0"):
        backtest(sma_bot(), 0, feed=feed, store=False)
    with pytest.raises(ModelError, match=r"^universe: the feed cannot serve ZZZ"):
        backtest(sma_bot(universe=["ZZZ"]), feed=feed, store=False)
    with pytest.raises(ModelError, match=r"^bars: the feed delivered no bars"):
        backtest(sma_bot(), start="2030-01-01", feed=feed, store=False)


def test_deterministic(feed):
    a = backtest(sma_bot(), feed=feed, store=False)
    b = backtest(sma_bot(), feed=feed, store=False)
    assert a.metrics == b.metrics
    pd.testing.assert_frame_equal(a.fills, b.fills)
    pd.testing.assert_frame_equal(a.equity, b.equity)


def test_synthetic_feed_backtest():
    bot = Bot({"name": "syn", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20}})
    result = backtest(bot, 300, store=False)
    assert len(result.equity) == 300 and set(result.metrics) == METRIC_KEYS


def test_halt_is_reported():
    n = 60
    close = np.linspace(100, 60, n)
    ts = pd.date_range("2024-01-02 14:30", periods=n, freq="1min", tz="UTC")
    df = pd.DataFrame(
        {"ts": ts, "symbol": "AAA", "open": close, "high": close, "low": close, "close": close}
    )
    bot = Bot(
        {
            "name": "halts",
            "strategy": "buy_and_hold",
            "params": {"qty": 500},
            "universe": ["AAA"],
            "risk": {"max_drawdown_pct": 0.1},
        }
    )
    result = backtest(bot, feed=ReplayFeed.from_frame(df), store=False)
    assert result.halted is not None and result.halted["limit"] == "max_drawdown_pct"
    assert len(result.equity) < n
    assert result.fills["side"].tolist() == ["buy", "sell"]  # entry, then the flatten


def test_daily_bars_buy_and_hold_fills_on_the_next_session():
    """DAY orders placed on a daily bar must work on the next day's bar."""
    ts = pd.date_range("2024-01-02", periods=5, freq="B", tz="UTC")
    close = np.array([100.0, 102, 104, 103, 105])
    open_ = close - 1
    df = pd.DataFrame(
        {
            "ts": ts,
            "symbol": "AAA",
            "open": open_,
            "high": close + 1,
            "low": open_ - 1,
            "close": close,
            "volume": 1e6,
        }
    )
    bot = Bot(
        {"name": "bh", "strategy": "buy_and_hold", "params": {"qty": 10}, "universe": ["AAA"]}
    )
    result = backtest(bot, feed=ReplayFeed.from_frame(df), store=False)
    assert result.fills["price"].tolist() == [101.0]  # day 2's open
    assert result.equity["equity"].iloc[-1] == pytest.approx(100_000 + 10 * (105 - 101))


# ------------------------------------------------------------------------- ledger


def test_store_to_a_tmp_ledger(tmp_path, feed):
    ledger = Ledger(url=f"sqlite:///{tmp_path}/l.db")
    try:
        result = backtest(sma_bot(), 200, feed=feed, ledger=ledger)
        assert result.id and result.bot_id and result.bot_version == 1
        rows = ledger.backtests(result.bot_id)
        assert len(rows) == 1
        row = rows.iloc[0]
        assert row["id"] == result.id
        assert row["bot_id"] == result.bot_id and row["bot_version"] == 1
        assert row["bars"] == 200 and row["fill_rule"] == "pessimistic"
        assert row["sharpe"] == pytest.approx(result.metrics["sharpe"])
        assert row["num_trades"] == result.metrics["num_trades"]
        assert row["max_drawdown"] == pytest.approx(result.metrics["max_drawdown"])
        # same spec: same version; a changed spec: the next version
        again = backtest(sma_bot(), 50, feed=feed, ledger=ledger)
        assert (again.bot_id, again.bot_version) == (result.bot_id, 1)
        changed = backtest(sma_bot(params={"fast": 4, "slow": 8}), 50, feed=feed, ledger=ledger)
        assert (changed.bot_id, changed.bot_version) == (result.bot_id, 2)
        with ledger.engine().connect() as conn:
            versions = conn.execute(
                text(
                    "SELECT bot_version, count(*) FROM backtest_runs "
                    "WHERE bot_id = :b GROUP BY bot_version ORDER BY bot_version"
                ),
                {"b": result.bot_id},
            ).all()
        assert [tuple(v) for v in versions] == [(1, 2), (2, 1)]
    finally:
        ledger.close()


# -------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2024-13-01"}, r"^start: '2024-13-01' is not a valid date"),
        ({"end": "2024-02-30"}, r"^end: '2024-02-30' is not a valid date"),
        ({"start": "tomorrow-ish", "end": "2024-01-03"}, r"^start: 'tomorrow-ish' "),
        ({"start": True}, r"^start: True is not a valid date"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, r"^start/end: start '2024-02-01' is after"),
    ],
)
def test_bad_dates_are_reported_first_with_their_value(tmp_path, kwargs, message):
    # a synthetic feed without bars= or end= would otherwise fail for another reason
    bot = Bot({"name": "dates", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20}})
    ledger = Ledger(url=f"sqlite:///{tmp_path}/l.db")
    try:
        with pytest.raises(ModelError, match=message):
            backtest(bot, ledger=ledger, **kwargs)
        assert int(ledger.sql("SELECT COUNT(*) AS n FROM backtest_runs")["n"][0]) == 0
    finally:
        ledger.close()


def test_the_broker_config_and_minimum_commission_rule_are_in_the_run_config(tmp_path, feed):
    bot = sma_bot(broker={"commission_min": 1.0, "min_commission_per": "fill"})
    ledger = Ledger(url=f"sqlite:///{tmp_path}/l.db")
    try:
        result = backtest(bot, 200, feed=feed, ledger=ledger)
        assert result.config["broker"]["min_commission_per"] == "fill"
        stored = ledger.backtests(result.bot_id).iloc[0]["config"]
        if isinstance(stored, str):
            stored = json.loads(stored)
        assert stored["broker"]["min_commission_per"] == "fill"
        default = backtest(sma_bot(), 50, feed=feed, store=False)
        assert default.config["broker"]["min_commission_per"] == "order"
    finally:
        ledger.close()
