"""Paced sessions on one loop commit their bars together: one transaction per loop turn.

The rules kept: a frame is published only after the commit holding its rows, every
fill is committed with its order and the run's counters, and one session's failure
fails that session only.
"""

from __future__ import annotations

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
    assert sum(commits) < 4 * BARS  # fewer transactions than bars
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
