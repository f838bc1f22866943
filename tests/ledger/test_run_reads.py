"""The run view's ledger reads: price history, closed trades, P&L by symbol, session stats."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import alphaswarm as aw
from alphaswarm.bots import DEMO_SPEC
from alphaswarm.ledger.run_reads import (
    closed_trades,
    expected_bars,
    pnl_by_symbol,
    price_history,
    round_trips,
    run_symbols,
    session_stats,
)
from alphaswarm.paper.runtime import engine_loop


def _fills(*rows: tuple[str, str, float, float, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "symbol": sym,
                "side": side,
                "qty": qty,
                "price": price,
                "commission": fee,
                "filled_at": pd.Timestamp("2024-01-02 09:30") + pd.Timedelta(minutes=i),
            }
            for i, (sym, side, qty, price, fee) in enumerate(rows)
        ]
    )


def test_round_trips_match_first_in_first_out_with_commissions():
    trades = round_trips(
        _fills(
            ("AAA", "buy", 10, 100.0, 1.0),
            ("AAA", "buy", 10, 110.0, 1.0),
            ("AAA", "sell", 15, 120.0, 1.5),  # closes the first lot and half the second
            ("BBB", "sell", 5, 50.0, 0.0),  # a short
            ("BBB", "buy", 5, 40.0, 0.0),
        )
    )
    assert list(trades["symbol"]) == ["AAA", "AAA", "BBB"]
    assert list(trades["direction"]) == ["long", "long", "short"]
    assert list(trades["qty"]) == [10, 5, 5]
    # (120-100)*10 - (1.0 + 1.0) and (120-110)*5 - (0.5 + 0.5)
    assert trades["pnl"].tolist() == pytest.approx([198.0, 49.0, 50.0])
    assert trades["return_pct"].iloc[2] == pytest.approx(20.0)
    assert trades["entry_ts"].iloc[1] == pd.Timestamp("2024-01-02 09:31")


def test_a_fill_through_zero_closes_and_opens():
    trades = round_trips(_fills(("AAA", "buy", 5, 10.0, 0.0), ("AAA", "sell", 8, 12.0, 0.0)))
    assert len(trades) == 1 and trades["qty"].iloc[0] == 5
    trades = round_trips(
        _fills(
            ("AAA", "buy", 5, 10.0, 0.0),
            ("AAA", "sell", 8, 12.0, 0.0),
            ("AAA", "buy", 3, 11.0, 0.0),
        )
    )
    assert list(trades["direction"]) == ["long", "short"]
    assert trades["pnl"].tolist() == pytest.approx([10.0, 3.0])


def test_no_fills_no_trades():
    assert round_trips(_fills()).empty


def test_expected_bars_from_max_bars_or_duration():
    bot = {"universe": ["A", "B"], "data": {"interval": "5m"}}
    assert expected_bars({"config": {"bot": bot, "max_bars": 40}}) == 80
    assert expected_bars({"config": {"bot": bot, "duration_minutes": 60}}) == 24
    assert expected_bars({"config": {"bot": bot, "duration_minutes": 60, "max_bars": 5}}) == 10
    assert expected_bars({"config": {"bot": bot}}) is None


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real demo session, run to completion on a fresh SQLite ledger."""
    path = tmp_path_factory.mktemp("reads")
    led = aw.set_ledger(f"sqlite:///{path}/reads.db")
    bot = aw.Bot(DEMO_SPEC)
    aw.backtest(bot, bars=7800)
    session = aw.PaperSession(bot, speed=0, duration_minutes=None, max_bars=300)
    session.start(loop=engine_loop())
    assert session.wait(120)
    yield led, session
    aw.set_ledger(None)
    led.close()


def test_price_history_holds_every_bar_of_the_run(finished_run):
    led, session = finished_run
    prices = price_history(led, session.paper_run_id)
    assert len(prices) == session.bars_seen
    assert prices["ts"].is_monotonic_increasing
    symbol = run_symbols(led, session.paper_run_id)[0]
    one = price_history(led, session.paper_run_id, symbol)
    assert set(one["symbol"]) == {symbol} and len(one)
    # reading on from the last seq read gives nothing new on a finished run
    assert price_history(led, session.paper_run_id, after_seq=prices.attrs["last_seq"]).empty
    # a window of seqs: the halves add up to the whole
    middle = led.frames(session.paper_run_id)["seq"].median()
    early = price_history(led, session.paper_run_id, before_seq=int(middle))
    late = price_history(led, session.paper_run_id, after_seq=int(middle) - 1)
    assert 0 < len(early) < len(prices) and len(early) + len(late) == len(prices)


def test_pnl_by_symbol_adds_up_to_the_run_pnl(finished_run):
    led, session = finished_run
    row = led.get_run(session.paper_run_id)
    by_symbol = pnl_by_symbol(led, session.paper_run_id)
    assert session.num_fills >= 2
    assert by_symbol["total_pnl"].sum() == pytest.approx(row["total_pnl"], abs=0.01)
    trades = closed_trades(led, session.paper_run_id)
    assert by_symbol["trades"].sum() == len(trades)
    assert by_symbol["realized_pnl"].sum() == pytest.approx(trades["pnl"].sum())


def test_session_stats_from_the_ledger(finished_run):
    led, session = finished_run
    row = led.get_run(session.paper_run_id)
    stats = session_stats(led, session.paper_run_id)
    assert stats["complete"] and stats["status"] == row["status"]
    assert stats["fills"] == row["num_fills"]
    assert stats["final_equity"] == pytest.approx(row["final_equity"], abs=0.01)
    expected_return = (row["final_equity"] / row["starting_cash"] - 1) * 100
    assert stats["return_pct"] == pytest.approx(expected_return, abs=1e-6)
    assert stats["max_drawdown_pct"] == pytest.approx(row["max_drawdown"] * 100, abs=1e-6)
    assert stats["bars_seen"] == row["bars_seen"] == session.bars_seen
    assert stats["bars_total"] == 300 * len(session.bot.universe)
    assert stats["turnover"] > 0 and not math.isnan(stats["turnover"])


def test_session_stats_of_an_unknown_run_is_a_readable_error(finished_run):
    led, _session = finished_run
    with pytest.raises(KeyError, match="unknown paper run"):
        session_stats(led, "nope")
