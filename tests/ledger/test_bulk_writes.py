"""Many rows at once: the driver-level path, and stopping many runs in one statement."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select, text

from alphaswarm.ledger import Ledger, LedgerError, bulk
from alphaswarm.ledger import schema as s
from alphaswarm.ledger.batches import prepare_batch

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def make_run(ledger: Ledger, run_id: str) -> None:
    ledger.create_paper_run({"id": run_id, "bot_id": "sma-bot", "starting_cash": 1000.0})


def order(oid: str, status: str) -> dict:
    return {"id": oid, "symbol": "SPY", "side": "buy", "qty": 1.0, "status": status}


def table_rows(ledger: Ledger, table, run_id: str) -> list[dict]:
    with ledger.engine().connect() as conn:
        stmt = select(table).where(table.c.paper_run_id == run_id)
        rows = conn.execute(stmt.order_by(*table.primary_key.columns)).mappings()
        return [{k: v for k, v in r.items() if k not in ("paper_run_id", "id")} for r in rows]


# ----------------------------------------------------------------------- driver path

AWKWARD_FRAMES = [
    {"seq": 1, "stage": "a", "nested": {"x": [1, 2.5, None], "nan": math.nan}},
    {"seq": 2, "stage": "b", "when": T0, "big": 2**40, "text": "é \u2603 'quoted' %s %(x)s"},
    {"seq": 3, "stage": "c", "np": np.float64(1.25), "inf": math.inf, "tuple": (1, 2)},
]
AWKWARD_EQUITY = [
    {"ts": T0, "equity": 1.0, "cash": 2.0},
    {"ts": T0.astimezone(timezone(timedelta(hours=-5))) + timedelta(minutes=1), "equity": 3.0},
    {"ts": pd.Timestamp(T0 + timedelta(minutes=2)), "equity": np.float64(4.5), "cash": None},
    {"ts": (T0 + timedelta(minutes=3)).replace(tzinfo=None), "equity": 5.0, "cash": 6.0},
]


def test_driver_path_stores_what_sqlalchemy_stores(ledger):
    """The same rows through the ledger (driver executemany) and through SQLAlchemy."""
    make_run(ledger, "fast")
    make_run(ledger, "reference")
    ledger.write_batch("fast", frames=AWKWARD_FRAMES, equity=AWKWARD_EQUITY)
    prepared = prepare_batch("reference", (), (), AWKWARD_EQUITY, AWKWARD_FRAMES, (), None, T0)
    with ledger.engine().begin() as conn:
        for row in prepared["frames"]:
            conn.execute(insert(s.paper_frames), [row])  # one at a time: SQLAlchemy's own path
        for row in prepared["equity"]:
            conn.execute(insert(s.paper_equity), [row])
    for table in (s.paper_frames, s.paper_equity):
        fast = table_rows(ledger, table, "fast")
        assert fast == table_rows(ledger, table, "reference")
        assert len(fast) in (3, 4)
    frames = ledger.frames_after("fast", 0)
    assert frames[0]["nested"] == {"x": [1, 2.5, None], "nan": None}
    assert frames[1]["text"] == "é \u2603 'quoted' %s %(x)s"
    assert frames[2]["inf"] is None and frames[2]["tuple"] == [1, 2]
    assert [p.to_pydatetime() for p in ledger.equity("fast")["ts"]] == [
        T0 + timedelta(minutes=i) for i in range(4)
    ]


def test_upsert_through_the_driver_updates_only_the_given_columns(ledger):
    make_run(ledger, "r")
    ledger.write_batch("r", orders=[{**order("o1", "accepted"), "created_at": T0, "tag": "x"}])
    ledger.write_batch("r", orders=[order("o1", "filled"), order("o2", "new")])
    rows = ledger.orders("r").set_index("id")
    assert rows.loc["o1", "status"] == "filled" and rows.loc["o1", "tag"] == "x"
    assert rows.loc["o1", "created_at"].to_pydatetime() == T0, "kept on conflict"
    assert rows.loc["o2", "type"] == "market", "a Python-side default filled in"
    assert rows.loc["o2", "created_at"] > T0


def test_statements_needing_python_defaults_fall_back_to_sqlalchemy(ledger):
    make_run(ledger, "r")
    keys = ["id", "paper_run_id", "symbol", "side", "qty"]
    with ledger.engine().begin() as conn:
        assert bulk._compile(conn, insert(s.paper_orders), keys) is None
        count = bulk.execute_many(
            conn,
            ("test: orders without defaults", tuple(keys)),
            lambda: insert(s.paper_orders),
            [dict(zip(keys, [f"o{i}", "r", "SPY", "buy", 1.0], strict=True)) for i in range(3)],
            column_keys=keys,
        )
    assert count in (3, -1)  # -1: the driver does not count an INSERT of many rows
    rows = ledger.orders("r")
    assert rows["status"].tolist() == ["new"] * 3 and rows["created_at"].notna().all()


def test_with_python_defaults_fills_only_what_is_missing():
    rows = [{"id": "a", "status": "filled"}, {"id": "b", "status": "new"}]
    filled = bulk.with_python_defaults(s.paper_orders, rows)
    assert [r["status"] for r in filled] == ["filled", "new"]
    assert {r["type"] for r in filled} == {"market"} and {r["filled_qty"] for r in filled} == {0.0}
    assert filled[0]["created_at"] == filled[1]["created_at"], "one now for the group"
    assert "limit_price" not in filled[0], "no default: left to the database"
    assert bulk.with_python_defaults(s.paper_orders, []) == []


def test_a_bad_row_in_a_driver_batch_writes_nothing(ledger):
    make_run(ledger, "r")
    ledger.write_batch("r", frames=[{"seq": 1, "stage": "x"}])
    with pytest.raises(LedgerError, match="nothing was written"):
        ledger.write_batch(
            "r",
            frames=[{"seq": 2, "stage": "y"}, {"seq": 1, "stage": "duplicate"}],
            equity=[{"ts": T0, "equity": 1.0}],
        )
    assert ledger.frames("r")["seq"].tolist() == [1]
    assert ledger.equity("r").empty


def test_write_batches_counts_every_run_it_updates(ledger):
    for run in ("r1", "r2", "r3"):
        make_run(ledger, run)
    final = {"status": "stopped", "num_fills": 2}
    ledger.write_batches([(run, {"run_update": final}) for run in ("r1", "r2", "r3")])
    assert {r["status"] for r in ledger.list_runs()} == {"stopped"}
    with pytest.raises(LedgerError, match="unknown paper run"):
        ledger.write_batches(
            [(run, {"run_update": {"status": "killed"}}) for run in ("r1", "ghost", "r2")]
        )
    assert {r["status"] for r in ledger.list_runs()} == {"stopped"}


# ----------------------------------------------------------------------- stop_runs


def test_stop_runs_sets_final_status_and_cancels_open_orders(ledger):
    for run in ("r1", "r2", "r3"):
        make_run(ledger, run)
    ledger.write_batch("r1", orders=[order("o1", "accepted"), order("o2", "filled")])
    ledger.write_batch("r2", orders=[order("o3", "partially_filled"), order("o4", "rejected")])
    ledger.write_batch("r3", orders=[order("o5", "new")])
    at = T0 + timedelta(hours=1)
    stopped = ledger.stop_runs(
        ["r1", "r2", "r1"], status="killed", reason="drill", at=at, cancel_orders=("ks", "why")
    )
    assert stopped == 2
    runs = {r["id"]: r for r in ledger.list_runs()}
    for run in ("r1", "r2"):
        assert (runs[run]["status"], runs[run]["stop_reason"]) == ("killed", "drill")
        assert runs[run]["ended_at"] == at and runs[run]["last_heartbeat_at"] == at
    assert runs["r3"]["status"] == "running" and runs["r3"]["ended_at"] is None
    orders = pd.concat([ledger.orders(r) for r in ("r1", "r2", "r3")]).set_index("id")
    assert orders["status"].to_dict() == {
        "o1": "cancelled",
        "o2": "filled",
        "o3": "cancelled",
        "o4": "rejected",
        "o5": "new",
    }
    assert orders.loc["o1", "reason_code"] == "ks" and orders.loc["o3", "reason"] == "why"
    assert orders.loc["o1", "updated_at"].to_pydatetime() == at


def test_stop_runs_without_cancelling_leaves_orders(ledger):
    make_run(ledger, "r1")
    ledger.write_batch("r1", orders=[order("o1", "accepted")])
    ledger.stop_runs(["r1"], status="stopped", reason="user", at=T0)
    assert ledger.orders("r1")["status"].tolist() == ["accepted"]
    assert ledger.get_run("r1")["status"] == "stopped"
    assert ledger.stop_runs([], status="stopped", reason="user", at=T0) == 0


def test_stop_runs_with_an_unknown_run_writes_nothing(ledger):
    make_run(ledger, "r1")
    ledger.write_batch("r1", orders=[order("o1", "accepted")])
    with pytest.raises(LedgerError, match="unknown paper run"):
        ledger.stop_runs(
            ["r1", "ghost"], status="killed", reason="x", at=T0, cancel_orders=("k", "x")
        )
    assert ledger.get_run("r1")["status"] == "running"
    assert ledger.orders("r1")["status"].tolist() == ["accepted"]
    with pytest.raises(LedgerError):
        ledger.stop_runs(["r1"], status="killed", reason="x", at="not a time")
    assert ledger.get_run("r1")["status"] == "running"


def test_stop_runs_takes_more_runs_than_one_in_list_holds(ledger):
    ids = [f"r{i:04d}" for i in range(1100)]
    rows = [{"id": i, "bot_id": "sma-bot", "starting_cash": 1.0} for i in ids]
    with ledger.engine().begin() as conn:
        conn.execute(insert(s.paper_trading_runs), rows)
    assert ledger.stop_runs(ids, status="killed", reason="many", at=T0) == 1100
    statuses = ledger.sql("SELECT status, COUNT(*) AS n FROM paper_trading_runs GROUP BY status")
    assert statuses.to_dict("records") == [{"status": "killed", "n": 1100}]


def test_many_utc_times_bind_as_the_text_one_at_a_time_gives():
    """The column-at-once SQLite formatting of UTC datetimes equals SQLAlchemy's own."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.types import TypeDecorator

    dialect = sqlite.dialect()
    impl = s.UTCDateTime().dialect_impl(dialect)
    reference = TypeDecorator.bind_processor(impl, dialect)  # SQLAlchemy's general path
    fast = impl.bind_processor(dialect)
    rng = np.random.default_rng(3)
    seconds = rng.integers(-2_000_000_000, 4_000_000_000, 500).tolist()
    micros = rng.integers(0, 1_000_000, 500).tolist()
    values = [
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=a, microseconds=b)
        for a, b in zip(seconds, micros, strict=True)
    ]
    values += [datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), T0]
    assert fast.many(values) == [reference(v) for v in values]
    mixed = values[:100] + [T0.replace(tzinfo=None), pd.Timestamp(T0), "2026-03-02T14:30:00Z"]
    assert fast.many(mixed) == [reference(v) for v in mixed]


