"""The Ledger on SQLite and PostgreSQL: writes, reads, atomicity, concurrency."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from alphaswarm.ledger import Ledger, LedgerError
from alphaswarm.ledger import schema as s
from alphaswarm.ledger.migrate import head_revision

TUTORIAL_RUN_QUERY = """SELECT id, bot_id, status, total_pnl, num_fills, started_at, ended_at
FROM paper_trading_runs ORDER BY started_at DESC LIMIT 1;"""

TUTORIAL_FILLS_QUERY = """SELECT order_id, symbol, side, qty, price, filled_at
FROM paper_fills
WHERE paper_run_id = '<from_above>'
ORDER BY filled_at;"""

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def make_run(ledger: Ledger, run_id: str, **extra) -> None:
    row = {"id": run_id, "bot_id": "sma-bot", "starting_cash": 100_000.0, **extra}
    ledger.create_paper_run(row)


def order(oid: str, **extra) -> dict:
    row = {"id": oid, "symbol": "SPY", "side": "buy", "type": "market", "qty": 10.0}
    row.update(extra)
    return row


def fill(fid: str, oid: str, price: float, at: datetime, side: str = "buy", **extra) -> dict:
    row = {
        "id": fid,
        "order_id": oid,
        "symbol": "SPY",
        "side": side,
        "qty": 10.0,
        "price": price,
        "commission": 1.0,
        "filled_at": at,
    }
    row.update(extra)
    return row


def count(ledger: Ledger, table) -> int:
    with ledger.engine().connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# ----------------------------------------------------------------------------- schema


def test_schema_created_by_alembic(ledger):
    assert ledger.ensure_schema() == head_revision()
    with ledger.engine().connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        tables = set(inspect(conn).get_table_names())
    assert version == [head_revision()]
    assert set(s.metadata.tables) <= tables


# ----------------------------------------------------------------------------- tutorial


def test_tutorial_queries_run_verbatim(ledger, ledger_url):
    ledger.register_bot("SMA bot", {"strategy": "sma"}, "h1")
    make_run(ledger, "pr-old", started_at=T0 - timedelta(days=1))
    make_run(ledger, "pr-new", started_at=T0)
    ledger.write_batch(
        "pr-new",
        orders=[order("o1"), order("o2", side="sell")],
        # written out of time order; the query sorts them
        fills=[
            fill("f2", "o2", 452.5, T0 + timedelta(minutes=5), side="sell"),
            fill("f1", "o1", 451.2, T0 + timedelta(minutes=1)),
        ],
        run_update={"num_fills": 2},
    )
    ledger.finalize_paper_run("pr-new", status="stopped", total_pnl=11.0, stop_reason="kill switch")

    run = ledger.sql(TUTORIAL_RUN_QUERY)
    assert list(run.columns) == [
        "id",
        "bot_id",
        "status",
        "total_pnl",
        "num_fills",
        "started_at",
        "ended_at",
    ]
    assert run.shape == (1, 7)
    row = run.iloc[0]
    assert (row["id"], row["bot_id"], row["status"]) == ("pr-new", "sma-bot", "stopped")
    assert row["total_pnl"] == 11.0 and row["num_fills"] == 2
    assert row["started_at"] == pd.Timestamp(T0)
    assert str(run["started_at"].dtype).endswith("UTC]")
    assert pd.notna(row["ended_at"])

    fills_sql = TUTORIAL_FILLS_QUERY.replace("<from_above>", row["id"])
    fills = ledger.sql(fills_sql)
    assert list(fills.columns) == ["order_id", "symbol", "side", "qty", "price", "filled_at"]
    assert fills["order_id"].tolist() == ["o1", "o2"]
    assert fills["price"].tolist() == [451.2, 452.5]
    assert fills["filled_at"].tolist() == [
        pd.Timestamp(T0 + timedelta(minutes=1)),
        pd.Timestamp(T0 + timedelta(minutes=5)),
    ]

    # ... and through the plain driver, as a user with psql or sqlite3 would run them.
    if ledger.dialect == "sqlite":
        with sqlite3.connect(make_url(ledger_url).database) as raw:
            assert raw.execute(TUTORIAL_RUN_QUERY).fetchone()[:5] == (
                "pr-new",
                "sma-bot",
                "stopped",
                11.0,
                2,
            )
            assert [r[0] for r in raw.execute(fills_sql)] == ["o1", "o2"]
    else:
        with ledger.engine().connect() as conn:
            assert conn.exec_driver_sql(TUTORIAL_RUN_QUERY).fetchone()[0] == "pr-new"
            assert [r[0] for r in conn.exec_driver_sql(fills_sql)] == ["o1", "o2"]


# ----------------------------------------------------------------------------- bots


def test_register_bot_versioning(ledger):
    assert ledger.register_bot("SMA Cross", {"fast": 10}, "hash-a") == ("sma-cross", 1, True)
    assert ledger.register_bot("SMA Cross", {"fast": 10}, "hash-a") == ("sma-cross", 1, False)
    assert ledger.register_bot("SMA Cross", {"fast": 20}, "hash-b") == ("sma-cross", 2, True)
    # going back to an earlier spec finds that version again
    assert ledger.register_bot("SMA Cross", {"fast": 10}, "hash-a") == ("sma-cross", 1, False)
    assert ledger.register_bot("SMA Cross", {"fast": 30}, "hash-c") == ("sma-cross", 3, True)

    versions = ledger.bot_versions("sma-cross")
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["spec_hash"] for v in versions] == ["hash-a", "hash-b", "hash-c"]
    assert ledger.bot_spec("sma-cross") == {"fast": 30}
    assert ledger.bot_spec("sma-cross", version=2) == {"fast": 20}
    with pytest.raises(LedgerError, match="no version 9"):
        ledger.bot_spec("sma-cross", version=9)
    with pytest.raises(LedgerError, match="nope"):
        ledger.bot_spec("nope")

    bot = ledger.get_bot("sma-cross")
    assert bot["name"] == "SMA Cross"
    assert bot["latest_version"] == 3 and bot["spec"] == {"fast": 30}
    assert bot["spec_hash"] == "hash-c"
    assert bot["created_at"].tzinfo is not None
    assert ledger.get_bot("unknown") is None
    assert ledger.bot_versions("unknown") == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("My SMA Bot!", "my-sma-bot"),
        ("  --Mean__Reversion 2--  ", "mean-reversion-2"),
        ("Ünïcödé Bot", "unicode-bot"),
        ("!!!", "bot-deadbeef"),
        ("日本", "bot-deadbeef"),
    ],
)
def test_bot_id_is_a_slug(ledger, name, expected):
    bot_id, version, created = ledger.register_bot(name, {}, "deadbeef0123")
    assert (bot_id, version, created) == (expected, 1, True)


def test_names_with_the_same_slug_get_distinct_ids(ledger):
    first = ledger.register_bot("My Bot", {"a": 1}, "h1")[0]
    second = ledger.register_bot("my-bot", {"a": 1}, "h1")[0]
    assert first == "my-bot" and second != first
    assert {b["name"] for b in ledger.list_bots()} == {"My Bot", "my-bot"}


@pytest.mark.parametrize(
    ("name", "spec", "spec_hash"),
    [("", {}, "h"), ("x", {}, ""), ("x", ["not", "a", "dict"], "h")],
)
def test_register_bot_rejects_bad_input(ledger, name, spec, spec_hash):
    with pytest.raises(LedgerError, match="register_bot"):
        ledger.register_bot(name, spec, spec_hash)


def test_bot_reports_latest_backtest_of_latest_version(ledger):
    bot_id, _, _ = ledger.register_bot("Gate Bot", {"v": 1}, "h1")
    bt1 = ledger.record_backtest({"bot_id": bot_id, "sharpe": 1.4, "max_drawdown": 0.08})
    ref = ledger.get_bot(bot_id)["backtest_runs"]
    assert ref["id"] == bt1 and ref["bot_version"] == 1
    assert set(ref) == {"id", "created_at", "sharpe", "max_drawdown", "bot_version"}
    assert ledger.get_bot(bot_id)["sharpe"] == 1.4

    ledger.register_bot("Gate Bot", {"v": 2}, "h2")  # a new version has no backtest yet
    bot = ledger.get_bot(bot_id)
    assert bot["backtest_runs"] is None and bot["sharpe"] is None

    ledger.record_backtest({"bot_id": bot_id, "sharpe": 0.5, "max_drawdown": 0.2, "bars": 390})
    bt3 = ledger.record_backtest(
        {"id": "bt-fixed", "bot_id": bot_id, "bot_version": 2, "sharpe": 2.0, "config": {"x": 1}}
    )
    assert bt3 == "bt-fixed"
    assert ledger.get_bot(bot_id)["sharpe"] == 2.0
    assert ledger.latest_backtest(bot_id, bot_version=1)["id"] == bt1
    assert ledger.latest_backtest("unknown") is None
    frame = ledger.backtests(bot_id)
    assert frame["id"].tolist()[0] == "bt-fixed" and len(frame) == 3
    assert str(frame["created_at"].dtype).endswith("UTC]")
    assert [b["id"] for b in ledger.list_bots()] == [bot_id]


# ----------------------------------------------------------------------------- runs


def test_create_and_read_runs(ledger):
    ledger.register_bot("sma bot", {}, "h")
    make_run(ledger, "pr-1", config={"speed": 60.0}, run_name="first")
    make_run(ledger, "pr-2", started_at=T0)
    run = ledger.get_run("pr-1")
    assert run["status"] == "running" and run["task_id"] == "pr-1"
    assert run["bot_version"] == 1
    assert run["owner"] == ledger.owner
    assert run["total_pnl"] == 0.0 and run["final_equity"] == 100_000.0
    assert run["started_at"].tzinfo == UTC
    assert run["config"] == {"speed": 60.0}
    assert ledger.get_run("missing") is None
    with pytest.raises(LedgerError, match="nothing was written"):
        make_run(ledger, "pr-1")  # duplicate id
    with pytest.raises(LedgerError, match="'bot_id' is required"):
        ledger.create_paper_run({"id": "pr-x"})
    with pytest.raises(LedgerError, match="unknown column 'colour'"):
        make_run(ledger, "pr-y", colour="red")

    assert [r["id"] for r in ledger.list_runs()] == ["pr-1", "pr-2"]  # newest first
    assert [r["id"] for r in ledger.list_runs(limit=1)] == ["pr-1"]
    ledger.finalize_paper_run("pr-2", status="completed")
    assert [r["id"] for r in ledger.running_runs()] == ["pr-1"]
    assert [r["id"] for r in ledger.list_runs(status="completed", bot_id="sma-bot")] == ["pr-2"]
    assert ledger.list_runs(bot_id="other") == []

    runs = ledger.runs()
    assert runs["id"].tolist() == ["pr-1", "pr-2"]
    assert runs["num_fills"].dtype == "int64"
    for col in ("started_at", "last_heartbeat_at", "ended_at", "last_bar_ts"):
        assert str(runs[col].dtype).endswith("UTC]"), col


def test_update_and_finalize(ledger):
    make_run(ledger, "pr-1")
    ledger.update_run("pr-1", bars_seen=5, state={"positions": {"SPY": 10.0}})
    assert ledger.get_run("pr-1")["state"] == {"positions": {"SPY": 10.0}}
    with pytest.raises(LedgerError, match="unknown paper run 'nope'"):
        ledger.update_run("nope", bars_seen=1)
    with pytest.raises(LedgerError, match="cannot be updated"):
        ledger.update_run("pr-1", id="other")
    with pytest.raises(LedgerError, match="unknown paper run 'nope'"):
        ledger.finalize_paper_run("nope", status="stopped")
    with pytest.raises(LedgerError, match="unknown column 'bogus'"):
        ledger.finalize_paper_run("pr-1", bogus=1)
    assert ledger.get_run("pr-1")["status"] == "running"

    ledger.finalize_paper_run("pr-1", total_pnl=12.5, stop_reason="duration reached")
    run = ledger.get_run("pr-1")
    assert run["status"] == "stopped" and run["total_pnl"] == 12.5
    assert run["ended_at"] is not None and run["stop_reason"] == "duration reached"


def test_finalize_computes_missing_total_pnl(ledger):
    make_run(ledger, "pr-1", total_pnl=None)
    ledger.write_batch(
        "pr-1",
        fills=[
            fill("f1", "o1", 100.0, T0),
            fill("f2", "o2", 103.0, T0 + timedelta(minutes=1), side="sell"),
        ],
    )
    ledger.finalize_paper_run("pr-1")
    run = ledger.get_run("pr-1")
    assert run["total_pnl"] == pytest.approx(28.0)  # 10 * 3 - 2 commission
    assert run["num_fills"] == 2


def test_timestamps_are_utc(ledger):
    cest = timezone(timedelta(hours=2))
    local = datetime(2026, 3, 2, 16, 30, tzinfo=cest)
    make_run(ledger, "pr-1", started_at=local, last_bar_ts="2026-03-02T14:31:00Z")
    ledger.write_batch(
        "pr-1",
        fills=[fill("f1", "o1", 100.0, datetime(2026, 3, 2, 14, 32))],  # naive = UTC
        equity=[{"ts": pd.Timestamp("2026-03-02 09:33", tz="America/New_York"), "equity": 1.0}],
    )
    run = ledger.get_run("pr-1")
    assert run["started_at"] == T0 and run["started_at"].tzinfo == UTC
    assert run["last_bar_ts"] == T0 + timedelta(minutes=1)
    fills = ledger.fills("pr-1")
    assert fills["filled_at"].iloc[0] == pd.Timestamp("2026-03-02 14:32", tz="UTC")
    equity = ledger.equity("pr-1")
    assert equity["ts"].iloc[0] == pd.Timestamp("2026-03-02 14:33", tz="UTC")
    assert str(equity["ts"].dtype).endswith("UTC]")
    assert equity["equity"].dtype == "float64"
    with pytest.raises(LedgerError, match="ISO-8601"):
        ledger.update_run("pr-1", last_bar_ts="yesterday-ish")


def test_json_round_trips_floats(ledger):
    config = {
        "cash": 100_000.0,
        "tenth": 0.1,
        "tiny": 1e-300,
        "precise": 123456789.12345679,
        "third": 1 / 3,
        "negative": -2.5e-7,
        "nested": {"weights": [0.2, 0.3, 0.5], "flag": True, "none": None},
        "nan": float("nan"),
    }
    make_run(ledger, "pr-1", config=config, state={"equity": [1.5, 2.25]})
    run = ledger.get_run("pr-1")
    assert run["config"] == {**config, "nan": None}  # JSON has no NaN: stored as null
    assert run["state"] == {"equity": [1.5, 2.25]}


# ----------------------------------------------------------------------------- batches


def test_write_batch_writes_everything(ledger):
    make_run(ledger, "pr-1")
    before = ledger.get_run("pr-1")["last_heartbeat_at"]
    frames = [
        {"task_id": "pr-1", "stage": "bar.received", "message": "bar", "seq": 1, "ts": 1.5},
        {"seq": 2, "stage": "order.filled", "frame": {"seq": 2, "stage": "order.filled"}},
    ]
    ledger.write_batch(
        "pr-1",
        orders=[order("o1", status="filled", filled_qty=10.0, avg_fill_price=451.2)],
        fills=[fill("f1", "o1", 451.2, T0)],
        equity=[{"ts": T0, "equity": 100_010.0, "cash": 95_000.0}],
        frames=frames,
        risk_events=[
            {
                "at": T0,
                "order_id": "o9",
                "limit": "max_position_qty",
                "value": 200.0,
                "threshold": 100.0,
                "action": "deny",
                "message": "too big",
            }
        ],
        run_update={"num_fills": 1, "bars_seen": 1, "total_pnl": 10.0},
    )
    run = ledger.get_run("pr-1")
    assert (run["num_fills"], run["bars_seen"], run["total_pnl"]) == (1, 1, 10.0)
    assert run["last_heartbeat_at"] >= before
    assert ledger.orders("pr-1")["status"].tolist() == ["filled"]
    assert ledger.fills("pr-1")["id"].tolist() == ["f1"]
    assert ledger.equity("pr-1")["cash"].tolist() == [95_000.0]
    assert ledger.frames("pr-1")["stage"].tolist() == ["bar.received", "order.filled"]
    assert ledger.frames("pr-1", since_seq=1)["seq"].tolist() == [2]
    assert ledger.frames_after("pr-1", 0)[0] == frames[0]
    assert ledger.frames_after("pr-1", 2) == []
    events = ledger.risk_events("pr-1")
    assert events[["limit", "value", "threshold", "action"]].iloc[0].tolist() == [
        "max_position_qty",
        200.0,
        100.0,
        "deny",
    ]
    assert len(ledger.risk_events()) == 1 and len(ledger.risk_events("other")) == 0


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"frames": [{"seq": 3, "stage": "x", "obj": object()}]}, id="unserialisable"),
        pytest.param({"fills": [fill("f1", "o1", 1.0, T0)]}, id="duplicate-fill"),
        pytest.param({"frames": [{"seq": 1, "stage": "dup"}]}, id="duplicate-seq"),
        pytest.param({"fills": [fill("f9", "o1", None, T0)]}, id="null-price"),
        pytest.param({"equity": [{"ts": "not a time", "equity": 1.0}]}, id="bad-timestamp"),
        pytest.param({"orders": [order("o2", colour="red")]}, id="unknown-column"),
        pytest.param({"run_update": {"nonsense": 1}}, id="unknown-run-column"),
        pytest.param({"frames": [{"stage": "x"}]}, id="frame-without-seq"),
    ],
)
def test_write_batch_is_atomic(ledger, bad):
    make_run(ledger, "pr-1")
    ledger.write_batch(
        "pr-1",
        fills=[fill("f1", "o1", 1.0, T0)],
        frames=[{"seq": 1, "stage": "first"}],
        run_update={"num_fills": 1},
    )
    heartbeat = ledger.get_run("pr-1")["last_heartbeat_at"]
    good = {
        "orders": [order("o1", status="filled")],
        "fills": [fill("f2", "o1", 2.0, T0 + timedelta(minutes=1))],
        "equity": [{"ts": T0, "equity": 5.0}],
        "frames": [{"seq": 2, "stage": "second"}],
        "risk_events": [{"limit": "max_orders", "action": "deny"}],
        "run_update": {"num_fills": 2, "total_pnl": 99.0},
    }
    batch = {k: good[k] + bad.get(k, []) if k != "run_update" else good[k] for k in good}
    if "run_update" in bad:
        batch["run_update"] = {**good["run_update"], **bad["run_update"]}
    with pytest.raises(LedgerError):
        ledger.write_batch("pr-1", **batch)
    run = ledger.get_run("pr-1")
    assert (run["num_fills"], run["total_pnl"]) == (1, 0.0)
    assert run["last_heartbeat_at"] == heartbeat
    assert ledger.fills("pr-1")["id"].tolist() == ["f1"]
    assert ledger.orders("pr-1").empty and ledger.equity("pr-1").empty
    assert ledger.frames("pr-1")["seq"].tolist() == [1]
    assert ledger.risk_events().empty


def test_write_batches_is_one_transaction(ledger):
    make_run(ledger, "pr-1")
    make_run(ledger, "pr-2")
    final = {"status": "stopped", "stop_reason": "kill switch", "total_pnl": 3.0}
    with pytest.raises(LedgerError):
        ledger.write_batches(
            [
                ("pr-1", {"fills": [fill("f1", "o1", 1.0, T0)], "run_update": final}),
                ("pr-2", {"fills": [fill("f1", "o1", 1.0, T0)], "run_update": final}),  # dup id
            ]
        )
    assert {r["status"] for r in ledger.list_runs()} == {"running"}
    assert count(ledger, s.paper_fills) == 0
    with pytest.raises(LedgerError, match="unknown keys"):
        ledger.write_batches([("pr-1", {"fill": []})])

    ledger.write_batches(
        [
            ("pr-1", {"fills": [fill("f1", "o1", 1.0, T0)], "run_update": final}),
            ("pr-2", {"frames": [{"seq": 1, "stage": "done"}], "run_update": final}),
        ]
    )
    assert {r["status"] for r in ledger.list_runs()} == {"stopped"}
    assert ledger.frames_after("pr-2", 0) == [{"seq": 1, "stage": "done"}]
    ledger.write_batches([])


def test_write_batch_unknown_run(ledger):
    with pytest.raises(LedgerError, match="unknown paper run 'ghost'"):
        ledger.write_batch("ghost", fills=[fill("f1", "o1", 1.0, T0)])
    assert count(ledger, s.paper_fills) == 0


def test_order_upsert(ledger):
    make_run(ledger, "pr-1")
    ledger.write_batch("pr-1", orders=[order("o1", status="accepted", created_at=T0)])
    first = ledger.orders("pr-1").iloc[0]
    ledger.write_batch(
        "pr-1",
        orders=[
            order("o1", status="partially_filled", filled_qty=4.0, avg_fill_price=100.0),
            order("o2", side="sell", status="new"),
        ],
    )
    ledger.write_batch(
        "pr-1",
        orders=[{"id": "o1", "status": "filled", "filled_qty": 10.0, "avg_fill_price": 100.5}],
    )
    orders = ledger.orders("pr-1").set_index("id")
    assert list(orders.index) == ["o1", "o2"]
    o1 = orders.loc["o1"]
    assert (o1["status"], o1["filled_qty"], o1["avg_fill_price"]) == ("filled", 10.0, 100.5)
    assert (o1["symbol"], o1["side"], o1["qty"]) == ("SPY", "buy", 10.0)  # kept
    assert o1["created_at"] == first["created_at"] == pd.Timestamp(T0)
    assert o1["updated_at"] > first["updated_at"]
    assert orders.loc["o2", "status"] == "new"
    assert count(ledger, s.paper_orders) == 2


def test_model_objects_are_accepted(ledger):
    model = pytest.importorskip("alphaswarm.model")
    request = model.OrderRequest(symbol="SPY", side=model.Side.BUY, qty=5.0)
    placed = model.Order(id="o1", request=request, created_at=T0, placed_index=0)
    done = model.Fill(
        id="f1",
        order_id="o1",
        symbol="SPY",
        side=model.Side.BUY,
        qty=5.0,
        price=450.0,
        commission=0.25,
        ts=T0,
    )
    make_run(ledger, "pr-1")
    ledger.write_batch("pr-1", orders=[placed.to_dict()], fills=[done.to_dict()])
    ledger.write_batch("pr-1", orders=[{"id": "o1", "status": model.OrderStatus.FILLED}])
    assert ledger.orders("pr-1")[["id", "side", "status"]].iloc[0].tolist() == [
        "o1",
        "buy",
        "filled",
    ]
    assert ledger.fills("pr-1")[["id", "order_id", "price"]].iloc[0].tolist() == [
        "f1",
        "o1",
        450.0,
    ]


# ----------------------------------------------------------------------------- crashes


def test_recompute_orders_fills_of_one_bar_by_their_numeric_sequence(ledger):
    """Fills ``R-f9`` then ``R-f10`` on one bar: the last price is f10's (not string order)."""
    old = datetime.now(UTC) - timedelta(hours=1)
    make_run(ledger, "R", owner="host:1")
    ledger.write_batch(
        "R",
        fills=[fill(f"R-f{i}", f"R-o{i}", 100.0 + i, T0) for i in range(1, 11)],
        run_update={"last_heartbeat_at": old},
    )
    assert ledger.mark_crashed(older_than_seconds=60) == ["R"]
    # 100 held at an average of 105.5, marked at the last fill (110): +450, less 10 commission
    assert ledger.get_run("R")["total_pnl"] == pytest.approx(440.0)


