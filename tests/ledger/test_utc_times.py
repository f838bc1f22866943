"""Ledger times: timezone-aware UTC in storage and in reads; bar time vs recorded time."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from alphaswarm.ledger import Ledger, migrate

BAR = datetime(2024, 1, 2, 15, 4, tzinfo=UTC)  # a bar's time, long before the run
OLD_STARTED = datetime(2025, 6, 30, 22, 15, 1, 250_000)  # naive: written before 0005
OLD_FILLED = datetime(2024, 1, 2, 9, 31)

TUTORIAL_FILLS_QUERY = """SELECT order_id, symbol, side, qty, price, filled_at
FROM paper_fills
WHERE paper_run_id = '<from_above>'
ORDER BY filled_at;"""


def _fill(fid: str, oid: str, at: datetime) -> dict:
    return {
        "id": fid,
        "order_id": oid,
        "symbol": "SPY",
        "side": "buy",
        "qty": 1.0,
        "price": 100.0,
        "filled_at": at,
    }


def _order(oid: str, at: datetime) -> dict:
    return {
        "id": oid,
        "symbol": "SPY",
        "side": "buy",
        "type": "market",
        "qty": 1.0,
        "created_at": at,
        "updated_at": at,
    }


def test_sqlite_file_stores_times_with_their_zone(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(url=f"sqlite:///{path}") as led:
        led.create_paper_run({"id": "r", "bot_id": "b", "started_at": BAR + timedelta(days=400)})
        new_york = BAR.astimezone(ZoneInfo("America/New_York"))
        led.write_batch("r", orders=[_order("o1", BAR)], fills=[_fill("f1", "o1", new_york)])
    with sqlite3.connect(path) as raw:
        started = raw.execute("SELECT started_at FROM paper_trading_runs").fetchone()[0]
        filled = raw.execute("SELECT filled_at FROM paper_fills").fetchone()[0]
    assert started == "2025-02-05 15:04:00.000000+00:00"
    assert filled == "2024-01-02 15:04:00.000000+00:00"  # converted from New York time


def _naive_ledger_at_0004(url: str) -> None:
    """A ledger at revision 0004 holding rows whose times carry no zone."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn, "0004")
            if conn.dialect.name == "postgresql":
                # a server ledger whose columns lost their zone (e.g. restored from a dump
                # of another tool): plain ``timestamp`` columns with UTC wall values
                for table, column in (
                    ("paper_trading_runs", "started_at"),
                    ("paper_fills", "filled_at"),
                ):
                    conn.exec_driver_sql(
                        f"ALTER TABLE {table} ALTER COLUMN {column} TYPE timestamp"
                    )
                # and a session zone far from UTC, as psql on a user's machine would have
                conn.exec_driver_sql("SET LOCAL timezone = 'Asia/Tokyo'")
            conn.execute(
                text(
                    "INSERT INTO paper_trading_runs (id, bot_id, status, num_fills, "
                    "bars_seen, orders_submitted, started_at) "
                    "VALUES ('old', 'b', 'stopped', 1, 0, 0, :started)"
                ),
                {"started": OLD_STARTED.isoformat(sep=" ")},
            )
            conn.execute(
                text(
                    "INSERT INTO paper_fills (id, paper_run_id, order_id, symbol, side, qty, "
                    "price, commission, slippage, filled_at) "
                    "VALUES ('f1', 'old', 'o1', 'SPY', 'buy', 1, 100, 0, 0, :filled)"
                ),
                {"filled": OLD_FILLED.isoformat(sep=" ")},
            )
    finally:
        engine.dispose()


