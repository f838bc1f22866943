"""The kill switch while another process holds the ledger's lock.

A separate process keeps the SQLite write lock (``BEGIN IMMEDIATE``), or another
PostgreSQL connection keeps the kill-switch row locked (``SELECT ... FOR UPDATE``),
for as long as the test wants, and the ledger's busy timeout is far longer than any
wait here. Engaging must still halt every session at once (the halt never waits
for a ledger write), answer with the engagement pending, and write the row, the
sessions' final rows and nothing else half-way, once the lock is released.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest
import requests

import alphaswarm as aw
from alphaswarm.ledger import Ledger
from alphaswarm.paper.final_writes import final_writes
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.server.app import ServerThread
from tests.ports import free_port as _free_port
from tests.reliability.checks import ledger_problems

from .conftest import settle
from .injectors import FAST_BOT, fill_counts

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: The ledger's busy timeout: no wait of this test comes near it, so a kill that
#: waited for a ledger write would not be seen halting while the lock is held.
LONG_BUSY_TIMEOUT = 600.0
#: Generous bound on each wait for an event (the lock stays held meanwhile).
EVENT_TIMEOUT = 60.0

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
conn.close()
print("released", flush=True)
"""


class LockHolderProcess:
    """Another process holding the write lock of a SQLite file until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "held", f"the lock holder did not take the lock: {line!r}"

    def release(self) -> None:
        """Let the holder roll back and exit; wait until it has."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == "released"
            self.proc.wait(EVENT_TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(EVENT_TIMEOUT)


def _until(predicate, timeout: float = EVENT_TIMEOUT, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


@pytest.fixture
def slow_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A SQLite ledger whose writers wait ``LONG_BUSY_TIMEOUT`` for a lock."""
    led = aw.set_ledger(
        Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}", busy_timeout=LONG_BUSY_TIMEOUT)
    )
    led.ensure_schema()
    yield led
    settle(led)
    aw.set_ledger(None)
    led.close()


def _bot(ledger: Ledger) -> aw.Bot:
    bot = aw.Bot(dict(FAST_BOT))
    aw.backtest(bot, ledger=ledger)
    return bot


def _running_sessions(bot: aw.Bot, n: int = 2) -> list[aw.PaperSession]:
    sessions = [
        aw.PaperSession(bot, speed=600, duration_minutes=None, max_bars=100_000).start()
        for _ in range(n)
    ]
    assert _until(lambda: all(s.bars_seen >= 20 for s in sessions))
    return sessions


def _check_written(ledger: Ledger, sessions: list[aw.PaperSession], reason: str) -> None:
    """After the release: the row, its one audit row and every final row are written."""
    ks = kill_switch()
    assert _until(lambda: ks.state()["persisted"]), "the engagement was never written"
    other = Ledger(url=ledger.url)  # what every other process reads
    try:
        row = other.kill_switch_state()
        assert row["engaged"] is True and row["reason"] == reason
        audits = other.audit_rows()
        engages = audits[audits["action"] == "kill_switch.engage"]
        assert len(engages) == 1, engages  # written once, with the row
        assert final_writes().wait_idle(EVENT_TIMEOUT), final_writes().pending()
        assert _until(lambda: all(s.final_row_written for s in sessions))
        counts = fill_counts(other)
        assert {status for _, status, _, _ in counts} == {"killed"}, counts
        assert all(num_fills == rows for _, _, num_fills, rows in counts), counts
        assert ledger_problems(other) == []
    finally:
        other.close()


def test_engage_halts_while_another_process_holds_the_sqlite_lock(slow_ledger, tmp_path):
    sessions = _running_sessions(_bot(slow_ledger))
    ks = kill_switch()
    holder = LockHolderProcess(tmp_path / "ledger.db")
    try:
        result: dict = {}
        engaging = threading.Thread(
            target=lambda: result.update(ks.engage("kill under a held lock")), daemon=True
        )
        engaging.start()
        # halted, and engage answered, while the other process still holds the lock
        assert _until(lambda: all(s.status == "killed" for s in sessions)), [
            s.status for s in sessions
        ]
        engaging.join(EVENT_TIMEOUT)
        assert not engaging.is_alive(), "engage waited for the ledger"
        assert holder.proc.poll() is None  # the lock is still held
        assert result["engaged"] is True and result["persisted"] is False
        assert ks.state()["persisted"] is False and ks.engaged
        assert result["targets"]["paper"]["halted"] + result["targets"]["bots"]["halted"] == 2
        assert all(s.stop_reason == "kill under a held lock" for s in sessions)
        assert all(not s.final_row_written for s in sessions)
        seen = Ledger(url=slow_ledger.url)
        try:  # nothing of the engagement is in the ledger yet (reads pass the lock)
            assert seen.kill_switch_state()["engaged"] is False
            assert {status for _, status, _, _ in fill_counts(seen)} == {"running"}
        finally:
            seen.close()
    finally:
        holder.release()
        holder.close()
    _check_written(slow_ledger, sessions, "kill under a held lock")


def test_post_kill_switch_answers_while_another_process_holds_the_lock(slow_ledger, tmp_path):
    server = ServerThread("127.0.0.1", _free_port(), ledger=slow_ledger, dashboard=False).start()
    try:
        sessions = _running_sessions(_bot(slow_ledger))
        holder = LockHolderProcess(tmp_path / "ledger.db")
        try:
            response = requests.post(
                f"{server.url}/kill-switch",
                json={"reason": "http kill under a held lock"},
                timeout=EVENT_TIMEOUT,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            # answered after the halt, before the lock was released
            assert holder.proc.poll() is None
            assert body["engaged"] is True and body["persisted"] is False
            assert body["state"]["persisted"] is False
            assert any("pending" in f for f in body["failures"]), body["failures"]
            assert all(s.status == "killed" for s in sessions), [s.status for s in sessions]
            state = requests.get(f"{server.url}/kill-switch", timeout=EVENT_TIMEOUT).json()
            assert state["engaged"] is True and state["persisted"] is False
        finally:
            holder.release()
            holder.close()

        def persisted() -> bool:
            got = requests.get(f"{server.url}/kill-switch", timeout=EVENT_TIMEOUT).json()
            return got["persisted"] is True and got["engaged"] is True

        assert _until(persisted), "GET /kill-switch never showed the engagement written"
        _check_written(slow_ledger, sessions, "http kill under a held lock")
    finally:
        server.stop()


def test_the_dashboard_widget_shows_saving_until_the_row_is_written(slow_ledger, tmp_path):
    from alphaswarm.ui import FramePump, KillSwitchWidget

    pump = FramePump()
    widget = KillSwitchWidget(pump=pump)
    holder = LockHolderProcess(tmp_path / "ledger.db")
    try:
        widget.engage("from the dashboard under a held lock", mode="cancel")
        pump.tick()
        assert widget.engaged
        assert 'data-persisted="false"' in widget.badge.object
        assert "(saving…)" in widget.badge.object
    finally:
        holder.release()
        holder.close()

    def saved() -> bool:
        pump.tick()
        return 'data-persisted="true"' in widget.badge.object

    assert _until(saved), widget.badge.object
    assert widget.engaged and "(saving…)" not in widget.badge.object


@pytest.mark.postgres
def test_engage_halts_while_another_connection_locks_the_postgres_row(postgres_url):
    psycopg = pytest.importorskip("psycopg", reason="psycopg is missing")
    from tests.pg import fresh_database

    with fresh_database(postgres_url) as url:
        led = aw.set_ledger(Ledger(url=url))
        try:
            led.set_kill_switch(False, "cancel", "", actor="test")  # the row exists
            sessions = _running_sessions(_bot(led))
            ks = kill_switch()
            dsn = url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn) as holder:
                holder.execute("SELECT * FROM kill_switch WHERE id = 1 FOR UPDATE")
                result: dict = {}
                engaging = threading.Thread(
                    target=lambda: result.update(ks.engage("kill under a row lock")), daemon=True
                )
                engaging.start()
                assert _until(lambda: all(s.status == "killed" for s in sessions)), [
                    s.status for s in sessions
                ]
                engaging.join(EVENT_TIMEOUT)
                assert not engaging.is_alive(), "engage waited for the row lock"
                assert result["engaged"] is True and result["persisted"] is False
                assert ks.state()["persisted"] is False
                holder.rollback()  # the lock is released
            _check_written(led, sessions, "kill under a row lock")
        finally:
            settle(led)
            aw.set_ledger(None)
            led.close()
