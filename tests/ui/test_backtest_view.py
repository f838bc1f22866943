"""``BacktestResult.stats`` against an independent calculation, and ``result.plot()``
rendered headless to Bokeh models: candles up to 5,000 bars and a line beyond, closed
markets taking no room on the x axis, formatted axes, one price panel per symbol.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.models import (
    CustomJSTickFormatter,
    GlyphRenderer,
    NumeralTickFormatter,
    Select,
)
from bokeh.plotting import figure as Figure

import alphaswarm as aw
from alphaswarm.backtest import BacktestResult
from alphaswarm.bots import DEMO_SPEC
from alphaswarm.metrics import drawdown_series, format_metric
from alphaswarm.ui.backtest_view import MAX_CANDLES, BacktestView, thin
from alphaswarm.ui.time_axis import TimeAxis

DAY = pd.Timedelta(days=1)


def known_result() -> BacktestResult:
    """Six daily bars and four round trips whose numbers are easy to check by hand."""
    index = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC", name="ts")
    equity = pd.DataFrame({"equity": [100.0, 110.0, 99.0, 104.5, 120.0, 114.0]}, index=index)
    equity["cash"] = equity["equity"]
    equity["drawdown"] = drawdown_series(equity["equity"])
    t = list(index)
    trades = pd.DataFrame(
        [
            ("X", "long", 1.0, t[0], t[1], 50.0, 60.0, 0.0, 10.0),
            ("X", "long", 1.0, t[1], t[2], 55.0, 50.0, 0.0, -5.0),
            ("X", "short", 2.0, t[2], t[4], 40.0, 30.0, 0.0, 20.0),
            ("X", "long", 1.0, t[4], t[5], 100.0, 96.0, 0.0, -4.0),
        ],
        columns=[
            "symbol", "direction", "qty", "entry_time", "exit_time",
            "entry_price", "exit_price", "commission", "pnl",
        ],
    )  # fmt: skip
    return BacktestResult(
        id=None,
        bot=aw.Bot(DEMO_SPEC),
        bot_id=None,
        bot_version=None,
        metrics={"exposure": 0.5},
        equity=equity,
        fills=pd.DataFrame(),
        trades=trades,
        orders=pd.DataFrame(),
        bars=6,
        periods_per_year=252,
    )


def test_stats_equal_a_hand_and_pandas_calculation() -> None:
    stats = known_result().stats
    eq = pd.Series([100.0, 110.0, 99.0, 104.5, 120.0, 114.0])
    r = eq.pct_change().dropna()
    assert isinstance(stats, pd.Series)
    assert stats["total_return"] == pytest.approx(0.14)
    assert stats["cagr"] == pytest.approx(1.14 ** (252 / 6) - 1)
    assert stats["sharpe"] == pytest.approx(r.mean() / r.std() * math.sqrt(252))
    downside = math.sqrt((r.clip(upper=0) ** 2).mean())
    assert stats["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(252))
    assert stats["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    assert stats["max_drawdown_duration"] == 3 * DAY  # day 1 (110) back above on day 4
    assert stats["exposure"] == 0.5
    assert stats["num_trades"] == 4
    assert stats["win_rate"] == pytest.approx(0.5)
    assert stats["profit_factor"] == pytest.approx(30 / 9)
    rets = [10 / 50, -5 / 55, 20 / 80, -4 / 100]
    assert stats["best_trade"] == pytest.approx(0.25)
    assert stats["worst_trade"] == pytest.approx(-5 / 55)
    assert stats["avg_trade"] == pytest.approx(sum(rets) / 4)
    assert stats["avg_trade_pnl"] == pytest.approx(21 / 4)
    assert stats["avg_trade_duration"] == 1.25 * DAY
    assert stats["bars"] == 6
    assert stats["final_equity"] == 114.0 and stats["equity_peak"] == 120.0
    assert stats["duration"] == 5 * DAY


def test_stats_of_a_real_backtest_agree_with_its_stored_metrics() -> None:
    result = aw.backtest(DEMO_SPEC, bars=2000, store=False)
    for name, value in result.metrics.items():
        assert result.stats[name] == pytest.approx(value), name
    assert result.stats["start"] == result.equity.index[0]
    copy = pickle.loads(pickle.dumps(result))  # the lazy price source travels with it
    assert len(copy.prices()) == 2000 and copy.stats["sharpe"] == result.stats["sharpe"]


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("final_equity", 101_500.0, "101,500.00"),
        ("total_return", 0.01283, "1.28%"),
        ("sharpe", 20.7913, "20.79"),
        ("num_trades", 35, "35"),
        ("max_drawdown_duration", pd.Timedelta(hours=68, minutes=21), "2 d 20 h"),
        ("profit_factor", float("inf"), "∞"),
        ("cagr", float("nan"), "-"),
    ],
)
def test_metric_values_are_formatted_in_words_not_exponents(
    name: str, value: Any, text: str
) -> None:
    assert format_metric(name, value) == text


# -- rendering -----------------------------------------------------------------------
def figures(viewable: Any) -> list[Figure]:
    root = pn.panel(viewable).get_root()
    return list(root.select({"type": Figure}))


def glyphs(fig: Figure) -> set[str]:
    return {type(r.glyph).__name__ for r in fig.select({"type": GlyphRenderer})}


def by_ylabel(figs: list[Figure], label: str) -> Figure:
    matches = [f for f in figs if f.yaxis[0].axis_label == label]
    assert len(matches) == 1, [f.yaxis[0].axis_label for f in figs]
    return matches[0]


def test_candles_up_to_5000_bars_and_a_close_line_beyond() -> None:
    assert MAX_CANDLES == 5_000
    small = aw.backtest(DEMO_SPEC, bars=5_000, store=False)
    price = by_ylabel(figures(small.plot()), "DEMO price")
    assert {"Quad", "Segment"} <= glyphs(price)  # bodies and wicks
    quads = [r for r in price.select({"type": GlyphRenderer}) if type(r.glyph).__name__ == "Quad"]
    assert len(quads[0].data_source.data["open"]) == 5_000
    large = aw.backtest(DEMO_SPEC, bars=5_001, store=False)
    price = by_ylabel(figures(large.plot()), "DEMO price")
    assert "Quad" not in glyphs(price) and "Line" in glyphs(price)


def test_closed_markets_take_no_room_on_the_x_axis() -> None:
    result = aw.backtest(DEMO_SPEC, bars=1_200, store=False)  # 390 bars a day: 3+ sessions
    axis = TimeAxis.of(result.equity.index)
    assert axis.step == pd.Timedelta(minutes=1)
    assert list(axis.gaps) == [390, 780, 1170]
    figs = figures(result.plot())
    equity = by_ylabel(figs, "Equity")
    lines = [r for r in equity.select({"type": GlyphRenderer}) if type(r.glyph).__name__ == "Line"]
    xs = np.asarray(lines[-1].data_source.data["bar"])
    assert np.array_equal(xs, np.arange(1_200))  # the overnight gap is one bar wide
    fmt = equity.xaxis[0].formatter
    assert isinstance(fmt, CustomJSTickFormatter)
    assert fmt.args["starts"] == [0, 390, 780, 1170]
    assert axis.labels([389, 390]).tolist() == ["2024-01-02 20:59", "2024-01-03 14:30"]


def test_axes_are_labelled_in_words_and_numbers_are_formatted() -> None:
    result = aw.backtest(DEMO_SPEC, bars=800, store=False)
    view = result.plot()
    figs = figures(view)
    formats = {
        "DEMO price": "0,0.00",
        "Equity": "0,0",
        "Drawdown": "0.00%",
        "Trade P&L": "+0,0",
    }
    for label, fmt in formats.items():
        formatter = by_ylabel(figs, label).yaxis[0].formatter
        assert isinstance(formatter, NumeralTickFormatter) and formatter.format == fmt
    assert by_ylabel(figs, "Trade P&L").xaxis[0].axis_label.startswith("Time")
    table = view.stats_table().object
    assert "Sharpe ratio" in table and "Max drawdown" in table
    assert format_metric("total_return", result.stats["total_return"]) in table
    assert "e+" not in table and "e-0" not in table


def test_one_price_panel_per_symbol_and_a_selector_beyond_four() -> None:
    two = aw.Bot(DEMO_SPEC | {"name": "two", "universe": ["AAA", "BBB"]})
    figs = figures(aw.backtest(two, bars=600, store=False).plot())
    assert {f.yaxis[0].axis_label for f in figs} >= {"AAA price", "BBB price"}
    many = aw.Bot(DEMO_SPEC | {"name": "many", "universe": ["A1", "A2", "A3", "A4", "A5"]})
    root = pn.panel(aw.backtest(many, bars=300, store=False).plot()).get_root()
    selects = list(root.select({"type": Select}))
    assert selects and set(selects[0].options) == {"A1", "A2", "A3", "A4", "A5"}


def test_result_is_a_panel_object_and_trades_are_marked_on_the_price() -> None:
    result = aw.backtest(DEMO_SPEC, bars=2_000, store=False)
    view = result.plot()
    assert isinstance(view, BacktestView) and hasattr(view, "_repr_mimebundle_")
    assert isinstance(pn.panel(result), pn.viewable.Viewable)  # via __panel__
    price = by_ylabel(figures(view), "DEMO price")
    scatter = [
        r for r in price.select({"type": GlyphRenderer}) if type(r.glyph).__name__ == "Scatter"
    ]
    entries = {len(r.data_source.data["bar"]) for r in scatter}
    assert entries == {len(result.trades)}  # one entry and one exit marker per trade


def test_dashboard_backtests_page_runs_a_stored_backtest_and_shows_it(good_bot, tmp_ledger):
    from alphaswarm.ui.app import Dashboard

    board = Dashboard()
    (tabs,) = [part for part in board.main() if isinstance(part, pn.Tabs)]
    assert "Backtests" in tabs._names
    page = board.backtests
    page.refresh_bots()
    page.bot_select.value = "ui-sma"
    page.bars_input.value = 800
    result = page.run()
    assert result is not None and result.bars == 800
    assert tmp_ledger.latest_backtest("ui-sma")["id"] == result.id  # the gate sees it
    assert isinstance(page.view, BacktestView) and page.view.result is result
    (shown,) = page.view_holder.objects
    assert "alphaswarm-backtest" in shown.css_classes
    assert figures(shown)  # renders


def test_long_lines_are_thinned_keeping_each_buckets_extremes_in_order() -> None:
    x = np.arange(100_000)
    y = np.sin(x / 500.0)
    y[12_345] = 9.0  # a spike
    y[54_321] = -9.0  # a crash
    tx, ty = thin(x, y, points=2_000)
    assert len(tx) <= 2_000 and np.all(np.diff(tx) > 0)
    assert 12_345 in tx and 54_321 in tx
    assert ty.max() == 9.0 and ty.min() == -9.0
    assert len(thin(x[:50], y[:50])[0]) == 50  # short lines are kept whole


def test_a_run_without_trades_has_stats_and_a_view() -> None:
    result = aw.backtest(DEMO_SPEC, bars=20, store=False)  # too short for the slow average
    assert len(result.trades) == 0
    stats = result.stats
    assert stats["num_trades"] == 0 and math.isnan(stats["profit_factor"])
    assert format_metric("best_trade", stats["best_trade"]) == "-"
    assert figures(result.plot())
