"""SyntheticFeed: determinism, prefix stability, OHLC invariants, calendar, grouping."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alphaswarm.data import FeedError, SyntheticFeed, make_feed
from alphaswarm.data.synthetic import CHUNK
from alphaswarm.model import Bar

COLUMNS = ["ts", "symbol", "open", "high", "low", "close", "volume"]


def test_same_seed_same_bars_different_seed_different_bars():
    a = SyntheticFeed(["AAA", "BBB"], seed=3, bars=5_000).frame()
    b = SyntheticFeed(["AAA", "BBB"], seed=3, bars=5_000).frame()
    c = SyntheticFeed(["AAA", "BBB"], seed=4, bars=5_000).frame()
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], c["close"])


def test_prefix_stability_across_chunk_boundary():
    n = CHUNK + 1_234  # crosses a chunk boundary
    feed = SyntheticFeed("AAA", seed=11)
    short = feed.frame(limit=n)
    long = feed.frame(limit=2 * n)
    assert len(short) == n and len(long) == 2 * n
    pd.testing.assert_frame_equal(short, long.iloc[:n])
    # a feed built with bars=n holds exactly the same first n bars
    pd.testing.assert_frame_equal(SyntheticFeed("AAA", seed=11, bars=n).frame(), short)


def test_groups_limit_matches_frame_prefix():
    feed = SyntheticFeed("AAA", seed=5)
    groups = list(feed.groups(limit=500))
    frame = feed.frame(limit=500)
    assert len(groups) == 500
    assert [g[0].close for g in groups] == frame["close"].tolist()
    assert groups[0][0].ts == frame["ts"].iloc[0].to_pydatetime()


def test_adding_a_symbol_keeps_the_others():
    alone = SyntheticFeed(["AAA"], seed=9, bars=3_000).frame()
    many = SyntheticFeed(["ZZZ", "AAA", "MMM"], seed=9, bars=3_000).frame()
    mine = many[many["symbol"] == "AAA"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, mine)


def test_ohlc_invariants_on_100k_bars():
    df = SyntheticFeed("AAA", seed=1, bars=100_000).frame()
    assert list(df.columns) == COLUMNS
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    o, h, lo, c, v = (df[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    assert np.all(np.isfinite(df[["open", "high", "low", "close", "volume"]].to_numpy()))
    assert np.all(lo > 0)
    assert np.all(h >= np.maximum(o, c))
    assert np.all(lo <= np.minimum(o, c))
    assert np.all(v >= 1) and np.all(v == np.rint(v))
    assert df["ts"].is_monotonic_increasing and df["ts"].is_unique
    # open = previous close plus small noise; occasional gaps but no jumps of 10 %
    rel = np.abs(o[1:] / c[:-1] - 1)
    assert np.median(rel) < 1e-3
    assert rel.max() < 0.1
    # first open is exactly the start price
    assert o[0] == 100.0


def test_intraday_volume_is_u_shaped():
    df = SyntheticFeed("AAA", seed=2, bars=390 * 60).frame()
    minute = (df["ts"].dt.hour * 60 + df["ts"].dt.minute).to_numpy()
    vol = df["volume"].to_numpy()
    open_, mid, close = (
        vol[minute < 15 * 60],
        vol[(minute >= 17 * 60) & (minute < 18 * 60)],
        vol[minute >= 20 * 60 + 30],
    )
    assert open_.mean() > 1.5 * mid.mean()
    assert close.mean() > 1.5 * mid.mean()


def test_equities_calendar_has_no_weekend_or_off_hours_bars():
    df = SyntheticFeed("AAA", bars=390 * 12).frame()
    ts = df["ts"]
    assert ts.iloc[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")
    assert (ts.dt.day_of_week < 5).all()
    minutes = ts.dt.hour * 60 + ts.dt.minute
    assert minutes.min() == 14 * 60 + 30 and minutes.max() == 20 * 60 + 59
    assert ts.dt.date.value_counts().eq(390).all()
    assert ts.dt.date.nunique() == 12


def test_daily_and_24x7_calendars():
    daily = SyntheticFeed("AAA", interval="1d", bars=30, start="2024-01-06").frame()
    assert (daily["ts"].dt.day_of_week < 5).all()
    assert daily["ts"].iloc[0] == pd.Timestamp("2024-01-08", tz="UTC")  # Saturday rolls on
    crypto = SyntheticFeed("BTC", calendar="24x7", bars=3 * 1440, start="2024-01-05").frame()
    assert crypto["ts"].diff().dropna().eq(pd.Timedelta("1min")).all()
    assert (crypto["ts"].dt.day_of_week >= 5).any()


@pytest.mark.parametrize(
    ("interval", "calendar", "expected"),
    [
        ("1m", "equities", 252 * 390),
        ("5m", "equities", 252 * 78),
        ("1d", "equities", 252),
        ("1m", "24x7", 365 * 1440),
        ("1h", "24x7", 365 * 24),
    ],
)
def test_periods_per_year(interval, calendar, expected):
    feed = SyntheticFeed("AAA", interval=interval, calendar=calendar)
    assert feed.periods_per_year == pytest.approx(expected)
    assert feed.interval == interval


def test_multi_symbol_groups_hold_every_symbol_once_per_timestamp():
    feed = SyntheticFeed(["MSFT", "AAPL", "IBM"], seed=4, bars=2_000)
    groups = list(feed.groups())
    assert len(groups) == 2_000
    previous = None
    for group in groups:
        assert [b.symbol for b in group] == ["AAPL", "IBM", "MSFT"]
        assert len({b.ts for b in group}) == 1
        assert isinstance(group[0], Bar)
        assert group[0].ts.tzinfo is UTC
        if previous is not None:
            assert group[0].ts > previous
        previous = group[0].ts
    frame = feed.frame()
    assert len(frame) == 6_000
    assert frame.equals(frame.sort_values(["ts", "symbol"]).reset_index(drop=True))


def test_start_end_are_inclusive_and_limit_counts_groups():
    feed = SyntheticFeed(["AAA", "BBB"], seed=1)
    day = feed.frame(start="2024-01-03", end="2024-01-03")
    assert len(day) == 2 * 390
    assert day["ts"].dt.date.nunique() == 1
    exact = feed.frame(start="2024-01-03 15:00", end=datetime(2024, 1, 3, 15, 4, tzinfo=UTC))
    assert len(exact) == 2 * 5
    assert len(feed.frame(start="2024-01-03", limit=7)) == 14
    assert list(feed.groups(limit=0)) == []


def test_unbounded_streams_lazily_but_frame_needs_a_bound():
    feed = SyntheticFeed("AAA")
    assert not feed.bounded
    stream = feed.groups()
    first = [next(stream) for _ in range(10)]
    assert [g[0].close for g in first] == feed.frame(limit=10)["close"].tolist()
    with pytest.raises(FeedError, match="unbounded"):
        feed.frame()


def test_a_million_bars_in_one_frame():
    """How long it takes is printed by ``bench/engine_throughput.py`` ("generated ... in")."""
    feed = SyntheticFeed("AAA", seed=3, bars=1_000_000)
    df = feed.frame()
    assert len(df) == 1_000_000
    assert df["ts"].is_monotonic_increasing and df["ts"].is_unique
    assert df["close"].tolist()[:10] == feed.frame(limit=10)["close"].tolist()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()


def test_fingerprint_tracks_parameters_not_symbol_order():
    a = SyntheticFeed(["A", "B"], seed=1)
    assert a.fingerprint() == SyntheticFeed(["B", "A"], seed=1).fingerprint()
    assert a.fingerprint() != SyntheticFeed(["A", "B"], seed=2).fingerprint()
    assert a.fingerprint() != SyntheticFeed(["A", "B"], seed=1, volatility=0.3).fingerprint()
    assert len(a.fingerprint()) == 16


def test_covers_lists_missing_symbols():
    feed = SyntheticFeed(["A", "B"])
    assert feed.covers(["A", "B"]) == []
    assert feed.covers(["C", "A", "D"]) == ["C", "D"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"bars": 0}, "bars"),
        ({"interval": "1x"}, "interval"),
        ({"calendar": "moon"}, "calendar"),
        ({"start_price": 0}, "start_price"),
        ({"volatility": -0.1}, "volatility"),
        ({"drift": float("nan")}, "drift"),
        ({"start": "not a date"}, "start"),
        ({"regimes": "yes"}, "regimes"),
    ],
)
def test_bad_parameters_raise_feed_error(kwargs, match):
    with pytest.raises(FeedError, match=match):
        SyntheticFeed("AAA", **kwargs)


def test_bad_symbols_and_bounds():
    with pytest.raises(FeedError, match="duplicated"):
        SyntheticFeed(["A", "A"])
    with pytest.raises(FeedError, match="at least one"):
        SyntheticFeed([])
    feed = SyntheticFeed("A", bars=10)
    with pytest.raises(FeedError, match="limit"):
        list(feed.groups(limit=-1))
    with pytest.raises(FeedError, match="after end"):
        feed.frame(start="2024-02-01", end="2024-01-01")
    with pytest.raises(FeedError, match="start"):
        feed.frame(start="garbage")


def test_regimes_let_trend_following_beat_no_regimes():
    """An SMA crossover makes money on most seeds with regimes, not without."""

    def sma_pnl(seed: int, regimes: bool) -> float:
        c = SyntheticFeed("X", seed=seed, bars=30_000, regimes=regimes).frame()["close"]
        c = c.to_numpy()
        fast = pd.Series(c).rolling(20).mean().to_numpy()
        slow = pd.Series(c).rolling(100).mean().to_numpy()
        pos = (fast > slow)[99:-1].astype(float)
        return float((pos * np.diff(np.log(c[99:]))).sum())

    with_regimes = [sma_pnl(s, True) for s in range(8)]
    without = [sma_pnl(s, False) for s in range(8)]
    assert sum(p > 0 for p in with_regimes) >= 5
    assert np.mean(with_regimes) > np.mean(without)


def test_make_feed_synthetic_defaults_and_options():
    default = make_feed(None, ["AAA", "BBB"])
    assert isinstance(default, SyntheticFeed) and default.seed == 7
    assert default.symbols == ["AAA", "BBB"]
    feed = make_feed({"feed": "synthetic", "seed": 3, "interval": "5m", "bars": 100}, ["A"])
    assert feed.interval == "5m" and feed.bars == 100 and len(feed.frame()) == 100
    assert make_feed(feed.spec, ["A"]).fingerprint() == feed.fingerprint()
    with pytest.raises(FeedError, match="unknown key.*'sede'.*allowed: feed, seed"):
        make_feed({"sede": 3}, ["A"])
    with pytest.raises(FeedError, match="'csv' is not one of synthetic, replay, sample"):
        make_feed({"feed": "csv"}, ["A"])
    with pytest.raises(FeedError, match="seed"):
        make_feed({"seed": "x"}, ["A"])
