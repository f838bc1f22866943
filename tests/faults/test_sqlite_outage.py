"""A ledger that refuses writes mid-session (SQLite write lock held past the busy timeout).

The session pauses trading while its ledger is behind, retries with backoff and
resumes; past ``ledger_outage_seconds`` it fails closed and its final batch is
written once the ledger is back. Either way every fill the run counts is in
``paper_fills`` and every published frame (and the fill it reports) is a committed row.
"""

from __future__ import annotations

import pytest

import alphaswarm as aw
from alphaswarm.paper.final_writes import final_writes
from tests.reliability.checks import ledger_problems

from .injectors import fill_counts, frames_not_committed

OUTAGE = 1.5  # seconds the write lock is held: several busy timeouts


def _session(bot, lock, *, speed: float, hold: float, **params) -> tuple[aw.PaperSession, list]:
    """A session that takes the ledger's write lock when it places its first order.

    The bars that fill that order then meet a locked ledger.
    """
    session = aw.PaperSession(bot, speed=speed, duration_minutes=None, **params)
    published: list[dict] = []
    behind: list[bool] = []

    def on_frame(frame: dict) -> None:
        published.append(frame)
        if frame["stage"] == "order.placed" and not lock.held.is_set():
            lock.hold(hold)

    session.frames.subscribe(on_frame)
    session.param.watch(lambda event: behind.append(event.new), "ledger_behind")
    session._behind_seen = behind  # for the assertions
    return session.start(), published


# a replay commits every 50 ms: enough bars that the outage starts before the end
BARS = {3000: 300, 0: 20_000}


@pytest.mark.parametrize("speed", [3000, 0], ids=["paced", "replay"])
def test_a_short_outage_pauses_trading_and_loses_no_fill(ledger, bot, write_lock, speed):
    session, published = _session(bot, write_lock, speed=speed, hold=OUTAGE, max_bars=BARS[speed])
    assert session.wait(120)
    assert write_lock.released.is_set()
    assert any(session._behind_seen), "the session never saw its ledger behind"
    assert session.status == "completed", (session.stop_reason, session.error)
    assert session.final_row_written and not session.ledger_behind
    stages = [f["stage"] for f in published]
    assert "ledger.behind" in stages and "ledger.caught_up" in stages
    assert frames_not_committed(ledger, session.paper_run_id, published) == []
    ((_, status, num_fills, rows),) = fill_counts(ledger)
    assert status == "completed" and num_fills == rows == session.num_fills > 0
    assert ledger_problems(ledger) == []


def test_no_order_is_placed_while_the_ledger_is_behind(ledger, bot, write_lock):
    session, published = _session(bot, write_lock, speed=3000, hold=OUTAGE, max_bars=300)
    assert session.wait(120)
    stages = [f["stage"] for f in published]
    behind, caught_up = stages.index("ledger.behind"), stages.index("ledger.caught_up")
    # frames between the two were made before the write failed (the batch being written)
    # or are the behind frame itself; no bar was processed in the pause
    later = [f for f in published[behind:caught_up] if f["stage"] == "bar.received"]
    assert later == [], "a bar was processed while the ledger was behind"
    assert ledger_problems(ledger) == []


@pytest.mark.parametrize("speed", [3000, 0], ids=["paced", "replay"])
def test_a_long_outage_fails_closed_and_writes_everything_when_the_ledger_returns(
    ledger, bot, write_lock, speed
):
    session, published = _session(
        bot, write_lock, speed=speed, hold=3.0, max_bars=BARS[speed], ledger_outage_seconds=0.6
    )
    assert session.wait(120)
    assert session.status == "failed" and "ledger unavailable" in session.stop_reason
    assert final_writes().wait_idle(60), f"final batches still waiting: {final_writes().pending()}"
    assert write_lock.released.is_set()
    assert session.final_row_written and not session.ledger_behind
    assert published[-1]["stage"] == "done"
    assert frames_not_committed(ledger, session.paper_run_id, published) == []
    ((_, status, num_fills, rows),) = fill_counts(ledger)
    assert status == "failed" and num_fills == rows == session.num_fills > 0
    assert ledger_problems(ledger) == []
