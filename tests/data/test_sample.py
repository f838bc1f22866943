"""SampleFeed: real daily bars from bokeh_sampledata."""

from __future__ import annotations

import pandas as pd
import pytest

from alphaswarm.data import FeedError, SampleFeed, available_symbols, make_feed


def test_loads_aapl_with_plausible_prices_and_dates():
    feed = SampleFeed()
    assert feed.symbols == ["AAPL"]
    assert feed.interval == "1d" and feed.calendar == "equities"
    assert feed.periods_per_year == 252
    df = feed.frame()
    assert len(df) > 3_000
    assert df["ts"].iloc[0] == pd.Timestamp("2000-03-01", tz="UTC")
    assert df["ts"].iloc[-1] == pd.Timestamp("2013-03-01", tz="UTC")
    assert df["ts"].dt.year.between(2000, 2013).all()
    assert (df["ts"].dt.day_of_week < 5).all()
    assert df["close"].between(1, 1_000).all()
    assert (df["volume"] > 0).all()
    # AAPL closed at 702.10 on 2012-09-19 (unadjusted), near its 2012 peak
    peak = df.loc[df["ts"] == pd.Timestamp("2012-09-19", tz="UTC"), "close"]
    assert peak.iloc[0] == pytest.approx(702.10, abs=0.5)


def test_multi_symbol_groups_and_late_starters():
    feed = SampleFeed(["MSFT", "GOOG", "IBM", "AAPL"])
    assert available_symbols() == ["AAPL", "FB", "GOOG", "IBM", "MSFT"]
    first = next(feed.groups())
    assert [b.symbol for b in first] == ["AAPL", "IBM", "MSFT"]  # GOOG listed in 2004
    later = next(feed.groups(start="2004-08-19"))
    assert [b.symbol for b in later] == ["AAPL", "GOOG", "IBM", "MSFT"]
    assert len(list(feed.groups(start="2013-01-01"))) == len(
        feed.frame(start="2013-01-01")["ts"].unique()
    )


def test_unknown_symbol_is_refused_with_the_available_ones():
    with pytest.raises(FeedError, match="no data for 'TSLA'; available: AAPL, FB, GOOG, IBM, MSFT"):
        SampleFeed(["AAPL", "TSLA"])
    assert SampleFeed(["IBM"]).covers(["IBM", "TSLA", "AAPL"]) == ["TSLA", "AAPL"]


def test_fingerprint_and_make_feed():
    feed = make_feed({"feed": "sample"}, ["IBM", "MSFT"])
    assert isinstance(feed, SampleFeed) and feed.symbols == ["IBM", "MSFT"]
    assert feed.fingerprint() == SampleFeed(["MSFT", "IBM"]).fingerprint()
    assert feed.fingerprint() != SampleFeed(["IBM"]).fingerprint()
    assert make_feed({"feed": "sample"}, []).symbols == ["AAPL"]
