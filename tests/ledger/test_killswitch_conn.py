"""The kill switch's own connection: not queued behind this process's writers, short waits.

``Ledger.write_kill_switch`` writes the row on an engine of its own, so a writer of
this process that holds the ledger's write lock (waiting for another process, say)
does not delay it; a lock held elsewhere makes it fail after ``wait_seconds`` with
nothing written (row and audit log unchanged), and it succeeds once the lock is free.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

import pytest

from alphaswarm.ledger import Ledger, LedgerUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Far longer than any wait here: a write queued behind a lock would not return.
LONG_BUSY_TIMEOUT = 600.0


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    led = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}", busy_timeout=LONG_BUSY_TIMEOUT)
    led.ensure_schema()
    yield led
    led.close()


def _engage(ledger: Ledger, reason: str, wait_seconds: float = 0.05) -> dict:
    return ledger.write_kill_switch(
        True,
        "cancel",
        reason,
        audits=[("test", "kill_switch.engage", {"reason": reason})],
        wait_seconds=wait_seconds,
    )


def test_a_writer_of_this_process_holding_the_write_lock_does_not_delay_it(ledger):
    ledger.set_kill_switch(False, "cancel", "")  # the engine is open: its lock exists
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with ledger._db.write_lock:  # what a writer of this process holds while it waits
            taken.set()
            done.wait(120)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(30)
    try:
        row = _engage(ledger, "past this process's writers", wait_seconds=5)
        assert row["engaged"] is True and row["reason"] == "past this process's writers"
    finally:
        done.set()
        holder.join(30)
    assert ledger.kill_switch_state()["engaged"] is True
    assert len(ledger.audit_rows("kill_switch.engage")) == 1


def test_a_lock_held_by_another_connection_fails_fast_and_writes_nothing(ledger, tmp_path):
    other = sqlite3.connect(str(tmp_path / "ledger.db"), isolation_level=None, timeout=60)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerUnavailable, match="nothing was written"):
            _engage(ledger, "refused while locked")
        other.execute("ROLLBACK")
        assert ledger.kill_switch_state()["engaged"] is False
        assert len(ledger.audit_rows("kill_switch.engage")) == 0
        row = _engage(ledger, "written once free")
        assert row["engaged"] is True and row["epoch"] == 1
        assert len(ledger.audit_rows("kill_switch.engage")) == 1
    finally:
        other.close()


@pytest.mark.postgres
def test_a_postgres_row_lock_fails_fast_and_writes_nothing(postgres_url):
    psycopg = pytest.importorskip("psycopg", reason="psycopg is missing")
    from tests.pg import fresh_database

    with fresh_database(postgres_url) as url:
        ledger = Ledger(url=url)
        try:
            ledger.set_kill_switch(False, "cancel", "")
            dsn = url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn) as holder:
                holder.execute("SELECT * FROM kill_switch WHERE id = 1 FOR UPDATE")
                with pytest.raises(LedgerUnavailable, match="nothing was written"):
                    _engage(ledger, "refused while the row is locked")
                holder.rollback()
            assert ledger.kill_switch_state()["engaged"] is False
            assert len(ledger.audit_rows("kill_switch.engage")) == 0
            row = _engage(ledger, "written once free", wait_seconds=5)
            assert row["engaged"] is True and row["reason"] == "written once free"
        finally:
            ledger.close()
