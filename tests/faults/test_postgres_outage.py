"""PostgreSQL stopped mid-session, then started again (a dedicated server for this module).

The same guarantees as with a locked SQLite file: trading pauses while the ledger
is away, nothing is lost, no frame is published before its row is committed,
no run is left ``running`` once the server is back, and a kill switch engaged
meanwhile is written when it returns.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from typing import TYPE_CHECKING

import pytest

import alphaswarm as aw
from alphaswarm.ledger import Ledger
from alphaswarm.paper.final_writes import final_writes
from alphaswarm.paper.killswitch import kill_switch
from tests.pg import PG_PACKAGE, SUPERUSER, PostgresServer, find_pg_bin, fresh_database
from tests.reliability.checks import ledger_problems

from .conftest import settle
from .injectors import FAST_BOT, fill_counts, frames_not_committed

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own: its tests stop and start it."""
    pytest.importorskip("psycopg", reason="psycopg is missing: pip install 'psycopg[binary]'")
    bindir = find_pg_bin()
    if bindir is None:
        pytest.skip(f"PostgreSQL server binaries not found: install the package {PG_PACKAGE!r}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root needs runuser (package util-linux) to start PostgreSQL")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_ledger(pg_server: PostgresServer) -> Iterator[Ledger]:
    with fresh_database(pg_server.url(SUPERUSER)) as url:
        led = aw.set_ledger(Ledger(url=url))
        try:
            yield led
        finally:
            try:
                settle(led)
            finally:
                aw.set_ledger(None)
                led.close()


@pytest.fixture
def pg_bot(pg_ledger: Ledger) -> aw.Bot:
    bot = aw.Bot(dict(FAST_BOT))
    aw.backtest(bot, ledger=pg_ledger)
    return bot


class Outage:
    """Stops the server when asked, starts it again ``seconds`` later (on a timer)."""

    def __init__(self, server: PostgresServer, seconds: float) -> None:
        self.server, self.seconds = server, seconds
        self.started = threading.Event()
        self.over = threading.Event()

    def begin(self) -> None:
        if self.started.is_set():
            return
        self.started.set()
        self.server.pause()
        threading.Timer(self.seconds, self.end).start()

    def end(self) -> None:
        if not self.over.is_set():
            self.server.resume()
            self.over.set()


def _session(bot, outage: Outage, **params) -> tuple[aw.PaperSession, list[dict]]:
    """A paced session; the server stops when it places its first order."""
    session = aw.PaperSession(bot, speed=3000, duration_minutes=None, max_bars=300, **params)
    published: list[dict] = []

    def on_frame(frame: dict) -> None:
        published.append(frame)
        if frame["stage"] == "order.placed":
            outage.begin()

    session.frames.subscribe(on_frame)
    return session.start(), published


def _check(
    ledger: Ledger, session: aw.PaperSession, published: list[dict], status: str, traded: bool
) -> None:
    assert final_writes().wait_idle(60), f"final batches still waiting: {final_writes().pending()}"
    assert session.final_row_written and not session.ledger_behind
    assert frames_not_committed(ledger, session.paper_run_id, published) == []
    ((_, row_status, num_fills, rows),) = fill_counts(ledger)
    assert row_status == status and num_fills == rows == session.num_fills
    assert num_fills > 0 or not traded
    assert ledger_problems(ledger) == []


def test_postgres_stopped_mid_session_pauses_and_loses_nothing(pg_server, pg_ledger, pg_bot):
    outage = Outage(pg_server, 2.0)
    try:
        session, published = _session(pg_bot, outage)
        assert session.wait(120)
        assert outage.started.is_set()
    finally:
        outage.end()
    assert session.status == "completed", (session.stop_reason, session.error)
    stages = [f["stage"] for f in published]
    assert "ledger.behind" in stages and "ledger.caught_up" in stages
    _check(pg_ledger, session, published, "completed", traded=True)


def test_postgres_down_past_the_limit_fails_closed_then_writes_everything(
    pg_server, pg_ledger, pg_bot
):
    outage = Outage(pg_server, 4.0)
    try:
        session, published = _session(pg_bot, outage, ledger_outage_seconds=1.0)
        assert session.wait(120)
        assert session.status == "failed" and "ledger unavailable" in session.stop_reason
        assert outage.over.wait(60)
    finally:
        outage.end()
    # (it may fail before the order placed when the server stopped is filled)
    _check(pg_ledger, session, published, "failed", traded=False)


def test_a_kill_while_postgres_is_down_is_persisted_when_it_returns(pg_server, pg_ledger, pg_bot):
    session = aw.PaperSession(pg_bot, speed=600, duration_minutes=None, max_bars=5000).start()
    deadline = time.monotonic() + 60
    while session.bars_seen < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    ks = kill_switch()
    pg_server.pause()
    try:
        result = ks.engage("kill while the database is down")
        assert result["engaged"] is True and result["persisted"] is False
        assert session.wait(30) and session.status == "killed"
        assert ks.order_mode(session.bot_id) is not None  # refuses orders meanwhile
    finally:
        pg_server.resume()
    deadline = time.monotonic() + 60
    while not ks.state()["persisted"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ks.state()["persisted"], "the engagement was never written"
    assert ks.engaged
    other = Ledger(url=pg_ledger.url)  # what every other process reads
    try:
        row = other.kill_switch_state()
        assert row["engaged"] is True and row["reason"] == "kill while the database is down"
        assert final_writes().wait_idle(60), final_writes().pending()
        ((_, status, num_fills, rows),) = fill_counts(other)
        assert status == "killed" and num_fills == rows
        assert ledger_problems(other) == []
    finally:
        other.close()