def test_mark_crashed_recomputes(ledger):
    old = datetime.now(UTC) - timedelta(hours=1)
    # A: fills only (buy 10 @ 100, sell 10 @ 110, 1.0 commission each); stale counters
    make_run(ledger, "A", owner="host:1")
    ledger.write_batch(
        "A",
        fills=[
            fill("a1", "o1", 100.0, T0),
            fill("a2", "o2", 110.0, T0 + timedelta(minutes=1), side="sell"),
        ],
        run_update={"last_heartbeat_at": old},
    )
    # B: an equity curve: total_pnl is the last equity point - starting cash
    make_run(ledger, "B", owner="host:1")
    ledger.write_batch(
        "B",
        fills=[fill("b1", "o1", 100.0, T0)],
        equity=[
            {"ts": T0, "equity": 100_000.0},
            {"ts": T0 + timedelta(minutes=2), "equity": 100_250.0},
            {"ts": T0 + timedelta(minutes=1), "equity": 99_000.0},
        ],
        run_update={"last_heartbeat_at": old},
    )
    # C: fresh heartbeat. D: stale, but ours. E: stale, already stopped. F: no fills.
    make_run(ledger, "C", owner="host:1")
    make_run(ledger, "D", owner="me:2", last_heartbeat_at=old)
    make_run(ledger, "E", owner="host:1", last_heartbeat_at=old)
    ledger.finalize_paper_run("E", status="stopped", total_pnl=7.0, last_heartbeat_at=old)
    make_run(ledger, "F", owner=None, started_at=old, last_heartbeat_at=None)

    crashed = ledger.mark_crashed(older_than_seconds=60, exclude_owner="me:2")
    assert sorted(crashed) == ["A", "B", "F"]

    a = ledger.get_run("A")
    assert a["status"] == "crashed" and a["stop_reason"] == "crashed: process gone"
    assert a["ended_at"] is not None and a["ended_at"] > old
    assert a["num_fills"] == 2
    assert a["total_pnl"] == pytest.approx(98.0)
    assert a["realized_pnl"] == pytest.approx(98.0)
    b = ledger.get_run("B")
    assert b["total_pnl"] == pytest.approx(250.0) and b["final_equity"] == 100_250.0
    assert b["num_fills"] == 1
    f = ledger.get_run("F")
    assert f["total_pnl"] == 0.0 and f["num_fills"] == 0
    assert ledger.get_run("C")["status"] == "running"
    assert ledger.get_run("D")["status"] == "running"
    assert ledger.get_run("E")["total_pnl"] == 7.0 and ledger.get_run("E")["status"] == "stopped"
    assert ledger.mark_crashed(older_than_seconds=60) == ["D"]  # nobody excluded now


