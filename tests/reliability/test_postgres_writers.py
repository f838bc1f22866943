"""Concurrent writers on the PostgreSQL ledger: ten sessions, each on its own thread.

Every session runs on an event loop of its own thread, so ten connections write
their bars at the same moment; three are stopped while they write. The ledger must
then satisfy the same invariants as after a crash (``checks.ledger_problems``).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from alphaswarm.bots import Bot
from alphaswarm.ledger import Ledger
from alphaswarm.paper.session import PaperSession
from tests.pg import fresh_database

from .checks import ledger_problems
from .conftest import FAST_BOT

SESSIONS = 10
BARS = 1500


def _loop_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


@pytest.mark.postgres
def test_ten_concurrent_sessions_on_postgres(postgres_url):
    with fresh_database(postgres_url) as url:
        ledger = Ledger(url=url)
        loops = [_loop_thread() for _ in range(SESSIONS)]
        try:
            ledger.ensure_schema()
            bot = Bot(FAST_BOT)
            sessions = [
                PaperSession(
                    bot,
                    ledger=ledger,
                    speed=0,
                    max_bars=BARS,
                    duration_minutes=None,
                    force=True,
                    reason="concurrent writers",
                )  # fmt: skip
                for _ in range(SESSIONS)
            ]
            t0 = time.monotonic()
            for session, (loop, _) in zip(sessions, loops, strict=True):
                session.start(loop=loop)
            time.sleep(0.3)
            for session in sessions[:3]:
                session.stop("stopped while writing")
            for session in sessions:
                assert session.wait(120), f"{session.paper_run_id} did not finish"
            elapsed = time.monotonic() - t0
            problems = ledger_problems(ledger)
            runs = ledger.sql(
                "SELECT status, count(*) AS n, sum(num_fills) AS fills, sum(bars_seen) AS bars "
                "FROM paper_trading_runs GROUP BY status"
            ).to_dict("records")
        finally:
            for loop, thread in loops:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(10)
                loop.close()
            ledger.close()
    print(f"\npostgres: {SESSIONS} concurrent sessions in {elapsed:.1f} s: {runs}")  # noqa: T201
    assert not problems, problems
    assert sum(r["n"] for r in runs) == SESSIONS
    assert {r["status"] for r in runs} <= {"completed", "stopped"}
    assert sum(r["fills"] for r in runs) > 0
