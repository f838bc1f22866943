"""ccxt adapter (binance) against a loopback server: REST klines and the spot websocket."""

from __future__ import annotations

from collections import Counter

import pytest

import alphaswarm as aw
from alphaswarm.data import make_feed
from alphaswarm.data.base import FeedError
from tests.live.conftest import FAST, GATE, live_bot, run
from tests.live.loopback import BinanceServer, load


def ccxt_data(server: BinanceServer, **extra) -> dict:
    return {
        "feed": "ccxt",
        "exchange": "binance",
        "interval": "1m",
        "config": server.config(),
        "trade_grace": 0.2,
        **FAST,
        **extra,
    }


def test_session_on_watch_ohlcv_fills_reconnects_and_reports_a_gap(ledger, binance_server):
    bot = live_bot(ccxt_data(binance_server), ["BTC/USDT"], qty=0.5)
    session = aw.PaperSession(bot, max_bars=23, gate_rules=GATE, force=True, reason="no backtest")
    frames = run(session)
    assert session.status == "completed", session.stop_reason
    stages = Counter(f["stage"] for f in frames)
    assert session.num_fills > 0
    bars = [f["bar"] for f in frames if f["stage"] == "bar.received"]
    assert [b["ts"] for b in bars] == sorted({b["ts"] for b in bars}) and len(bars) == 23
    # a bar is the *closed* candle: the final update, not the half-way one
    closes = {k[0]: float(k[4]) for k in load("binance/klines.json")}
    for b in bars:
        ts_ms = int(aw.model.to_utc(b["ts"]).timestamp() * 1000)
        assert b["close"] == pytest.approx(closes[ts_ms])
    assert stages["feed.reconnected"] == 1 and stages["feed.gap"] == 1
    assert session.feed_state["duplicates"] >= 1
    subs = [m for m in binance_server.received if m.get("method") == "SUBSCRIBE"]
    assert len(subs) == 2 and subs[0]["params"] == ["btcusdt@kline_1m"]


def test_watch_trades_are_aggregated_into_minute_bars(ledger, binance_server):
    binance_server.script = load("binance/stream_trades.json")
    data = ccxt_data(binance_server, use="trades")
    bot = live_bot(data, ["BTC/USDT"], qty=0.5)
    # a minute closes once the exchange's clock (the latest trade, plus the wall time
    # since) passes its end plus the grace: the five first minutes close at once
    session = aw.PaperSession(bot, max_bars=5, gate_rules=GATE, force=True, reason="t")
    frames = run(session)
    bars = [f["bar"] for f in frames if f["stage"] == "bar.received"]
    assert len(bars) == 5
    trades = [s["send"] for s in load("binance/stream_trades.json")["connections"][0]]
    first = [float(t["p"]) for t in trades[:3]]
    assert bars[0]["open"] == first[0] and bars[0]["close"] == first[-1]
    assert bars[0]["high"] == max(first) and bars[0]["volume"] == pytest.approx(0.03)
    subs = [m for m in binance_server.received if m.get("method") == "SUBSCRIBE"]
    assert subs[0]["params"] == ["btcusdt@trade"]


def test_fetch_ohlcv_paginates_within_the_rate_limit_and_is_cached(binance_server, data_home):
    feed = make_feed(ccxt_data(binance_server), ["BTC/USDT"])
    frame = feed.frame(start="2024-03-04 14:30", end="2024-03-04 15:06")
    assert len(frame) == 37
    assert binance_server.hits["klines"] == 4  # pages of 10
    again = make_feed(ccxt_data(binance_server), ["BTC/USDT"])
    assert again.frame(start="2024-03-04 14:30", end="2024-03-04 15:06").equals(frame)
    assert binance_server.hits["klines"] == 4
    assert list((data_home / "ccxt" / "binance" / "1m").glob("*.parquet"))


def test_stall_emits_heartbeats_then_halts(ledger, binance_server):
    binance_server.script = {"connections": [[]]}  # subscribed, then silence
    bot = live_bot(
        ccxt_data(binance_server, stall_seconds=0.6, halt_on_stall=True), ["BTC/USDT"], qty=0.5
    )
    session = aw.PaperSession(
        bot, gate_rules=GATE, force=True, reason="t", heartbeat_seconds=0.2, poll_interval=0.1
    )
    frames = run(session)
    stages = [f["stage"] for f in frames]
    assert "heartbeat" in stages and "feed.stalled" in stages
    assert stages.index("heartbeat") < stages.index("feed.stalled")
    assert session.status == "halted" and "stalled" in session.stop_reason


def test_stall_without_halt_keeps_the_session_alive(ledger, binance_server):
    binance_server.script = {"connections": [[]]}
    bot = live_bot(ccxt_data(binance_server, stall_seconds=0.3), ["BTC/USDT"], qty=0.5)
    session = aw.PaperSession(bot, gate_rules=GATE, force=True, reason="t", poll_interval=0.1)
    frames: list = []
    session.frames.subscribe(frames.append)
    session.start()
    try:
        assert not session.wait(1.0)
        assert any(f["stage"] == "feed.stalled" for f in frames)
        assert session.status == "running" and session.feed_state["stalled"]
    finally:
        session.stop()
    assert session.status == "stopped"


def test_covers_is_a_market_lookup(binance_server):
    feed = make_feed(ccxt_data(binance_server), ["BTC/USDT"])
    assert feed.covers(["BTC/USDT", "ETH/USDT", "NOPE/USDT"]) == ["NOPE/USDT"]
    assert binance_server.hits["exchangeInfo"] == 1


def test_keys_are_refused_in_the_config():
    with pytest.raises(FeedError, match="apiKey"):
        make_feed({"feed": "ccxt", "exchange": "binance", "config": {"apiKey": "x"}}, ["BTC/USDT"])
    with pytest.raises(FeedError, match="not a ccxt exchange"):
        make_feed({"feed": "ccxt", "exchange": "nosuchexchange"}, ["BTC/USDT"])
