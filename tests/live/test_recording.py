"""Record a live session, replay it: same bars, events, fills and equity, at any speed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pandas as pd
import pytest

import alphaswarm as aw
from alphaswarm.data import make_feed
from alphaswarm.live import BarGroup, FeedEvent
from alphaswarm.live.recording import Recorder, RecordingFeed
from alphaswarm.model import Bar
from tests.live.conftest import FAST, GATE, live_bot, run

FILL_COLUMNS = ["symbol", "side", "qty", "price", "commission", "filled_at"]


def test_recorded_session_replays_to_identical_fills_and_equity(ledger, binance_server, tmp_path):
    path = tmp_path / "btc.parquet"
    data = {
        "feed": "ccxt",
        "exchange": "binance",
        "config": binance_server.config(),
        "trade_grace": 0.2,
        "record": str(path),
        **FAST,
    }
    live = aw.PaperSession(
        live_bot(data, ["BTC/USDT"], qty=0.5), max_bars=23, gate_rules=GATE, force=True, reason="t"
    )
    live_frames = run(live)
    assert live.status == "completed" and live.num_fills > 0

    replayed = []
    for speed in (0, 200):
        bot = live_bot({"feed": "recording", "path": str(path)}, ["BTC/USDT"], qty=0.5)
        session = aw.PaperSession(bot, speed=speed, gate_rules=GATE, force=True, reason="replay")
        frames = run(session)
        assert session.status == "completed" and session.stop_reason == "end of data"
        replayed.append((session, frames))

    live_fills = live.fills[FILL_COLUMNS].reset_index(drop=True)
    for session, frames in replayed:
        pd.testing.assert_frame_equal(
            session.fills[FILL_COLUMNS].reset_index(drop=True), live_fills
        )
        assert session.equity == live.equity and session.realized_pnl == live.realized_pnl
        eq, live_eq = session.equity_curve, live.equity_curve
        assert eq["equity"].iloc[-1] == live_eq["equity"].iloc[-1]
        if session.speed > 0:  # a paced session writes an equity point per bar, like live
            assert list(eq["equity"]) == list(live_eq["equity"])
            assert list(eq["ts"]) == list(live_eq["ts"])
        stages = Counter(f["stage"] for f in frames)
        live_stages = Counter(f["stage"] for f in live_frames)
        for stage in ("bar.received", "order.filled", "feed.gap", "feed.reconnected"):
            assert stages[stage] == live_stages[stage], stage
        assert session.feed_state["gaps"] == 1 and session.feed_state["reconnects"] == 1


def _recording(tmp_path, arrivals: list[float]) -> RecordingFeed:
    feed = make_feed(
        {"feed": "ccxt", "exchange": "binance", "record": str(tmp_path / "r.parquet")}, ["X/USDT"]
    )
    recorder = Recorder(tmp_path / "r.parquet", feed)
    t0 = pd.Timestamp("2024-03-04 14:30", tz="UTC").to_pydatetime()
    for i, at in enumerate(arrivals):
        bar = Bar("X/USDT", t0 + pd.Timedelta(minutes=i), 10, 11, 9, 10.5, 1)
        recorder.add(BarGroup([bar], [at]))
    recorder.add(FeedEvent("reconnected", "reconnected", arrivals[-1] + 0.01))
    recorder.close()
    return RecordingFeed(tmp_path / "r.parquet")


@pytest.mark.parametrize(("speed", "low"), [(1, 0.35), (4, 0.08), (0, 0)])
def test_replay_keeps_the_recorded_timing_at_any_speed(tmp_path, monkeypatch, speed, low):
    """The recorded spacing (0.41 s in all) divided by ``speed`` is waited at least.

    How much longer it takes depends on the machine's load and is not asserted; at
    speed 0 the replay asks for no wait at all.
    """
    feed = _recording(tmp_path, [100.0, 100.2, 100.4])
    waits: list[float] = []
    sleep = asyncio.sleep

    async def recorded_sleep(delay, *args, **kwargs):
        waits.append(delay)
        return await sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)

    async def replay():
        items = []
        async with feed.stream(speed=speed) as stream:
            t = time.perf_counter()
            while True:
                item = await stream.next(5)
                if isinstance(item, FeedEvent) and item.kind == "end":
                    return items, time.perf_counter() - t
                items.append(item)

    items, elapsed = asyncio.run(replay())
    assert [type(i).__name__ for i in items] == ["BarGroup"] * 3 + ["FeedEvent"]
    assert items[1].arrivals == [100.2]
    assert elapsed >= low
    if speed == 0:
        assert [w for w in waits if w > 0] == [], "speed 0 waits for nothing"
    else:
        assert sum(waits) <= 0.41 / speed + 1e-6, "never more than the recorded spacing"
    assert feed.frame()["close"].tolist() == [10.5] * 3
    assert feed.covers(["X/USDT", "Y/USDT"]) == ["Y/USDT"]