def test_upgrade_reads_naive_rows_as_utc(ledger_url):
    _naive_ledger_at_0004(ledger_url)
    with Ledger(url=ledger_url) as led:
        assert led.ensure_schema() == migrate.head_revision()
        run = led.get_run("old")
        assert run["started_at"] == OLD_STARTED.replace(tzinfo=UTC)
        assert run["started_at"].utcoffset() == timedelta(0)
        runs = led.runs()
        assert str(runs["started_at"].dtype).endswith(", UTC]")
        assert runs.loc[runs["id"] == "old", "started_at"].iloc[0] == pd.Timestamp(
            OLD_STARTED, tz="UTC"
        )
        # a fill written now sorts after the old one in the tutorial's query, in time order
        later = OLD_FILLED + timedelta(hours=1)
        led.write_batch("old", orders=[_order("o2", BAR)], fills=[_fill("f2", "o2", later)])
        fills = led.sql(TUTORIAL_FILLS_QUERY.replace("<from_above>", "old"))
        assert fills["order_id"].tolist() == ["o1", "o2"]
        assert fills["filled_at"].tolist() == [
            pd.Timestamp(OLD_FILLED, tz="UTC"),
            pd.Timestamp(OLD_FILLED + timedelta(hours=1), tz="UTC"),
        ]
        with led.engine().connect() as conn:
            if conn.dialect.name == "postgresql":
                kinds = (
                    conn.execute(
                        text(
                            "SELECT DISTINCT data_type FROM information_schema.columns "
                            "WHERE table_schema = current_schema() AND data_type LIKE 'timestamp%'"
                        )
                    )
                    .scalars()
                    .all()
                )
                assert kinds == ["timestamp with time zone"]
    if make_url(ledger_url).get_backend_name() == "sqlite":
        with sqlite3.connect(make_url(ledger_url).database) as raw:
            stored = [r[0] for r in raw.execute("SELECT filled_at FROM paper_fills ORDER BY id")]
        assert stored == [
            "2024-01-02 09:31:00.000000+00:00",
            "2024-01-02 10:31:00.000000+00:00",
        ]


def test_fill_rows_name_bar_time_and_recorded_time(ledger):
    before = datetime.now(UTC)
    ledger.create_paper_run({"id": "r", "bot_id": "b"})
    ledger.write_batch(
        "r",
        orders=[_order("o1", BAR)],
        fills=[_fill("f1", "o1", BAR)],
        risk_events=[{"at": BAR, "limit": "max_orders", "action": "deny"}],
    )
    after = datetime.now(UTC)
    fills = ledger.fills("r")
    assert fills["filled_at"].iloc[0] == pd.Timestamp(BAR)  # the bar's clock
    recorded = fills["recorded_at"].iloc[0]
    assert str(fills["recorded_at"].dtype).endswith(", UTC]")
    assert pd.Timestamp(before) <= recorded <= pd.Timestamp(after)  # the wall clock
    orders = ledger.orders("r")
    assert orders["created_at"].iloc[0] == pd.Timestamp(BAR)
    assert pd.Timestamp(before) <= orders["recorded_at"].iloc[0] <= pd.Timestamp(after)
    events = ledger.risk_events("r")
    assert events["at"].iloc[0] == pd.Timestamp(BAR)
    assert pd.Timestamp(before) <= events["recorded_at"].iloc[0] <= pd.Timestamp(after)
    run = ledger.get_run("r")
    assert before <= run["started_at"] <= after and run["started_at"].tzinfo is not None


def test_every_read_returns_aware_utc_times(ledger):
    """Each DataFrame read has its timestamp columns as ``datetime64[..., UTC]``."""
    from alphaswarm.ledger.schema import UTCDateTime, metadata

    stamp_names = {
        c.name
        for t in metadata.tables.values()
        for c in t.columns
        if isinstance(c.type, UTCDateTime)
    }
    ledger.create_paper_run({"id": "r", "bot_id": "b", "last_bar_ts": BAR})
    ledger.write_batch(
        "r",
        orders=[_order("o1", BAR)],
        fills=[_fill("f1", "o1", BAR)],
        equity=[{"ts": BAR, "equity": 1.0, "cash": 1.0}],
        risk_events=[{"at": BAR, "limit": "max_orders", "action": "deny"}],
    )
    ledger.finalize_paper_run("r", status="stopped", total_pnl=0.0)
    ledger.record_backtest(
        {"id": "bt", "bot_id": "b", "start_ts": BAR, "end_ts": BAR + timedelta(days=1)}
    )
    ledger.audit("me", "test", {})
    reads = {
        "runs": ledger.runs(),
        "fills": ledger.fills("r"),
        "orders": ledger.orders("r"),
        "equity": ledger.equity("r"),
        "risk_events": ledger.risk_events("r"),
        "backtests": ledger.backtests(),
        "audit": ledger.audit_rows(),
        "sql": ledger.sql("SELECT started_at, ended_at, last_bar_ts FROM paper_trading_runs"),
    }
    checked = 0
    for name, frame in reads.items():
        assert not frame.empty, name
        for column in stamp_names & set(frame.columns):
            if frame[column].isna().all():
                continue  # never set in this ledger (e.g. a backtest's started_at)
            assert str(frame[column].dtype).endswith(", UTC]"), (name, column, frame[column].dtype)
            checked += 1
    assert checked >= 15
    assert reads["equity"]["ts"].iloc[0] == pd.Timestamp(BAR)
    assert reads["runs"]["last_bar_ts"].iloc[0] == pd.Timestamp(BAR)
