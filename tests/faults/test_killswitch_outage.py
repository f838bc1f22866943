"""A kill switch engaged while the ledger refuses writes, and a stop through the API then.

The engagement is pending (``persisted`` False) and refuses orders and starts in
this process, a re-read of the older row does not release it, and it is written
as soon as the ledger takes writes again; the sessions it killed get their final
rows then.
"""

from __future__ import annotations

import time

import pytest
import requests

import alphaswarm as aw
from alphaswarm.ledger import Ledger
from alphaswarm.paper.final_writes import final_writes
from alphaswarm.paper.killswitch import KillSwitchEngaged, kill_switch
from alphaswarm.server.app import ServerThread
from tests.ports import free_port as _free_port
from tests.reliability.checks import ledger_problems

from .injectors import fill_counts


def _until(predicate, timeout: float = 60.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _running_session(bot) -> aw.PaperSession:
    session = aw.PaperSession(bot, speed=600, duration_minutes=None, max_bars=5000).start()
    assert _until(lambda: session.bars_seen >= 20)
    return session


def test_a_kill_during_an_outage_is_pending_then_persisted(ledger, bot, write_lock, db_path):
    session = _running_session(bot)
    ks = kill_switch()
    write_lock.hold()
    result = ks.engage("kill during the outage")
    assert result["engaged"] is True and result["persisted"] is False
    assert ks.state()["persisted"] is False
    assert session.wait(30) and session.status == "killed"
    assert not session.final_row_written  # the ledger has not taken it yet
    # this process refuses orders and starts meanwhile, even after re-reading the older row
    ks.refresh(force=True, wait=True)
    assert ks.engaged and ks.order_mode(session.bot_id) == "halted"
    with pytest.raises(KillSwitchEngaged):
        ks.check_start(session.bot_id)
    assert Ledger(url=f"sqlite:///{db_path}").kill_switch_state()["engaged"] is False

    write_lock.release()
    assert _until(lambda: ks.state()["persisted"]), "the engagement was never written"
    other = Ledger(url=f"sqlite:///{db_path}")  # what every other process reads
    try:
        row = other.kill_switch_state()
        assert row["engaged"] is True and row["reason"] == "kill during the outage"
        assert final_writes().wait_idle(60), final_writes().pending()
        assert session.final_row_written
        ((_, status, num_fills, rows),) = fill_counts(other)
        assert status == "killed" and num_fills == rows
        assert ledger_problems(other) == []
    finally:
        other.close()


def test_a_reset_drops_a_pending_engagement(ledger, bot, write_lock, db_path):
    ks = kill_switch()
    write_lock.hold()
    assert ks.engage("pending")["persisted"] is False
    ks.reset(actor="test")  # refused too: released here, failing closed until a read works
    assert not ks.engaged and ks.state()["persisted"] is True
    assert _until(lambda: ks._writer.idle), "the writer kept retrying"
    write_lock.release()
    ks.refresh(force=True, wait=True)
    assert ks.store_ok and not ks.engaged and ks.order_mode() is None
    assert Ledger(url=f"sqlite:///{db_path}").kill_switch_state()["engaged"] is False


def test_stop_through_the_api_during_an_outage(ledger, bot, write_lock, db_path):
    server = ServerThread("127.0.0.1", _free_port(), ledger=ledger, dashboard=False).start()
    try:
        session = _running_session(bot)
        write_lock.hold()
        response = requests.post(
            f"{server.url}/paper/{session.paper_run_id}/stop", json={"reason": "outage"}, timeout=60
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["stopped"] is True and body["status"] == "stopped"
        assert body["final_row_written"] is False
        stop_url = f"{server.url}/paper/{session.paper_run_id}/stop"
        again = requests.post(stop_url, json={}, timeout=60)
        assert again.status_code == 200 and again.json()["stopped"] is False
        write_lock.release()
        assert final_writes().wait_idle(60), final_writes().pending()
        assert ledger.get_run(session.paper_run_id)["status"] == "stopped"
        assert ledger_problems(ledger) == []
    finally:
        server.stop()
