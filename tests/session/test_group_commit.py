"""Paced sessions on one loop commit their bars together: one transaction per loop turn.

The rules kept: a frame is published only after the commit holding its rows, every
fill is committed with its order and the run's counters, and one session's failure
fails that session only.
"""

from __future__ import annotations

import threading
import time

import alphaswarm as aw
from alphaswarm.ledger import Ledger, LedgerError
from tests.reliability.checks import ledger_problems

SPEED = 600  # a minute bar every 0.1 s: every session's bars fall on the same 0.1 s ticks
BARS = 30


def _start(bot, n: int, ledger: Ledger) -> tuple[list[aw.PaperSession], list[str]]:
    """Start ``n`` paced sessions; a subscriber checks each frame is in the ledger already."""
    sessions, unseen = [], []
    for _ in range(n):
        session = aw.PaperSession(bot, speed=SPEED, max_bars=BARS)

        def committed_first(frame, session=session):
            if frame["stage"] == "bar.received":
                stored = ledger.frames(session.paper_run_id, since_seq=frame["seq"] - 1)
                if frame["seq"] not in set(stored["seq"]):
                    unseen.append(f"{session.paper_run_id} #{frame['seq']}")

        session.frames.subscribe(committed_first)
        sessions.append(session.start())
    return sessions, unseen


def test_paced_sessions_share_commits(ledger, bot, commits):
    sessions, unseen = _start(bot, 4, ledger)
    assert all(s.wait(60) for s in sessions)
    assert {s.status for s in sessions} == {"completed"}
    assert max(commits) > 1, commits  # bars of several sessions in one transaction
    assert len(commits) < 4 * BARS  # fewer transactions than bars
    assert not unseen, f"published before their commit: {unseen}"
    assert ledger_problems(ledger) == []
    for s in sessions:
        run = s.run
        assert run["bars_seen"] == BARS and run["num_fills"] == len(s.fills) == s.num_fills


def test_a_failing_batch_fails_its_session_only(ledger, bot, commits):
    sessions, _ = _start(bot, 3, ledger)
    bad = sessions[1]

    def broken(**_):
        raise RuntimeError("batch broken")

    bad._bars_batch = broken
    assert all(s.wait(60) for s in sessions)
    assert bad.status == "failed" and "batch broken" in bad.error
    assert [s.status for s in sessions if s is not bad] == ["completed", "completed"]
    assert ledger_problems(ledger) == []


def test_a_failed_group_commit_is_retried_run_by_run(ledger, bot, monkeypatch):
    failed: list[int] = []
    write_batches = Ledger.write_batches

    def flaky(self, batches):
        batches = list(batches)
        if len(batches) > 1 and len(failed) < 3:  # the first three group commits fail
            failed.append(len(batches))
            raise LedgerError("flaky group commit")
        return write_batches(self, batches)

    monkeypatch.setattr(Ledger, "write_batches", flaky)
    sessions, unseen = _start(bot, 3, ledger)
    assert all(s.wait(60) for s in sessions)
    assert {s.status for s in sessions} == {"completed"}
    assert failed, "no group commit happened"
    assert not unseen
    assert ledger_problems(ledger) == []


def test_heartbeats_after_a_stalled_loop_go_with_the_group_commit(
    runtime, ledger, bot, commits, monkeypatch
):
    """A loop held up past the heartbeat time makes every session late at once.

    Each one's heartbeat is then committed in the loop's group commit, not in a
    transaction of its own on the loop's thread (hundreds of those put the loop further
    behind, which made more heartbeats: the stalls of many paced sessions).
    """
    alone: list[str] = []
    write_batch = Ledger.write_batch

    def spy(self, run_id, **batch):
        if any(f["stage"] == "heartbeat" for f in batch.get("frames", ())):
            alone.append(run_id)
        return write_batch(self, run_id, **batch)

    monkeypatch.setattr(Ledger, "write_batch", spy)
    n = 5
    sessions = [aw.PaperSession(bot, speed=60, duration_minutes=None).start() for _ in range(n)]
    wait_for(lambda: all(s.bars_seen >= 1 for s in sessions), "every session's first bar")
    # heartbeat_seconds (30 s of session time) is 0.5 s at speed 60: hold the loop 2.5 s
    held = threading.Event()
    runtime.engine_loop().call_soon_threadsafe(lambda: (time.sleep(2.5), held.set()))
    assert held.wait(30)

    def beats() -> list[int]:
        stages = [ledger.frames(s.paper_run_id)["stage"] for s in sessions]
        return [int((stage == "heartbeat").sum()) for stage in stages]

    wait_for(lambda: all(beats()), "a committed heartbeat of every session")
    assert alone == []  # not one heartbeat committed alone
    assert max(commits) >= 2  # the group commits carried them, with other sessions' rows
    for s in sessions:
        s.stop()
    assert all(s.wait(30) for s in sessions)
    assert ledger_problems(ledger) == []


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
