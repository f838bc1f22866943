"""The Ledger facade: repository methods with their own signatures, no DB behind attributes."""

from __future__ import annotations

import inspect

from alphaswarm.ledger import Ledger
from alphaswarm.ledger.run_closing import position_pnl
from alphaswarm.model import Position, Side


def test_engine_is_a_method_and_reading_the_attribute_opens_nothing(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = Ledger(url=f"sqlite:///{path}")
    bound = ledger.engine  # an attribute read: no engine, no file, no migration
    assert callable(bound)
    assert not path.exists()
    with ledger.engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM paper_trading_runs").scalar() == 0
    assert path.exists()
    ledger.close()


def test_facade_methods_keep_names_signatures_and_docs():
    expected = {
        "register_bot": ["name", "spec", "spec_hash"],
        "write_batch": [
            "run_id", "orders", "fills", "equity", "frames", "risk_events", "run_update",
        ],
        "create_paper_run": ["row", "check_kill_switch"],
        "set_kill_switch": [
            "engaged", "mode", "reason", "ttl_seconds", "scope", "actor", "action", "detail",
        ],
        "frames": ["run_id", "since_seq"],
        "sql": ["query", "params"],
    }  # fmt: skip
    ledger = Ledger(url="sqlite:///:memory:")
    for name, params in expected.items():
        method = getattr(ledger, name)
        assert list(inspect.signature(method).parameters) == params, name
        assert method.__doc__ and method.__doc__.strip(), name
        assert getattr(Ledger, name).__qualname__ == f"Ledger.{name}"
    ledger.close()


def test_the_ledger_recount_is_the_brokers_position_accounting():
    fills = [
        {"symbol": "A", "side": "buy", "qty": 10, "price": 100.0, "commission": 1.0},
        {"symbol": "A", "side": "sell", "qty": 15, "price": 110.0, "commission": 1.5},
        {"symbol": "A", "side": "buy", "qty": 2, "price": 105.0, "commission": None},
        {"symbol": "B", "side": "sell", "qty": 3, "price": 50.0, "commission": 0.5},
    ]
    realized, unrealized, commission = position_pnl(fills)
    books = {s: Position(s) for s in ("A", "B")}
    expected_realized = 0.0
    for f in fills:
        expected_realized += books[f["symbol"]].apply_fill(Side(f["side"]), f["qty"], f["price"])
        books[f["symbol"]].last_price = f["price"]
    assert realized == expected_realized == 10 * 10.0 + 2 * 5.0
    # A: short 3 at 110 marked at 105; B: short 3 at its own price
    assert unrealized == sum(p.unrealized_pnl for p in books.values()) == 3 * 5.0
    assert commission == 3.0
