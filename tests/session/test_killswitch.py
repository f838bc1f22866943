"""The kill switch: latched, concurrent fan-out, modes, ttl, fail-closed."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

import alphaswarm as aw
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.registry import registry


def start_many(bot, n, **kw):
    kw.setdefault("speed", 60)
    kw.setdefault("duration_minutes", None)
    return [aw.PaperSession(bot, **kw).start() for _ in range(n)]


def test_engage_stops_twenty_sessions_with_final_rows(ledger, bot):
    sessions = start_many(bot, 20)
    deadline = time.monotonic() + 60
    while min(s.bars_seen for s in sessions) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    result = kill_switch().engage("drill", actor="test")
    assert result["targets"]["paper"]["halted"] + result["targets"]["bots"]["halted"] == 20
    assert result["failures"] == []
    assert result["elapsed_ms"] > 0  # the figure itself is measured in bench/, not asserted
    for s in sessions:
        assert s.finished and s.status == "killed"
    rows = ledger.sql("SELECT status, total_pnl, ended_at FROM paper_trading_runs")
    assert list(rows["status"]) == ["killed"] * 20
    assert rows["total_pnl"].notna().all() and rows["ended_at"].notna().all()
    audit = ledger.audit_rows("kill_switch.engage")
    assert len(audit) == 1 and audit.iloc[0]["detail"]["reason"] == "drill"
    with pytest.raises(aw.KillSwitchEngaged):
        aw.PaperSession(bot, speed=0).start()
    kill_switch().reset(actor="test")
    s = aw.PaperSession(bot, speed=0, max_bars=5).start()
    assert s.wait(10) and s.status == "completed"


def test_flatten_mode_closes_positions(ledger, bot):
    (session,) = start_many(bot, 1, speed=0)
    deadline = time.time() + 20
    while not session.positions and time.time() < deadline:
        time.sleep(0.001)
    kill_switch().engage("flatten drill", mode="flatten", actor="test")
    assert session.status == "killed"
    assert session.positions == {}
    frames = ledger.frames(session.paper_run_id)
    stopped = frames[frames["stage"] == "session.stopped"].iloc[0]["frame"]
    assert stopped["mode"] == "flatten"


def test_freeze_keeps_sessions_but_blocks_orders(ledger, bot):
    (session,) = start_many(bot, 1, speed=0, duration_minutes=None, max_bars=3000)
    kill_switch().engage("freeze drill", mode="freeze", actor="test")
    assert session.wait(60)
    assert session.status == "completed", "freeze leaves sessions running"
    frames = ledger.frames(session.paper_run_id)
    after = frames[frames["seq"] > frames[frames["stage"] == "bar.received"]["seq"].min()]
    assert (after["stage"] == "order.rejected").any()
    rejected = after[after["stage"] == "order.rejected"].iloc[-1]["frame"]
    assert "frozen" in rejected["reason"]


def test_reduce_only_lets_exits_through(ledger, make_bot):
    bot = make_bot(name="reduce")
    aw.backtest(bot, ledger=ledger)
    session = aw.PaperSession(bot, speed=0, max_bars=3000, duration_minutes=None)
    session.start()
    deadline = time.time() + 20
    while not session.positions and time.time() < deadline:
        time.sleep(0.0005)
    kill_switch().engage("reduce drill", mode="reduce_only", actor="test")
    assert session.wait(60)
    orders = ledger.orders(session.paper_run_id)
    engaged_at = kill_switch().engaged_at
    later = orders[orders["created_at"] > engaged_at]
    assert set(later["side"]) <= {"sell"}, "only exposure-reducing orders pass"


def test_ttl_releases_itself(ledger, bot):
    kill_switch().engage("short pause", ttl_seconds=0.3, actor="test")
    assert kill_switch().order_mode() == "halted"
    deadline = time.monotonic() + 30
    while kill_switch().order_mode() is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kill_switch().order_mode() is None
    assert not kill_switch().engaged
    assert len(ledger.audit_rows("kill_switch.expired")) == 1


def test_broken_store_fails_closed(ledger, bot, tmp_path):
    con = sqlite3.connect(tmp_path / "ledger.db")
    con.execute("DROP TABLE kill_switch")
    con.commit()
    con.close()
    kill_switch().refresh(force=True)
    assert not kill_switch().store_ok
    assert kill_switch().order_mode() == "frozen"
    with pytest.raises(aw.KillSwitchEngaged):
        aw.PaperSession(bot, speed=0).start()


def test_per_bot_halt_leaves_other_bots(ledger, bot, make_bot):
    other = make_bot(name="other-bot")
    aw.backtest(other, ledger=ledger)
    mine = start_many(bot, 2)
    theirs = start_many(other, 1)
    result = kill_switch().engage("bot drill", bot=mine[0].bot_id, actor="test")
    assert sum(t["halted"] for t in result["targets"].values()) == 2
    assert all(s.finished for s in mine) and not theirs[0].finished
    assert not kill_switch().engaged
    with pytest.raises(aw.KillSwitchEngaged):
        aw.PaperSession(bot, speed=0).start()
    kill_switch().reset(bot=mine[0].bot_id, actor="test")
    theirs[0].stop("done")


def test_halt_target_counts_zero_when_nothing_runs(ledger):
    for name in ("agents", "rl", "workflows", "terraform", "quant-agents"):
        assert kill_switch().halt_target(name, "drill")["halted"] == 0


def test_failing_target_is_listed_not_raised(ledger, bot):
    def broken(reason, mode):
        raise RuntimeError("agent runtime unreachable")

    kill_switch().register("agents", broken)
    try:
        result = kill_switch().engage("drill", actor="test")
        assert any("agent runtime unreachable" in f for f in result["failures"])
        assert kill_switch().engaged
    finally:
        kill_switch().unregister("agents", broken)


def test_targets_halt_concurrently_the_first_on_the_engaging_thread(ledger):
    """Two targets that can only finish together (a barrier of two) both finish."""
    together = threading.Barrier(2, timeout=10)
    threads: dict[str, threading.Thread] = {}

    def target(name):
        def halt(reason, mode):
            threads[name] = threading.current_thread()
            together.wait()
            return 1

        return halt

    targets = {name: target(name) for name in ("agents", "rl")}
    for name, fn in targets.items():
        kill_switch().register(name, fn)
    try:
        result = kill_switch().engage("drill", actor="test")
    finally:
        for name, fn in targets.items():
            kill_switch().unregister(name, fn)
    assert result["failures"] == []
    assert result["targets"]["agents"]["halted"] == result["targets"]["rl"]["halted"] == 1
    assert result["targets"]["workflows"] == {"halted": 0, "failures": []}
    assert threads["agents"] is threading.current_thread()
    assert threads["rl"] is not threading.current_thread()


def test_account_limit_engages_kill_switch(ledger, bot):
    reg = registry()
    reg.account_max_drawdown_pct = 0.0005
    try:
        sessions = start_many(bot, 2, speed=0, max_bars=3000)
        for s in sessions:
            s.wait(30)
        assert kill_switch().engaged
        assert "account limit: account drawdown" in kill_switch().reason
        assert {s.status for s in sessions} == {"killed"}
        # the row is written beside the halt, not before it: wait for it
        deadline = time.monotonic() + 30
        while not kill_switch().persisted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ledger.audit_rows("kill_switch.engage")) == 1
    finally:
        reg.account_max_drawdown_pct = None
