"""The tutorial's paper session, driven from Python."""

from __future__ import annotations

import re
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import alphaswarm as aw
from alphaswarm.data import ReplayFeed
from alphaswarm.strategies import Strategy

TUTORIAL_RUN_SQL = (
    "SELECT id, bot_id, status, total_pnl, num_fills, started_at, ended_at "
    "FROM paper_trading_runs ORDER BY started_at DESC LIMIT 1;"
)
TUTORIAL_FILLS_SQL = (
    "SELECT order_id, symbol, side, qty, price, filled_at FROM paper_fills "
    "WHERE paper_run_id = :run_id ORDER BY filled_at;"
)


def run_session(bot, **kwargs) -> tuple[aw.PaperSession, list[dict]]:
    frames: list[dict] = []
    kwargs.setdefault("speed", 0)
    session = aw.PaperSession(bot, **kwargs)
    session.frames.subscribe(frames.append)
    session.start()
    assert session.wait(60), "session did not finish"
    return session, frames


def test_tutorial_flow_from_python(ledger, bot):
    session, frames = run_session(bot, duration_minutes=390)
    stages = Counter(f["stage"] for f in frames)
    for stage in (
        "bar.received",
        "signal.emitted",
        "order.placed",
        "order.filled",
        "equity.update",
    ):
        assert stages[stage] > 0, stage
    assert stages["metadata_gate"] == 1 and stages["done"] == 1
    run = ledger.sql(TUTORIAL_RUN_SQL).iloc[0]
    assert run["id"] == session.paper_run_id
    assert run["status"] == "completed"
    assert run["total_pnl"] is not None and not np.isnan(run["total_pnl"])
    fills = ledger.sql(TUTORIAL_FILLS_SQL, run_id=session.paper_run_id)
    assert len(fills) == run["num_fills"] == stages["order.filled"] == session.num_fills
    assert run["total_pnl"] == pytest.approx(session.equity - 100_000)


def test_frame_envelope(ledger, bot):
    _, frames = run_session(bot, max_bars=60)
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(1, len(frames) + 1))
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for f in frames:
        assert {"task_id", "stage", "message", "timestamp", "ts", "seq"} <= f.keys()
        assert iso.match(f["timestamp"]), f["timestamp"]
        assert isinstance(f["ts"], float)
    running = [f for f in frames if f["stage"] not in ("metadata_gate",)]
    assert all("equity" in f and "positions" in f for f in running)
    fill = next(f for f in frames if f["stage"] == "order.filled")
    assert {"order_id", "symbol", "side", "qty", "price", "commission"} <= fill["fill"].keys()
    assert "cash" in fill and fill["positions"]["DEMO"]["qty"] > 0
    eq = next(f for f in frames if f["stage"] == "equity.update")
    assert {"equity", "cash", "positions"} <= eq.keys()


def test_frames_replay_from_ledger(ledger, bot):
    session, frames = run_session(bot, max_bars=30)
    stored = ledger.frames_after(session.paper_run_id, 10)
    assert [f["seq"] for f in stored] == [f["seq"] for f in frames if f["seq"] > 10]
    assert stored[-1]["stage"] == "done"


def test_done_result_matches_ledger(ledger, bot):
    session, frames = run_session(bot, max_bars=400)
    result = frames[-1]["result"]
    row = ledger.get_run(session.paper_run_id)
    for key in ("status", "bars_seen", "orders_submitted", "num_fills", "total_pnl"):
        assert row[key] == pytest.approx(result[key]), key
    assert result["final_equity"] == pytest.approx(row["final_equity"])
    assert result["realized_pnl"] == pytest.approx(row["realized_pnl"])
    assert result["max_drawdown"] == pytest.approx(row["max_drawdown"])