def test_equity_tuples_store_the_rows_equity_dicts_store(ledger):
    """A session's ``(ts, equity, cash)`` points: the same stored text as mappings."""
    make_run(ledger, "tuples")
    make_run(ledger, "dicts")
    times = [T0 + timedelta(minutes=i, microseconds=7 * i) for i in range(300)]
    points = [(t, 1000.0 + i / 3, 500.0 - i) for i, t in enumerate(times)]
    ledger.write_batch("tuples", equity=points)
    ledger.write_batch("dicts", equity=[{"ts": t, "equity": e, "cash": c} for t, e, c in points])
    raw = "SELECT ts, equity, cash FROM paper_equity WHERE paper_run_id = :r ORDER BY ts"
    with ledger.engine().connect() as conn:  # as stored: SQLite's text, PostgreSQL's timestamptz
        stored = [conn.execute(text(raw), {"r": r}).all() for r in ("tuples", "dicts")]
    assert stored[0] == stored[1] and len(stored[0]) == 300
    if ledger.engine().dialect.name == "sqlite":
        assert stored[0][1][0] == "2026-03-02 14:31:00.000007+00:00"
    else:
        assert stored[0][1][0] == times[1]
    # a later point for a stored time updates it, as a mapping does
    ledger.write_batch("tuples", equity=[(times[-1], 1.5, 2.5)])
    assert ledger.equity("tuples")["equity"].iloc[-1] == 1.5


