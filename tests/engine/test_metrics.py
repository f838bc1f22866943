"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphaswarm.data import SyntheticFeed
from alphaswarm.metrics import (
    METRIC_ALIASES,
    METRIC_BY_NAME,
    METRICS,
    STORED_METRICS,
    cagr,
    drawdown_series,
    max_drawdown,
    max_drawdown_duration,
    metric_name,
    returns_of,
    round_trips,
    sharpe_ratio,
    sortino_ratio,
    summarize,
)
from alphaswarm.model import Fill, Side
from tests.engine.helpers import SYM, ts_of

EQUITY = [100.0, 110.0, 99.0, 108.9]  # returns +10 %, -10 %, +10 %


def test_returns_of():
    assert returns_of(np.array(EQUITY)) == pytest.approx([0.1, -0.1, 0.1])
    assert returns_of(np.array([5.0])).size == 0


def test_sharpe_hand_computed():
    r = returns_of(np.array(EQUITY))
    # mean 1/30, sample std (ddof=1) sqrt(1/75)
    per_period = (1 / 30) / math.sqrt(1 / 75)
    assert sharpe_ratio(r, 252) == pytest.approx(per_period * math.sqrt(252))
    assert sharpe_ratio(r, 252 * 390) == pytest.approx(per_period * math.sqrt(98_280))
    assert sharpe_ratio(r, 1) == pytest.approx(0.2886751, rel=1e-6)


def test_sharpe_is_not_population_std():
    r = np.array([0.01, 0.03])
    assert sharpe_ratio(r, 1) == pytest.approx(0.02 / np.std(r, ddof=1))
    assert sharpe_ratio(r, 1) != pytest.approx(0.02 / np.std(r, ddof=0))


def test_sortino_hand_computed():
    r = returns_of(np.array(EQUITY))
    # downside deviation sqrt(mean([0, 0.01, 0])) = 0.1 / sqrt(3)
    per_period = (1 / 30) / (0.1 / math.sqrt(3))
    assert sortino_ratio(r, 252) == pytest.approx(per_period * math.sqrt(252))


def test_degenerate_ratios_are_zero():
    assert sharpe_ratio(np.array([0.01]), 252) == 0.0
    assert sharpe_ratio(np.array([0.01, 0.01, 0.01]), 252) == 0.0
    assert sortino_ratio(np.array([0.01, 0.02]), 252) == 0.0  # no downside


def test_max_drawdown_hand_computed():
    eq = np.array([100, 120, 90, 130, 104], dtype=float)
    assert max_drawdown(eq) == pytest.approx(0.25)  # 120 -> 90
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert max_drawdown(np.array([])) == 0.0
    dd = drawdown_series(pd.Series(eq))
    assert dd.tolist() == pytest.approx([0, 0, -0.25, 0, -0.2])


def fill(i: int, side: str, qty: float, price: float, commission: float = 0.0) -> Fill:
    return Fill(f"f{i}", f"o{i}", SYM, Side(side), qty, price, commission, ts_of(i))


def test_round_trips_fifo_with_partial_closes_and_commission():
    fills = [
        fill(1, "buy", 10, 100, 1.0),
        fill(2, "buy", 10, 110, 2.0),
        fill(3, "sell", 15, 120, 3.0),
        fill(4, "sell", 5, 90, 1.0),
    ]
    trades = round_trips(fills)
    assert list(trades.columns) == [
        "symbol", "direction", "qty", "entry_time", "exit_time",
        "entry_price", "exit_price", "commission", "pnl",
    ]  # fmt: skip
    assert trades["qty"].tolist() == [10, 5, 5]
    assert trades["entry_price"].tolist() == [100, 110, 110]
    assert trades["exit_price"].tolist() == [120, 120, 90]
    # commission shares: lot1 0.1/unit, lot2 0.2/unit, exit3 0.2/unit, exit4 0.2/unit
    assert trades["commission"].tolist() == pytest.approx([3.0, 2.0, 2.0])
    assert trades["pnl"].tolist() == pytest.approx([197.0, 48.0, -102.0])
    assert trades["commission"].sum() == pytest.approx(7.0)
    assert trades["entry_time"].tolist() == [ts_of(1), ts_of(2), ts_of(2)]
    assert trades["exit_time"].tolist() == [ts_of(3), ts_of(3), ts_of(4)]
    assert set(trades["direction"]) == {"long"}