def test_paper_replay_matches_backtest(ledger, make_bot):
    bot = make_bot()
    bt = aw.backtest(bot, bars=3000, ledger=ledger)
    session, frames = run_session(bot, max_bars=3000, duration_minutes=None)
    fills = ledger.fills(session.paper_run_id)
    assert len(fills) == len(bt.fills) > 10
    np.testing.assert_array_equal(fills["price"].to_numpy(), bt.fills["price"].to_numpy())
    np.testing.assert_array_equal(fills["qty"].to_numpy(), bt.fills["qty"].to_numpy())
    assert list(fills["filled_at"]) == list(bt.fills["filled_at"])
    assert session.equity == pytest.approx(bt.equity["equity"].iloc[-1], abs=1e-6)
    # the equity curve, as stored rows and as the equity frames replayed from the ledger
    curve = ledger.equity(session.paper_run_id)
    np.testing.assert_allclose(curve["equity"], bt.equity["equity"], rtol=0, atol=1e-6)
    stored = ledger.frames_after(session.paper_run_id, 0, stages=("equity.update",))
    assert stored == [f for f in frames if f["stage"] == "equity.update"]
    np.testing.assert_allclose(
        [f["equity"] for f in stored], bt.equity["equity"], rtol=0, atol=1e-6
    )


def test_start_returns_at_once_and_stop(ledger, bot):
    """start() returns while the session runs on (an open-ended one: only stop ends it)."""
    session = aw.PaperSession(bot, speed=60, duration_minutes=None)
    session.start()
    assert session.status == "running" and not session.finished
    assert ledger.get_run(session.paper_run_id)["status"] == "running"
    deadline = time.monotonic() + 30
    while session.bars_seen < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session.bars_seen >= 1 and session.status == "running"
    assert session.stop("enough")
    assert session.wait(5)
    row = ledger.get_run(session.paper_run_id)
    assert row["status"] == "stopped" and row["stop_reason"] == "enough"
    assert row["total_pnl"] is not None and row["ended_at"] is not None
    assert not session.stop("again"), "a second stop is a no-op"


def test_risk_breach_halts_session(ledger, make_bot):
    bot = make_bot(risk={"max_daily_loss": 1.0, "kill_switch_attached": True})
    aw.backtest(bot, ledger=ledger)
    session, frames = run_session(bot, duration_minutes=None, max_bars=5000, force=True, reason="t")
    halted = [f for f in frames if f["stage"] == "risk.halted"]
    assert len(halted) == 1
    h = halted[0]
    assert h["limit"] == "max_daily_loss" and h["threshold"] == 1.0 and h["value"] > 1.0
    assert "orders_cancelled" in h["action"] and "positions_flattened" in h["action"]
    assert session.status == "halted"
    row = ledger.get_run(session.paper_run_id)
    assert row["status"] == "halted" and "max_daily_loss" in row["stop_reason"]
    events = ledger.risk_events(session.paper_run_id)
    assert "halted" in set(events["action"])
    assert session.positions == {}, "on_breach=flatten closes every position"


class ExplodingAfterFive(Strategy):
    name = "exploding_after_five"

    def validate(self):
        self.n = 0

    def on_bar(self, bar, ctx):
        self.n += 1
        if self.n > 5:
            raise RuntimeError("strategy blew up on bar 6")
        return "buy" if self.n == 1 else None


def test_strategy_exception_gives_error_frame_and_failed_row(ledger, make_bot):
    bot = make_bot(strategy=ExplodingAfterFive, params={})
    session, frames = run_session(bot, force=True, reason="no backtest for a test strategy")
    stages = [f["stage"] for f in frames]
    assert "error" in stages and stages[-1] == "done"
    err = next(f for f in frames if f["stage"] == "error")
    assert "strategy blew up on bar 6" in err["message"]
    row = ledger.get_run(session.paper_run_id)
    assert row["status"] == "failed" and "blew up" in row["error"]
    assert row["total_pnl"] is not None
    assert (
        ledger.sql("SELECT count(*) AS n FROM paper_trading_runs WHERE status='running'")["n"].iloc[
            0
        ]
        == 0
    )