def test_mark_crashed_values_open_positions_at_last_fill(ledger):
    make_run(ledger, "A", last_heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
    ledger.write_batch(
        "A",
        fills=[
            fill("a1", "o1", 100.0, T0, commission=0.0),
            fill("a2", "o2", 106.0, T0 + timedelta(minutes=1), commission=0.0),
            fill("a3", "o3", 101.0, T0 + timedelta(minutes=2), commission=0.0, side="sell"),
        ],
        run_update={"last_heartbeat_at": datetime.now(UTC) - timedelta(hours=1)},
    )
    assert ledger.mark_crashed(30) == ["A"]
    run = ledger.get_run("A")
    # avg cost 103 for 20; sell 10 @ 101 realizes -20; 10 left marked at 101: -20
    assert run["realized_pnl"] == pytest.approx(-20.0)
    assert run["total_pnl"] == pytest.approx(-40.0)


# ----------------------------------------------------------------------------- kill switch


def test_kill_switch_round_trip(ledger):
    state = ledger.kill_switch_state()
    assert state["engaged"] is False and state["engaged_at"] is None

    engaged = ledger.set_kill_switch(
        True, "halt", "drawdown", ttl_seconds=300.0, scope={"bots": ["sma-bot"]}, actor="alice"
    )
    assert engaged["engaged"] is True and engaged["mode"] == "halt"
    assert engaged["reason"] == "drawdown" and engaged["ttl_seconds"] == 300.0
    assert engaged["scope"] == {"bots": ["sma-bot"]}
    assert engaged["engaged_at"].tzinfo == UTC
    assert engaged["expires_at"] == engaged["engaged_at"] + timedelta(seconds=300)
    assert engaged["expired"] is False
    assert ledger.kill_switch_state() == engaged

    again = ledger.set_kill_switch(True, "flatten", "still bad")
    assert again["engaged_at"] == engaged["engaged_at"]  # latched since the first engagement
    assert again["mode"] == "flatten" and again["ttl_seconds"] is None

    released = ledger.set_kill_switch(False, "halt", "all clear", actor="bob")
    assert released["engaged"] is False and released["engaged_at"] is None
    assert ledger.kill_switch_state()["reason"] == "all clear"
    assert count(ledger, s.kill_switch) == 1

    audit = ledger.audit_rows()
    assert audit["action"].tolist() == ["kill_switch.engage", "kill_switch.reset"]
    assert audit["actor"].tolist() == ["alice", "bob"]
    assert audit["detail"].iloc[0]["reason"] == "drawdown"
    with pytest.raises(LedgerError, match="ttl_seconds"):
        ledger.set_kill_switch(True, "halt", "x", ttl_seconds=-1)


def test_audit(ledger):
    ledger.audit("api", "gate.override", {"bot_id": "b", "reason": "demo", "sharpe": 0.25})
    ledger.audit("cli", "session.start", {})
    rows = ledger.audit_rows("gate.override")
    assert len(rows) == 1 and rows["detail"].iloc[0]["sharpe"] == 0.25
    assert str(rows["at"].dtype).endswith("UTC]")
    assert len(ledger.audit_rows()) == 2
    with pytest.raises(LedgerError):
        ledger.audit("api", "bad", {"x": object()})
    assert len(ledger.audit_rows()) == 2


# ----------------------------------------------------------------------------- sql


def test_sql_binds_parameters(ledger):
    make_run(ledger, "pr-1")
    hostile = "pr-1' OR '1'='1"
    assert ledger.sql("SELECT id FROM paper_trading_runs WHERE id = :rid", rid=hostile).empty
    df = ledger.sql("SELECT id, started_at FROM paper_trading_runs WHERE id = :rid", rid="pr-1")
    assert df["id"].tolist() == ["pr-1"]
    assert str(df["started_at"].dtype).endswith("UTC]")
    with pytest.raises(LedgerError, match="no rows"):
        ledger.sql("UPDATE paper_trading_runs SET status = 'x'")


def test_empty_frames_have_dtypes(ledger):
    fills = ledger.fills("nothing")
    assert fills.empty and list(fills.columns)[:3] == ["id", "paper_run_id", "order_id"]
    assert str(fills["filled_at"].dtype).endswith("UTC]")
    assert fills["price"].dtype == "float64"
    assert ledger.frames_after("nothing", 0) == []


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_writers(ledger):
    ledger.ensure_schema()
    n_threads, n_batches = 4, 20
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def worker(k: int) -> None:
        run_id = f"pr-{k}"
        try:
            make_run(ledger, run_id)
            start.wait()
            for i in range(1, n_batches + 1):
                at = T0 + timedelta(minutes=i)
                ledger.write_batch(
                    run_id,
                    orders=[
                        order(f"{run_id}-o{i}", status="filled", filled_qty=10.0),
                        order(f"{run_id}-o{i - 1 or 1}", status="filled", tag=f"b{i}"),
                    ],
                    fills=[fill(f"{run_id}-f{i}", f"{run_id}-o{i}", 100.0 + i, at)],
                    equity=[{"ts": at, "equity": 100_000.0 + i, "cash": 1.0}],
                    frames=[{"seq": i, "stage": "order.filled", "task_id": run_id}],
                    run_update={"num_fills": i, "bars_seen": i},
                )
            ledger.finalize_paper_run(run_id, status="completed")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for k in range(n_threads):
        run_id = f"pr-{k}"
        run = ledger.get_run(run_id)
        assert (run["status"], run["num_fills"], run["bars_seen"]) == (
            "completed",
            n_batches,
            n_batches,
        )
        fills = ledger.fills(run_id)
        assert len(fills) == n_batches and fills["order_id"].str.startswith(run_id).all()
        assert len(ledger.orders(run_id)) == n_batches
        assert ledger.frames(run_id)["seq"].tolist() == list(range(1, n_batches + 1))
        assert ledger.equity(run_id)["equity"].iloc[-1] == 100_000.0 + n_batches
    assert count(ledger, s.paper_fills) == n_threads * n_batches


def test_sqlite_pragmas(tmp_path):
    with Ledger(url=f"sqlite:///{tmp_path / 'sub' / 'dir' / 'l.db'}") as led:
        with led.engine().connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "sub" / "dir" / "l.db").exists()


def test_in_memory_sqlite():
    with Ledger(url="sqlite://") as led:
        assert led.register_bot("x", {}, "h") == ("x", 1, True)
        assert led.get_bot("x")["latest_version"] == 1