def test_round_trips_through_a_flip():
    fills = [
        fill(1, "sell", 10, 100),
        fill(2, "buy", 15, 90, 1.5),  # covers 10 (+100), opens 5 long at 90
        fill(3, "sell", 5, 95),
    ]
    trades = round_trips(fills)
    assert trades["direction"].tolist() == ["short", "long"]
    assert trades["qty"].tolist() == [10, 5]
    assert trades["commission"].tolist() == pytest.approx([1.0, 0.5])
    assert trades["pnl"].tolist() == pytest.approx([99.0, 24.5])


def test_round_trips_keep_symbols_apart_and_skip_open_lots():
    fills = [
        fill(1, "buy", 1, 10),
        Fill("g", "og", "OTHER", Side.SELL, 1, 50, 0, ts_of(2)),
        fill(3, "sell", 1, 12),
        fill(4, "buy", 3, 11),
    ]
    trades = round_trips(fills)
    assert len(trades) == 1 and trades["pnl"].iloc[0] == pytest.approx(2)
    assert round_trips([]).empty


def test_summarize():
    trades = round_trips(
        [
            fill(1, "buy", 10, 100),
            fill(2, "sell", 10, 105),
            fill(3, "buy", 10, 100),
            fill(4, "sell", 10, 98),
            fill(5, "buy", 10, 100),
            fill(6, "sell", 10, 101),
        ]
    )
    m = summarize(np.array(EQUITY), trades, 252, bars_in_market=3)
    assert set(m) == {
        "sharpe", "sortino", "max_drawdown", "total_return", "num_trades", "win_rate", "exposure",
    }  # fmt: skip
    assert m["num_trades"] == 3
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["total_return"] == pytest.approx(0.089)
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["exposure"] == pytest.approx(0.75)
    assert m["sharpe"] == pytest.approx(sharpe_ratio(returns_of(np.array(EQUITY)), 252))
    empty = summarize(np.array([1.0, 1.0]), round_trips([]), 252)
    assert empty["num_trades"] == 0 and empty["win_rate"] == 0.0


def test_periods_per_year_of_feeds():
    assert SyntheticFeed(["A"], interval="1m").periods_per_year == 252 * 390
    assert SyntheticFeed(["A"], interval="5m").periods_per_year == 252 * 78
    assert SyntheticFeed(["A"], interval="1d").periods_per_year == 252


def test_one_metric_list_feeds_every_consumer():
    from alphaswarm.bots import METRIC_NAMES
    from alphaswarm.cli.output import METRIC_ORDER
    from alphaswarm.ledger.schema import backtest_runs
    from alphaswarm.sweep.api import METRIC_COLUMNS

    stored = set(STORED_METRICS)
    assert stored == {"sharpe", "sortino", "max_drawdown", "total_return", "num_trades",
                      "win_rate", "exposure"}  # fmt: skip
    assert tuple(summarize(np.array(EQUITY), round_trips([]), 252)) == STORED_METRICS
    assert METRIC_COLUMNS == STORED_METRICS == METRIC_ORDER
    assert METRIC_NAMES == (*STORED_METRICS, *METRIC_ALIASES)
    assert stored <= set(backtest_runs.c.keys())
    assert len(METRIC_BY_NAME) == len(METRICS)


def test_metric_aliases_are_declared_and_unknown_names_refused():
    assert metric_name("hit_rate") == "win_rate"
    assert metric_name("sharpe") == "sharpe"
    with pytest.raises(
        ValueError, match="'hitrate' is not a metric; use one of total_return, sharpe"
    ):
        metric_name("hitrate")


def test_cagr_and_longest_drawdown():
    assert cagr(0.21, 504, 252) == pytest.approx(0.1)  # 1.1 ** 2 = 1.21 over two years
    assert math.isnan(cagr(-1.0, 10, 252))
    index = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    # peak at 1 h, back at it at 3 h; peak at 4 h, never back: 2 h and 1 h under water
    equity = pd.Series([1.0, 2.0, 1.5, 2.0, 3.0, 2.5], index=index)
    assert max_drawdown_duration(equity) == pd.Timedelta(hours=2)
