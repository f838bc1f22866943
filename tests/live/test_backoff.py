"""Reconnects back off: a loopback exchange that refuses N connections (ccxt connects lazily)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import alphaswarm as aw
from alphaswarm.data import make_feed
from alphaswarm.data.base import FeedError
from alphaswarm.live import BarGroup, FeedEvent
from tests.live.conftest import GATE, live_bot, run
from tests.live.test_ccxt import ccxt_data

BASE, CAP = 0.02, 0.1


def delays_within_bounds(delays: list[float], base: float, cap: float) -> None:
    """The n-th delay is min(cap, base * 2**(n-1)) times a jitter in [0.5, 1]."""
    for n, delay in enumerate(delays, start=1):
        top = min(cap, base * 2 ** (n - 1))
        assert 0.5 * top <= delay <= top, (n, delay, top)


async def first_bars(feed, timeout: float = 30.0) -> tuple[object, list, dict]:
    """Read a new stream until its first bar group: the stream, the items, the feed state."""
    items: list = []
    async with feed.stream() as stream:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            item = await stream.next(0.5)
            if item is None:
                continue
            items.append(item)
            if isinstance(item, BarGroup):
                return stream, items, feed.state()
    raise AssertionError(f"no bar within {timeout} s: {items}")


def test_refused_connections_grow_the_delay_and_are_not_reconnects(binance_server):
    binance_server.refuse = 3
    feed = make_feed(ccxt_data(binance_server, backoff_base=BASE, backoff_max=CAP), ["BTC/USDT"])
    stream, items, state = asyncio.run(first_bars(feed))
    assert binance_server.ws_attempts == 4  # 3 refused, then the connection that delivered
    assert len(stream.retry_delays) == 3
    delays_within_bounds(stream.retry_delays, BASE, CAP)
    assert stream.retry_delays[2] > stream.retry_delays[0]  # 0.04..0.08 vs 0.01..0.02
    kinds = [i.kind for i in items if isinstance(i, FeedEvent)]
    assert "reconnected" not in kinds and "disconnected" not in kinds
    assert state["reconnects"] == 0 and state["failed_attempts"] == 0 and state["connected"]
    assert "503" in state["last_error"] or "refused" in state["last_error"].lower()


def test_delays_are_capped_and_max_reconnects_gives_up(binance_server):
    binance_server.refuse = 10**6
    data = ccxt_data(binance_server, backoff_base=BASE, backoff_max=0.03, max_reconnects=5)
    feed = make_feed(data, ["BTC/USDT"])

    async def read() -> object:
        async with feed.stream() as stream:
            with pytest.raises(FeedError) as info:
                while True:
                    await stream.next(0.5)
            return stream, info.value

    stream, error = asyncio.run(asyncio.wait_for(read(), 60))
    assert "gave up after 6 failed connection attempts in a row (max_reconnects=5)" in str(error)
    assert binance_server.ws_attempts == 6
    assert len(stream.retry_delays) == 5
    delays_within_bounds(stream.retry_delays, BASE, 0.03)
    assert feed.state()["reconnects"] == 0


def test_a_session_fails_with_an_error_frame_after_max_reconnects(ledger, binance_server):
    binance_server.refuse = 10**6
    data = ccxt_data(binance_server, max_reconnects=2)
    bot = live_bot(data, ["BTC/USDT"], qty=0.5)
    session = aw.PaperSession(bot, max_bars=5, gate_rules=GATE, force=True, reason="no backtest")
    frames = run(session)
    assert session.status == "failed"
    stages = Counter(f["stage"] for f in frames)
    assert stages["feed.reconnected"] == 0 and stages["feed.disconnected"] == 0
    [error] = [f for f in frames if f["stage"] == "error"]
    expected = "gave up after 3 failed connection attempts in a row (max_reconnects=2)"
    assert expected in error["message"]
    assert binance_server.ws_attempts == 3
