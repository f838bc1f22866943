"""Fixtures of the fault-injection tests: a SQLite ledger with a short busy timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import alphaswarm as aw
from alphaswarm.ledger import Ledger
from alphaswarm.paper.final_writes import final_writes
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.registry import registry

from .injectors import FAST_BOT, SqliteWriteLock

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Seconds a writer waits for the SQLite write lock before its write fails.
BUSY_TIMEOUT = 0.2


def settle(ledger: Ledger | None = None) -> None:
    """End every session of this process and let the pending final writes through."""
    for s in registry().running():
        s.stop("test teardown")
    final_writes().wait_idle(60)
    kill_switch().reset(actor="test")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[Ledger]:
    """The ledger of a fresh runtime, the process's for the test."""
    led = Ledger(url=f"sqlite:///{db_path}", busy_timeout=BUSY_TIMEOUT)
    rt = aw.Runtime(ledger=led, name="faults")
    with aw.use_runtime(rt):
        yield led
        settle(led)
    rt.close()
    led.close()


@pytest.fixture
def write_lock(db_path: Path, ledger: Ledger) -> Iterator[SqliteWriteLock]:
    ledger.ensure_schema()
    lock = SqliteWriteLock(db_path)
    yield lock
    lock.close()


@pytest.fixture
def bot(ledger: Ledger) -> aw.Bot:
    bot = aw.Bot(dict(FAST_BOT))
    aw.backtest(bot, ledger=ledger)
    return bot