@pytest.mark.parametrize(
    "points, message",
    [
        ([(T0, 1.0)], "must be (ts, equity, cash)"),
        ([(T0, 1.0, 2.0), ("not a time", 1.0, 2.0)], "not an ISO-8601 timestamp"),
        ([(None, 1.0, 2.0)], "'ts' is required"),
    ],
)
def test_bad_equity_tuples_are_refused_and_nothing_is_written(ledger, points, message):
    make_run(ledger, "r")
    with pytest.raises(LedgerError, match=re.escape(message)):
        ledger.write_batch("r", equity=points, orders=[order("o1", "new")])
    assert ledger.equity("r").empty and ledger.orders("r").empty


def test_equity_points_keep_times_to_the_microsecond_in_any_zone():
    from zoneinfo import ZoneInfo

    from alphaswarm.ledger.equity_points import EquityPoints

    new_york = ZoneInfo("America/New_York")
    given = [
        (T0 + timedelta(microseconds=1), 1.0, 2.0),
        (datetime(2026, 3, 2, 9, 31, 0, 999_999, tzinfo=new_york), 3.0, 4.0),
        (datetime(1969, 12, 31, 23, 59, 59, 500_000), 5.0, 6.0),  # naive: UTC
    ]
    points = EquityPoints(given)
    want = [(t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC), e, c) for t, e, c in given]
    assert list(points) == want
    assert [t.astype(object).replace(tzinfo=UTC) for t in points.times()] == [w[0] for w in want]
    points.set_last(want[-1][0], 7.0, 8.0)  # the same time: replaced
    points.set_last(want[-1][0] + timedelta(minutes=1), 9.0, 10.0)  # a new one: added
    copy = points.copy()
    points.drop_first(2)
    assert [p[1:] for p in points] == [(7.0, 8.0), (9.0, 10.0)] and len(copy) == 4
    with pytest.raises(TypeError, match="must be a datetime"):
        points.append("2026-03-02", 1.0, 2.0)
    with pytest.raises(ValueError, match="2255"):
        points.append(datetime(2300, 1, 1, tzinfo=UTC), 1.0, 2.0)
    assert len(points) == 2


def test_a_sessions_equity_points_store_the_rows_mappings_store(ledger):
    from alphaswarm.ledger.equity_points import EquityPoints

    make_run(ledger, "points")
    make_run(ledger, "dicts")
    make_run(ledger, "both")
    times = [T0 + timedelta(minutes=i, microseconds=3 * i) for i in range(200)]
    given = [(t, 100.0 + i / 7, 50.0) for i, t in enumerate(times)]
    ledger.write_batch("points", equity=EquityPoints(given))
    ledger.write_batch("dicts", equity=[{"ts": t, "equity": e, "cash": c} for t, e, c in given])
    # several sessions' points in one transaction, beside another run's tuples
    ledger.write_batches(
        [("both", {"equity": EquityPoints(given[:100])}), ("dicts", {"equity": given[:1]})]
    )
    ledger.write_batch("both", equity=EquityPoints(given[100:]))
    raw = "SELECT ts, equity, cash FROM paper_equity WHERE paper_run_id = :r ORDER BY ts"
    with ledger.engine().connect() as conn:
        stored = {r: conn.execute(text(raw), {"r": r}).all() for r in ("points", "dicts", "both")}
    assert stored["points"] == stored["dicts"] == stored["both"]
    assert len(stored["points"]) == 200
