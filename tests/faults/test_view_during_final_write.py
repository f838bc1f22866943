"""A live view opened between a session's end and the commit of its final batch.

A session is ``finished`` the moment it stops trading; its final batch (the fills
of a flatten, the ``session.stopped`` and ``done`` frames) is committed and
published after that, later still when the ledger is out of reach. A view built in
between finds those fills neither in the ledger nor in the frames in memory, so it
must still listen to the run until its frame bus closes.
"""

from __future__ import annotations

import alphaswarm as aw
from alphaswarm.paper.final_writes import final_writes
from alphaswarm.ui import FramePump, SessionView
from tests.ui.conftest import wait_until


def test_a_view_opened_while_the_final_batch_waits_shows_the_flatten_and_the_end(
    ledger, bot, write_lock
):
    session = aw.PaperSession(bot, speed=3000, duration_minutes=None).start()
    broker = lambda: session.engine.broker  # noqa: E731
    wait_until(lambda: any(p.qty for p in broker().positions.values()), timeout=60)
    write_lock.hold()
    assert session.kill("test", mode="flatten")
    assert session.finished and not session.final_row_written
    view = SessionView(session, pump=FramePump())
    view.refresh()
    write_lock.release()
    assert final_writes().wait_idle(60)
    assert session.final_row_written
    view.refresh()
    view.refresh()
    fills = ledger.fills(session.paper_run_id)
    assert fills["id"].iloc[-1] in set(view.fills.value["fill_id"])  # the flatten's fill
    assert list(view.fills.value["fill_id"]) == list(fills["id"])
    assert {"session.stopped", "done"} <= set(view.frames.value["stage"])
    assert view.card.status == "killed"
    assert view.pump.subscriptions == 0  # the bus closed: the view let go of the run
