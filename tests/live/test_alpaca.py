"""Alpaca adapter against a loopback server speaking the market data stream v2 and REST v2."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import alphaswarm as aw
from alphaswarm.live import FeedAuthError
from tests.live.conftest import FAST, GATE, live_bot, run
from tests.live.loopback import API_KEY, SECRET_KEY, AlpacaServer

START, END = "2024-03-04 14:30", "2024-03-04 14:54"


def alpaca_data(server: AlpacaServer, **extra) -> dict:
    return {
        "feed": "alpaca",
        "interval": "1m",
        "source": "iex",
        "urls": server.urls(),
        **FAST,
        **extra,
    }


def test_session_fills_and_survives_a_broken_stream(ledger, alpaca_keys, alpaca_server, data_home):
    bot = live_bot(alpaca_data(alpaca_server), ["AAPL"])
    aw.backtest(bot, start=START, end=END, ledger=ledger)  # history from the same provider
    session = aw.PaperSession(bot, max_bars=27, gate_rules=GATE, duration_minutes=None)
    frames = run(session)
    assert session.status == "completed", session.stop_reason
    stages = Counter(f["stage"] for f in frames)
    assert session.num_fills > 0 and stages["order.filled"] == session.num_fills
    # every bar the server sent once, in order: a reconnect re-sent two, one came late
    bars = [f["bar"]["ts"] for f in frames if f["stage"] == "bar.received"]
    assert len(bars) == len(set(bars)) == 27
    assert bars == sorted(bars)
    assert stages["feed.reconnected"] == 1 and alpaca_server.connections == 2
    gap = next(f for f in frames if f["stage"] == "feed.gap")
    assert gap["detail"]["missing"] == 3 and gap["symbol"] == "AAPL"
    state = session.feed_state
    assert state["duplicates"] == 2
    assert state["out_of_order"] == 1
    assert state["malformed"] == 2
    assert state["reconnects"] == 1 and state["gaps"] == 1
    risk = ledger.risk_events(session.paper_run_id)
    row = risk[risk["action"] == "feed.gap"].iloc[0]
    assert row["limit"] == "feed.gap" and row["value"] == 3
    # the SDK resubscribed on the new connection
    subs = [m for m in alpaca_server.received if m.get("action") == "subscribe"]
    assert len(subs) == 2 and all(s["bars"] == ["AAPL"] for s in subs)


def test_keys_never_reach_the_ledger_or_frames(
    ledger, alpaca_keys, alpaca_server, data_home, tmp_path
):
    bot = live_bot(alpaca_data(alpaca_server), ["AAPL"])
    aw.backtest(bot, start=START, end=END, ledger=ledger)
    session = aw.PaperSession(bot, max_bars=5, gate_rules=GATE)
    frames = run(session)
    assert session.status == "completed"
    text = repr(frames) + repr(session.run) + repr(session.bot.make_feed())
    assert API_KEY not in text and SECRET_KEY not in text
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert API_KEY.encode() not in blob and SECRET_KEY.encode() not in blob, path


def test_bad_credentials_fail_at_start_without_a_running_row(
    ledger, alpaca_server, monkeypatch, data_home
):
    monkeypatch.setenv("ALPACA_API_KEY", "PKWRONG")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "wrong")
    bot = live_bot(alpaca_data(alpaca_server), ["AAPL"])
    session = aw.PaperSession(bot, max_bars=5, gate_rules=GATE, force=True, reason="test")
    with pytest.raises(FeedAuthError, match=r"refused the API keys from \$ALPACA_API_KEY"):
        session.start()
    runs = ledger.sql("SELECT status FROM paper_trading_runs")
    assert "running" not in set(runs["status"])


def test_stream_refusing_the_keys_fails_the_session(ledger, alpaca_keys, data_home):
    """REST accepts the keys, the stream says ``auth failed``: a failed row, not a retry loop."""

    class Refusing(AlpacaServer):
        async def stream(self, request):
            from aiohttp import web

            ws = web.WebSocketResponse()
            await ws.prepare(request)
            import msgpack

            await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
            await ws.receive()
            await ws.send_bytes(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
            await ws.close()
            return ws

    server = Refusing().start()
    try:
        bot = live_bot(alpaca_data(server), ["AAPL"])
        session = aw.PaperSession(bot, max_bars=5, gate_rules=GATE, force=True, reason="t")
        run(session)
        assert session.status == "failed"
        assert "auth failed" in session.error and "ALPACA_API_KEY" in session.error
        assert session.run["status"] == "failed"
    finally:
        server.stop()


def test_missing_keys_name_the_variables(monkeypatch, data_home):
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.setenv("MY_SECRET", "x")
    with pytest.raises(FeedAuthError, match="MY_KEY"):
        aw.Bot(
            {
                "name": "k",
                "strategy": "buy_and_hold",
                "universe": ["AAPL"],
                "data": {"feed": "alpaca", "key_env": "MY_KEY", "secret_env": "MY_SECRET"},
                "risk": {"kill_switch_attached": True},
            }
        ).make_feed()


def test_history_paginates_and_is_cached(alpaca_keys, alpaca_server, data_home):
    feed = live_bot(alpaca_data(alpaca_server), ["AAPL"]).make_feed()
    first = feed.frame(start=START, end=END)
    assert len(first) == 25
    assert alpaca_server.hits["bars"] == 4  # 25 bars, pages of 7, next_page_token
    assert list((data_home / "alpaca" / "iex" / "1m").glob("*.parquet"))
    again = live_bot(alpaca_data(alpaca_server), ["AAPL"]).make_feed().frame(start=START, end=END)
    assert alpaca_server.hits["bars"] == 4  # the second read touched no network
    assert again.equals(first)
    inner = feed.frame(start="2024-03-04 14:35", end="2024-03-04 14:40")
    assert len(inner) == 6 and alpaca_server.hits["bars"] == 4


def test_gate_names_symbols_the_feed_cannot_serve(ledger, alpaca_keys, alpaca_server, data_home):
    bot = live_bot(alpaca_data(alpaca_server), ["AAPL", "NOPE"])
    with pytest.raises(aw.GateRefused) as refused:
        aw.PaperSession(bot, gate_rules=GATE).start()
    errors = refused.value.result.errors
    assert "the feed cannot serve universe symbol(s): NOPE" in errors
    assert alpaca_server.hits["assets"] == 1  # one market lookup for the whole universe
