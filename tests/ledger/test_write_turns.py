"""A SQLite ledger's writers in one process take turns on a lock, not on SQLite's busy sleeps."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from alphaswarm.ledger import Ledger, LedgerError


def test_ledgers_of_one_file_share_one_write_lock(tmp_path):
    a = Ledger(url=f"sqlite:///{tmp_path / 'one.db'}")
    b = Ledger(url=f"sqlite:///{tmp_path / '.' / 'one.db'}")
    other = Ledger(url=f"sqlite:///{tmp_path / 'two.db'}")
    memory = Ledger(url="sqlite://")
    for led in (a, b, other, memory):
        led.ensure_schema()
    try:
        assert a._db.write_lock is not None
        assert a._db.write_lock is b._db.write_lock
        assert other._db.write_lock is not a._db.write_lock
        assert memory._db.write_lock is not None and memory._db.write_lock is not a._db.write_lock
    finally:
        for led in (a, b, other, memory):
            led.close()


def test_the_write_lock_is_for_sqlite_only(ledger_url):
    with Ledger(url=ledger_url) as led:
        led.ensure_schema()
        assert (led._db.write_lock is not None) == ledger_url.startswith("sqlite")


def test_a_writer_held_up_past_the_busy_timeout_writes_nothing(tmp_path):
    path = tmp_path / "held.db"
    holder = Ledger(url=f"sqlite:///{path}")
    holder.ensure_schema()
    waiting = Ledger(url=f"sqlite:///{path}", busy_timeout=0.2)
    waiting.ensure_schema()
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder._write():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        with pytest.raises(LedgerError, match="another writer of this process held"):
            waiting.create_paper_run({"id": "late", "bot_id": "b"})
    finally:
        release.set()
        thread.join(10)
    waiting.create_paper_run({"id": "after", "bot_id": "b"})  # its turn now
    with sqlite3.connect(path) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM paper_trading_runs")]
    assert ids == ["after"]
    holder.close()
    waiting.close()


def test_many_threads_writing_at_once_all_land(tmp_path):
    path = tmp_path / "busy.db"
    ledgers = [Ledger(url=f"sqlite:///{path}") for _ in range(2)]
    ledgers[0].ensure_schema()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(k: int) -> None:
        led = ledgers[k % 2]
        try:
            start.wait(10)
            for i in range(25):
                led.create_paper_run({"id": f"t{k}-{i}", "bot_id": "b"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM paper_trading_runs").fetchone()[0] == 200
    for led in ledgers:
        led.close()
