"""A SQLite ledger checkpoints its write-ahead log on a thread of its own, not on commits."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import time

from sqlalchemy import create_engine

from alphaswarm.ledger import Ledger
from alphaswarm.ledger.checkpoint import SAFETY_NET_PAGES, WalCheckpointer, checkpoint


def rows_in_database_file_alone(path, tmp_path) -> int:
    """Runs in the main database file, ignoring what only the -wal file holds."""
    alone = tmp_path / "copy.db"
    shutil.copy(path, alone)  # the -wal file is not copied
    with sqlite3.connect(alone) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM paper_trading_runs").fetchone()[0]
        except sqlite3.OperationalError:  # not even the schema is checkpointed yet
            return 0


def test_commits_leave_checkpoints_to_the_thread(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = Ledger(url=f"sqlite:///{path}")
    ledger.ensure_schema()
    with ledger.engine().connect() as conn:
        autocheckpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert autocheckpoint == SAFETY_NET_PAGES
    checkpointer = ledger._db.checkpointer
    assert checkpointer is not None and checkpointer.alive
    rounds = checkpointer.rounds
    for i in range(5):
        ledger.create_paper_run({"id": f"r{i}", "bot_id": "b", "starting_cash": 1.0})
    # the round is counted just after its checkpoint: wait for the count too
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        rows_in_database_file_alone(path, tmp_path) < 5 or checkpointer.rounds <= rounds
    ):
        time.sleep(0.05)
    assert rows_in_database_file_alone(path, tmp_path) == 5
    assert checkpointer.rounds > rounds
    ledger.close()
    assert not checkpointer.alive and ledger._db.checkpointer is None
    assert len(ledger.runs()) == 5, "a closed ledger reopens (with a new thread)"
    assert ledger._db.checkpointer is not None and ledger._db.checkpointer.alive
    ledger.close()


def test_in_memory_ledgers_have_no_thread():
    ledger = Ledger(url="sqlite:///:memory:")
    ledger.ensure_schema()
    assert ledger._db.checkpointer is None
    ledger.close()


def wal_engine(path):
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    return engine


def test_the_thread_ends_with_its_engine(tmp_path):
    engine = wal_engine(tmp_path / "x.db")
    assert checkpoint(engine) == (0, 0, 0)
    checkpointer = WalCheckpointer(engine, interval=0.01).start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and checkpointer.rounds < 2:
        time.sleep(0.01)
    assert checkpointer.rounds >= 2
    engine.dispose()
    del engine
    gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and checkpointer.alive:
        gc.collect()  # the engine may sit in reference cycles
        time.sleep(0.01)
    assert not checkpointer.alive
