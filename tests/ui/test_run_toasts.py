"""Toasts of the open run: a risk halt, an error or a kill raises one; history does not."""

from __future__ import annotations

import pandas as pd

import alphaswarm as aw
from alphaswarm.data import make_feed
from alphaswarm.live import BarGroup, FeedEvent
from alphaswarm.live.recording import Recorder
from alphaswarm.model import Bar
from alphaswarm.paper.runtime import engine_loop
from alphaswarm.ui.base import FramePump
from alphaswarm.ui.run_toasts import RunToasts, toast_for
from tests.live.conftest import GATE, live_bot
from tests.ui.conftest import GOOD_BOT, wait_until


def test_which_frames_raise_a_toast():
    assert toast_for({"stage": "risk.halted", "task_id": "p1", "message": "dd"}) == (
        "error",
        "Risk halt in p1: dd",
    )
    assert toast_for({"stage": "error", "task_id": "p1", "message": "boom"})[0] == "error"
    killed = {"stage": "session.stopped", "task_id": "p1", "status": "killed", "reason": "drill"}
    assert toast_for(killed) == ("warning", "p1 killed: drill")
    assert toast_for({**killed, "status": "stopped"}) is None
    assert toast_for({"stage": "order.filled", "task_id": "p1"}) is None
    gap = {"stage": "feed.gap", "task_id": "p1", "message": "X: 2 bar(s) missing"}
    assert toast_for(gap) == ("warning", "Feed gap in p1: X: 2 bar(s) missing")
    assert toast_for({**gap, "stage": "feed.stalled"})[0] == "warning"
    assert toast_for({**gap, "stage": "feed.reconnected"}) is None


def test_a_feed_gap_of_the_open_run_raises_a_toast(tmp_ledger, tmp_path):
    """A replayed feed with a gap in it: the page that watches the run is told once."""
    path = tmp_path / "gap.parquet"
    feed = make_feed({"feed": "ccxt", "exchange": "binance", "record": str(path)}, ["X/USDT"])
    recorder = Recorder(path, feed)
    t0 = pd.Timestamp("2024-03-04 14:30", tz="UTC").to_pydatetime()
    minutes = [0, 1, 2, 5, 6]  # three bars missing between 14:32 and 14:35
    for i, m in enumerate(minutes):
        if m == 5:
            recorder.add(
                FeedEvent(
                    "gap",
                    "X/USDT: 2 bar(s) missing",
                    100.0 + i,
                    "X/USDT",
                    {
                        "missing": 2,
                        "from_ts": t0 + pd.Timedelta(minutes=2),
                        "to_ts": t0 + pd.Timedelta(minutes=5),
                    },
                )
            )
        bar = Bar("X/USDT", t0 + pd.Timedelta(minutes=m), 10, 11, 9, 10.5, 1)
        recorder.add(BarGroup([bar], [100.0 + i]))
    recorder.close()
    bot = live_bot({"feed": "recording", "path": str(path)}, ["X/USDT"])
    session = aw.PaperSession(bot, speed=0, gate_rules=GATE, force=True, reason="gap toast")
    pump = FramePump(period=500)
    toasts = RunToasts(session, pump=pump, ledger=tmp_ledger)
    session.start(loop=engine_loop())
    assert session.wait(60)

    def told() -> bool:
        pump.tick()
        return any(t.startswith("Feed gap in") for t in toasts.shown)

    wait_until(told, timeout=20)
    assert [t for t in toasts.shown if "Feed gap" in t] == [
        f"Feed gap in {session.paper_run_id}: X/USDT: 2 bar(s) missing"
    ]


def test_a_risk_halt_of_the_open_run_raises_a_toast(good_bot, tmp_ledger):
    tight = aw.Bot(
        {**GOOD_BOT, "name": "ui-tight", "risk": {**GOOD_BOT["risk"], "max_drawdown_pct": 0.00001}}
    )
    aw.backtest(tight, bars=2000)
    session = aw.PaperSession(
        tight, speed=0, duration_minutes=None, max_bars=2000, force=True, reason="test a halt"
    )
    pump = FramePump(period=500)
    toasts = RunToasts(session, pump=pump, ledger=tmp_ledger)
    session.start(loop=engine_loop())
    session.wait(60)
    assert session.status == "halted"

    def halted() -> bool:
        pump.tick()
        return any(t.startswith("Risk halt in") for t in toasts.shown)

    wait_until(halted, timeout=20)
    assert len([t for t in toasts.shown if t.startswith("Risk halt")]) == 1


def test_frames_from_before_the_run_was_opened_raise_none(good_bot, tmp_ledger, run_session):
    session = run_session(good_bot, max_bars=None, speed=1)
    wait_until(lambda: session.status == "running", timeout=20)
    session.kill("drill")
    session.wait(20)
    pump = FramePump(period=500)
    toasts = RunToasts(session, pump=pump, ledger=tmp_ledger)  # opened after the kill
    for _ in range(3):
        pump.tick()
    assert toasts.shown == []
