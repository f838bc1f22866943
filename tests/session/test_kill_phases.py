"""Stopping many sessions: the stop is committed first, the closing rows right after.

Rules kept: after the first commit every run row has its final status and no open
order is left in the ledger; after the second the counters, state and last frames
match the sessions; every subscriber sees exactly the committed frames, in order,
whatever a group commit was doing when the stop came.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time

import pytest

import alphaswarm as aw
from alphaswarm.ledger import Ledger, LedgerError
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.session import PaperSession
from tests.reliability.checks import ledger_problems


def started(bot, n: int, **kw) -> list[aw.PaperSession]:
    kw.setdefault("speed", 60)
    kw.setdefault("duration_minutes", None)
    sessions = [aw.PaperSession(bot, **kw).start() for _ in range(n)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(s.bars_seen >= 2 for s in sessions):
        time.sleep(0.01)
    assert all(s.bars_seen >= 2 for s in sessions)
    return sessions


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def statuses(ledger: Ledger) -> set[str]:
    return set(ledger.sql("SELECT status FROM paper_trading_runs")["status"])


def done_frames(ledger: Ledger) -> int:
    return int(ledger.sql("SELECT COUNT(*) AS n FROM paper_frames WHERE stage = 'done'")["n"][0])


def open_orders(ledger: Ledger) -> int:
    query = (
        "SELECT COUNT(*) AS n FROM paper_orders "
        "WHERE status IN ('new', 'accepted', 'partially_filled')"
    )
    return int(ledger.sql(query)["n"][0])


def test_stop_rows_commit_before_closing_rows(ledger, bot):
    sessions = started(bot, 4)
    # an open order the sessions' brokers do not hold: only the ledger's stop cancels it
    ledger.write_batch(
        sessions[0].paper_run_id,
        orders=[{"id": "stray", "symbol": "DEMO", "side": "buy", "qty": 1.0, "status": "new"}],
    )
    seen: dict[str, object] = {}

    def on_committed(count: int) -> None:
        seen["committed"] = (count, statuses(ledger), done_frames(ledger), open_orders(ledger))
        seen["ended_at"] = {r["id"]: r["ended_at"] for r in ledger.list_runs()}

    def on_closed(count: int) -> None:
        seen["closed"] = (count, statuses(ledger), done_frames(ledger))

    stopped = PaperSession.finish_many(
        sessions, "killed", "drill", on_committed=on_committed, on_closed=on_closed
    )
    assert stopped == 4
    assert seen["committed"] == (4, {"killed"}, 0, 0), "status first, frames after"
    assert seen["closed"] == (4, {"killed"}, 4)
    orders = ledger.orders(sessions[0].paper_run_id).set_index("id")
    assert orders.loc["stray", "status"] == "cancelled"
    assert orders.loc["stray", "reason_code"] == "kill_switch"
    for s in sessions:
        run = s.run
        assert run["ended_at"] == seen["ended_at"][s.paper_run_id], "one end time"
        assert (run["num_fills"], run["bars_seen"]) == (len(s.fills), s.bars_seen)
        assert run["state"]["bars_seen"] == s.bars_seen
        assert s.status == "killed" and s.last_frame["stage"] == "done"
    assert ledger_problems(ledger) == []
    assert PaperSession.finish_many(sessions, "killed", "again") == 0


def test_a_failed_stop_commit_is_committed_with_the_closing_rows(ledger, bot, monkeypatch):
    sessions = started(bot, 3)

    def broken(self, *args, **kwargs):
        raise LedgerError("stop statement failed")

    monkeypatch.setattr(Ledger, "stop_runs", broken)
    seen = []
    PaperSession.finish_many(
        sessions,
        "stopped",
        "stop all",
        on_committed=lambda n: seen.append((n, statuses(ledger), done_frames(ledger))),
    )
    assert seen == [(3, {"stopped"}, 3)], "reported once everything is committed"
    assert {s.status for s in sessions} == {"stopped"}
    assert ledger_problems(ledger) == []


def test_engage_reports_both_commits(ledger, bot):
    started(bot, 3)
    result = kill_switch().engage("drill", actor="test")
    assert 0 < result["final_rows_committed_ms"] <= result["closing_rows_committed_ms"]
    assert result["closing_rows_committed_ms"] <= result["elapsed_ms"]
    assert not kill_switch().engaging.is_set()


def test_sessions_take_no_bar_and_commit_nothing_while_an_engage_runs(
    ledger, bot, commits, monkeypatch
):
    from alphaswarm.paper import drivers, halts

    writes = commits
    parked: set[int] = set()
    yield_to_halts = drivers._yield_to_halts

    async def parking(runtime) -> None:  # which sessions wait for the halt to end
        task = id(asyncio.current_task())
        if halts._halts_pending(runtime):
            parked.add(task)
        try:
            await yield_to_halts(runtime)
        finally:
            parked.discard(task)

    monkeypatch.setattr(drivers, "_yield_to_halts", parking)
    sessions = started(bot, 3, speed=600)
    ks = kill_switch()
    ks.engaging.set()
    try:
        # every session waits before its next bar: a step or group commit under way is done
        assert wait_until(lambda: len(parked) == 3), "the sessions did not stop for the halt"
        bars, count = [s.bars_seen for s in sessions], len(writes)
        window = threading.Event()  # five bars' time at speed 600, on the sessions' loop
        sessions[0]._loop.call_soon_threadsafe(sessions[0]._loop.call_later, 0.5, window.set)
        assert window.wait(30)
        assert [s.bars_seen for s in sessions] == bars
        assert len(writes) == count
        assert len(parked) == 3
    finally:
        ks.engaging.clear()
    assert wait_until(lambda: all(s.bars_seen > b for s, b in zip(sessions, bars, strict=True))), (
        "they resume"
    )
    assert len(writes) > count
    for s in sessions:
        s.stop("test over")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_subscribers_see_exactly_the_committed_frames_in_order(ledger, bot, seed):
    """Kills land at random points of the group commits of fast paced sessions."""
    rng = random.Random(seed)
    sessions, published = [], {}
    lock = threading.Lock()
    for _ in range(6):
        s = aw.PaperSession(bot, speed=6000, duration_minutes=None)
        seqs: list[int] = []
        published[s] = seqs

        def record(frame, seqs=seqs):
            with lock:
                seqs.append(frame["seq"])

        s.frames.subscribe(record)
        sessions.append(s.start())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and min(s.bars_seen for s in sessions) < 5:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.2))
    kill_switch().engage("drill", actor="test")
    for s in sessions:
        assert s.wait(10) and s.status == "killed"
        stored = ledger.frames(s.paper_run_id)["seq"].tolist()
        seqs = published[s]
        assert seqs == sorted(set(seqs)), "in order, each once"
        assert seqs == stored, "exactly the committed frames"
        assert len(seqs) > 10
    assert ledger_problems(ledger) == []


def test_frames_a_group_commit_left_unpublished_go_out_first(ledger, bot):
    """A stop that comes between a group commit and its publishing publishes those."""
    (session,) = started(bot, 1)
    seen: list[dict] = []
    session.frames.subscribe(seen.append)
    with session._lock:  # what a group commit does before it lets go of the lock
        frame = session._frame("heartbeat", "committed, not published yet")
        ledger.write_batch(session.paper_run_id, frames=list(session._pending))
        session._unpublished += session._pending
        session._pending = []
    assert PaperSession.finish_many([session], "stopped", "now") == 1
    assert [f["stage"] for f in seen] == ["heartbeat", "session.stopped", "done"]
    assert seen[0]["seq"] == frame["seq"] and seen[1]["seq"] == frame["seq"] + 1
    stored = ledger.frames(session.paper_run_id)["seq"].tolist()
    assert stored[-3:] == [f["seq"] for f in seen] and len(stored) == len(set(stored))


def test_waiting_sessions_share_one_poller_per_loop():
    from alphaswarm.paper.halts import _yield_to_halts
    from alphaswarm.paper.runtime import Runtime

    runtime = Runtime.default()
    ks = runtime.kill_switch

    async def scenario() -> tuple[int, int, bool]:
        ks.engaging.set()
        waiters = [asyncio.create_task(_yield_to_halts(runtime)) for _ in range(100)]
        await asyncio.sleep(0.02)
        tasks = len(asyncio.all_tasks()) - 1  # without this one
        waiters[0].cancel()  # one gives up: the others keep waiting
        await asyncio.sleep(0.01)
        still_waiting = sum(not w.done() for w in waiters[1:])
        ks.engaging.clear()
        await asyncio.wait_for(asyncio.gather(*waiters[1:]), 2)
        return tasks, still_waiting, waiters[0].cancelled()

    try:
        tasks, still_waiting, cancelled = asyncio.run(scenario())
    finally:
        ks.engaging.clear()
    assert tasks == 101, "100 waiters and one poller"
    assert still_waiting == 99 and cancelled


def test_an_engagement_leaves_the_interpreter_alone(ledger, bot):
    """No switch-interval or collector change unless the process opted in to tuning."""
    import gc

    started(bot, 2)
    ks = kill_switch()
    before = sys.getswitchinterval()
    seen = []
    ks.register(
        "paper", lambda reason, mode: seen.append((sys.getswitchinterval(), gc.isenabled())) or 0
    )
    try:
        ks.engage("drill", actor="test")
    finally:
        ks.unregister("paper", ks._targets["paper"][-1])
    assert seen == [(before, True)]
    assert sys.getswitchinterval() == before and not ks.engaging.is_set()