def test_forced_gate_writes_audit_row(ledger, make_bot):
    bot = make_bot(name="never-backtested")
    with pytest.raises(aw.GateRefused) as info:
        aw.PaperSession(bot, speed=0).start()
    assert any("no backtest_runs row" in e for e in info.value.result.errors)
    with pytest.raises(aw.ModelError, match="reason"):
        aw.PaperSession(bot, speed=0, force=True).start()
    session, frames = run_session(bot, max_bars=10, force=True, reason="dry run approved by risk")
    gate = frames[0]
    assert gate["stage"] == "metadata_gate" and gate["forced"] and gate["status"] == "error"
    audit = ledger.audit_rows("paper_gate.forced")
    assert len(audit) == 1 and audit.iloc[0]["detail"]["reason"] == "dry run approved by risk"


def test_heartbeat_on_stalled_feed(ledger, make_bot):
    ts = pd.date_range("2024-01-02 14:30", periods=3, freq="1min", tz="UTC").append(
        pd.DatetimeIndex([pd.Timestamp("2024-01-02 15:33", tz="UTC")])
    )
    df = pd.DataFrame(
        {"ts": ts, "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 1000}
    )
    feed = ReplayFeed.from_frame(df, symbol="DEMO")
    bot = make_bot(name="stalled")
    session, frames = run_session(
        bot,
        feed=feed,
        speed=3600,
        heartbeat_seconds=300,
        max_idle_seconds=None,
        duration_minutes=None,
        force=True,
        reason="heartbeat test",
    )
    beats = [f for f in frames if f["stage"] == "heartbeat"]
    assert 5 <= len(beats) <= 13, len(beats)
    assert all(f["idle_seconds"] >= 299 for f in beats)
    assert session.status == "completed"


def test_many_sessions_at_once(ledger, bot):
    sessions = [aw.PaperSession(bot, speed=0, max_bars=300).start() for _ in range(5)]
    assert all(s.wait(60) for s in sessions)
    assert {s.status for s in sessions} == {"completed"}
    assert len({s.paper_run_id for s in sessions}) == 5
    counts = {s.num_fills for s in sessions}
    assert len(counts) == 1, "same bars, same fills"


def test_frames_name_bar_time_and_recorded_time(ledger, bot):
    """A replayed 2024 feed: ``bar_time`` is the bar's clock, ``recorded_at`` the wall's."""
    start = pd.Timestamp("2024-01-02 14:30", tz="UTC")
    closes = [100 + (i % 7) - (i % 3) for i in range(40)]
    rows = [
        {
            "ts": start + pd.Timedelta(minutes=i),
            "symbol": "DEMO",
            "open": c,
            "high": c,
            "low": c,
            "close": c,
            "volume": 1_000,
        }
        for i, c in enumerate(closes)
    ]
    before = time.time()
    _, frames = run_session(bot, feed=ReplayFeed(pd.DataFrame(rows), interval="1m"))
    after = time.time()
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for f in frames:
        assert f["recorded_at"] == f["timestamp"]
        recorded = pd.Timestamp(f["recorded_at"])
        assert recorded.tz is not None
        assert before - 1 <= recorded.timestamp() <= after + 1  # the wall clock
    bars = [f for f in frames if f["stage"] == "bar.received"]
    assert len(bars) == len(rows)
    for f in bars:
        assert iso.match(f["bar_time"]), f["bar_time"]
        assert pd.Timestamp(f["bar_time"]) == pd.Timestamp(f["bar"]["ts"])  # the bar's clock
    assert bars[0]["bar_time"] == "2024-01-02T14:30:00.000Z"
    gate = next(f for f in frames if f["stage"] == "metadata_gate")
    assert gate["bar_time"] is None  # before the first bar
    for f in frames:
        if f["stage"] in ("order.filled", "equity.update"):
            assert f["bar_time"].startswith("2024-01-02T")
