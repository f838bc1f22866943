"""The provider-independent core: de-duplication, order, grouping, gaps, hours, overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alphaswarm.data import make_feed
from alphaswarm.data.base import FeedError
from alphaswarm.live import BarGroup, BarSequencer, FeedEvent, FeedState, feed_override
from alphaswarm.live.ccxt import TradeAggregator
from alphaswarm.live.hours import AlwaysOpen, ExchangeHours
from alphaswarm.model import Bar

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def bar(symbol: str, minute: int, close: float = 10.0) -> Bar:
    return Bar(symbol, T0 + timedelta(minutes=minute), close, close, close, close, 1)


def groups(items):
    return [
        [(b.symbol, int((b.ts - T0).total_seconds() // 60)) for b in g]
        for g in items
        if isinstance(g, BarGroup)
    ]


def test_groups_wait_for_every_symbol_or_a_later_bar_or_the_grace():
    state = FeedState()
    seq = BarSequencer(["A", "B"], 60, AlwaysOpen(), state, group_grace=1.0)
    assert seq.accept(bar("A", 0), 0.0) == []
    assert groups(seq.accept(bar("B", 0), 0.1)) == [[("A", 0), ("B", 0)]]
    assert seq.accept(bar("B", 1), 1.0) == []
    assert groups(seq.accept(bar("A", 2), 1.5)) == [[("B", 1)]]  # a later bar closes minute 1
    assert groups(seq.tick(2.4)) == []
    assert groups(seq.tick(2.6)) == [[("A", 2)]]  # the grace ran out
    group = seq.accept(bar("A", 3), 3.0)
    assert group == []
    out = seq.accept(bar("B", 3), 3.2)
    assert out[-1].arrivals == [3.0, 3.2] and out[-1].arrived == 3.2
    assert state.groups == 4 and state.bars == 6


def test_duplicates_and_out_of_order_bars_are_counted_and_dropped():
    state = FeedState()
    seq = BarSequencer(["A"], 60, AlwaysOpen(), state)
    for m in (0, 1, 2):
        seq.accept(bar("A", m), m)
    assert seq.accept(bar("A", 1), 5) == []  # re-sent after a reconnect
    assert seq.accept(bar("A", -1), 5) == []  # older than what was handed out
    assert seq.accept(bar("ZZZ", 3), 5) == []  # not subscribed
    assert (state.duplicates, state.out_of_order, state.malformed) == (1, 1, 1)
    assert groups(seq.accept(bar("A", 3), 6)) == [[("A", 3)]]


def test_gaps_count_only_bars_the_market_should_have_made():
    state = FeedState()
    seq = BarSequencer(["A"], 60, ExchangeHours("XNYS"), state)
    friday_close = datetime(2024, 3, 1, 20, 59, tzinfo=UTC)
    monday_open = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    seq.accept(Bar("A", friday_close, 1, 1, 1, 1), 0)
    out = seq.accept(Bar("A", monday_open, 1, 1, 1, 1), 1)
    assert not [e for e in out if isinstance(e, FeedEvent)] and state.gaps == 0
    out = seq.accept(Bar("A", monday_open + timedelta(minutes=4), 1, 1, 1, 1), 2)
    gap = out[0]
    assert isinstance(gap, FeedEvent) and gap.kind == "gap" and gap.data["missing"] == 3
    assert state.gaps == 1 and state.missing_bars == 3


def test_gap_tolerance():
    state = FeedState()
    seq = BarSequencer(["A"], 60, AlwaysOpen(), state, gap_tolerance=2)
    seq.accept(bar("A", 0), 0)
    seq.accept(bar("A", 3), 1)
    assert state.gaps == 0
    seq.accept(bar("A", 7), 2)
    assert state.gaps == 1


def test_exchange_hours_say_when_the_next_bar_comes():
    hours = ExchangeHours("XNYS")
    saturday = datetime(2024, 3, 2, 12, tzinfo=UTC)
    assert not hours.is_open(saturday)
    assert hours.next_open(saturday) == datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    assert hours.is_open(datetime(2024, 3, 4, 15, tzinfo=UTC))
    assert not hours.is_open(datetime(2024, 12, 25, 15, tzinfo=UTC))  # a holiday


def test_an_out_of_hours_start_says_when_the_next_bar_is_expected(monkeypatch):
    import asyncio

    from tests.live.loopback import API_KEY, SECRET_KEY

    monkeypatch.setenv("ALPACA_API_KEY", API_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET_KEY)
    feed = make_feed({"feed": "alpaca", "urls": {"stream": "ws://127.0.0.1:9/"}}, ["AAPL"])
    saturday = datetime(2024, 3, 2, 12, tzinfo=UTC)
    assert feed.next_bar_expected(saturday) == datetime(2024, 3, 4, 14, 31, tzinfo=UTC)
    monkeypatch.setattr(feed.hours, "is_open", lambda when: False)
    monkeypatch.setattr(feed, "_open", _never)

    async def first():
        async with feed.stream() as stream:
            return await stream.next(1)

    event = asyncio.run(first())
    assert event.kind == "waiting" and "next bar expected" in event.message
    assert feed.state()["market_open"] is False


async def _never():
    raise ConnectionError("no network in this test")


def test_trades_close_after_the_minute_plus_grace():
    agg = TradeAggregator(60, grace=2.0)
    ms = int(T0.timestamp() * 1000)
    agg.add("X", ms + 1000, 10.0, 1.0, wall=100.0)
    agg.add("X", ms + 50_000, 12.0, 2.0, wall=100.5)
    assert agg.close(wall=105.0) == []  # exchange clock ~ ms+54.5 s
    assert agg.close(wall=111.4) == []  # ms+60.9 s: inside the grace
    (closed,) = agg.close(wall=112.6)  # ms+62.1 s
    assert (closed.open, closed.high, closed.low, closed.close, closed.volume) == (
        10,
        12,
        10,
        12,
        3,
    )
    agg.add("X", ms + 59_000, 11.0, 1.0, wall=113.0)  # a late trade of a closed bar
    assert agg.late == 1


def test_feed_override_for_the_command_line():
    spec = {"feed": "synthetic", "seed": 7, "interval": "1m"}
    data, universe = feed_override(spec, "ccxt:binance", ["BTC/USDT,ETH/USDT"])
    assert data == {"feed": "ccxt", "exchange": "binance", "interval": "1m"}
    assert universe == ["BTC/USDT", "ETH/USDT"]
    live = {"feed": "ccxt", "exchange": "kraken", "stall_seconds": 30, "halt_on_stall": True}
    data, universe = feed_override(live, "ccxt:binance", [])
    assert data["stall_seconds"] == 30 and data["halt_on_stall"] and universe == []
    assert feed_override(None, "alpaca:sip", ["AAPL"])[0]["source"] == "sip"
    assert feed_override(None, "recording:r.parquet", [])[0] == {
        "feed": "recording",
        "path": "r.parquet",
    }
    with pytest.raises(FeedError, match="exchange id"):
        feed_override(spec, "ccxt", [])
    with pytest.raises(FeedError, match="not one of"):
        feed_override(spec, "kafka:x", [])


def test_live_data_blocks_name_unknown_keys():
    with pytest.raises(FeedError, match="unknown key.*'exchnage'.*allowed: feed, universe"):
        make_feed({"feed": "ccxt", "exchnage": "binance"}, ["BTC/USDT"])
    with pytest.raises(FeedError, match="data.use"):
        make_feed({"feed": "ccxt", "use": "quotes"}, ["BTC/USDT"])
    with pytest.raises(FeedError, match="recording .* does not exist"):
        make_feed({"feed": "recording", "path": "/nonexistent.parquet"}, [])
    feed = make_feed({"feed": "ccxt", "universe": ["ETH/USDT"]}, ["BTC/USDT"])
    assert feed.symbols == ["ETH/USDT"] and not feed.bounded
    assert feed.fingerprint().startswith("ccxt:")
