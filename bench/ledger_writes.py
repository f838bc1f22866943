"""Ledger writes: fills per second through ``Ledger.write_batch``, SQLite and PostgreSQL.

Each batch is one ``write_batch`` call (one transaction): B fills, each with the
snapshot of its filled order (upserted, as a paper session writes them), plus
the run-row update every batch carries. Rows are built before the clock starts.
SQLite is a temporary file (WAL, synchronous=NORMAL as the ledger sets it);
PostgreSQL is ``$ALPHASWARM_PG_URL`` when set (a throwaway run is written there
and deleted afterwards), otherwise its rows are skipped with a note.

    python bench/ledger_writes.py            # B = 1, 10, 100, 1000
    python bench/ledger_writes.py --quick    # B = 1, 100, few fills
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import load, machine_line, parser, table, write_results

NAME = "ledger_writes"
# batch size -> fills written at that size
FULL_PLAN = {1: 2_000, 10: 10_000, 100: 50_000, 1_000: 100_000}
QUICK_PLAN = {1: 50, 100: 500}


def make_rows(run_id: str, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` fills and their filled orders, shaped like a session's batch rows."""
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    fills, orders = [], []
    for i in range(n):
        ts = t0 + timedelta(minutes=i)
        side = "buy" if i % 2 == 0 else "sell"
        order_id = f"{run_id}-o{i}"
        price = 100.0 + (i % 97) * 0.01
        orders.append(
            {
                "order_id": order_id,
                "symbol": "DEMO",
                "side": side,
                "type": "market",
                "qty": 100.0,
                "time_in_force": "day",
                "status": "filled",
                "filled_qty": 100.0,
                "avg_fill_price": price,
                "created_at": ts,
                "updated_at": ts,
            }
        )
        fills.append(
            {
                "fill_id": f"{run_id}-f{i}",
                "order_id": order_id,
                "symbol": "DEMO",
                "side": side,
                "qty": 100.0,
                "price": price,
                "commission": 0.0,
                "slippage": 0.0,
                "filled_at": ts,
            }
        )
    return fills, orders


def bench_backend(
    backend: str, url: str, plan: dict[int, int], cleanup: bool
) -> list[dict[str, Any]]:
    from alphaswarm import Ledger

    ledger = Ledger(url=url)
    ledger.ensure_schema()
    bot_id, version, _ = ledger.register_bot("bench-ledger", {"name": "bench-ledger"}, "bench")
    rows = []
    try:
        for batch, total in plan.items():
            run_id = f"bench-{uuid.uuid4().hex[:10]}"
            ledger.create_paper_run(
                {"id": run_id, "bot_id": bot_id, "bot_version": version, "starting_cash": 1e5}
            )
            fills, orders = make_rows(run_id, total)
            load_before = load()
            t0 = time.perf_counter()
            for i in range(0, total, batch):
                ledger.write_batch(
                    run_id,
                    fills=fills[i : i + batch],
                    orders=orders[i : i + batch],
                    run_update={"num_fills": min(i + batch, total)},
                )
            wall = time.perf_counter() - t0
            stored = int(
                ledger.sql(
                    "SELECT COUNT(*) AS n FROM paper_fills WHERE paper_run_id = :r", r=run_id
                )["n"].iloc[0]
            )
            row = {
                "backend": backend,
                "batch": batch,
                "fills": total,
                "batches": -(-total // batch),
                "wall_s": wall,
                "fills_per_s": total / wall,
                "ms_per_batch": wall * 1e3 / -(-total // batch),
                "stored": stored,
                "load_before": load_before,
            }
            rows.append(row)
            print(
                f"  {backend:10s} batch {batch:>5,}: {row['fills_per_s']:>10,.0f} fills/s "
                f"({row['ms_per_batch']:.2f} ms per batch; {stored:,} stored)",
                flush=True,
            )
            if cleanup:
                with ledger.engine().begin() as conn:
                    from sqlalchemy import delete

                    from alphaswarm.ledger.schema import paper_fills, paper_orders
                    from alphaswarm.ledger.schema import paper_trading_runs as runs

                    conn.execute(delete(paper_fills).where(paper_fills.c.paper_run_id == run_id))
                    conn.execute(delete(paper_orders).where(paper_orders.c.paper_run_id == run_id))
                    conn.execute(delete(runs).where(runs.c.id == run_id))
    finally:
        ledger.close()
    return rows


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    started = time.perf_counter()
    print(f"{NAME}: fills (+ their orders) per write_batch transaction")
    print(machine_line())
    rows: list[dict[str, Any]] = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        rows += bench_backend("sqlite", f"sqlite:///{Path(tmp) / 'ledger.db'}", plan, False)
    pg_url = os.environ.get("ALPHASWARM_PG_URL")
    if pg_url:
        try:
            rows += bench_backend("postgresql", pg_url, plan, True)
        except Exception as exc:  # noqa: BLE001 - report and keep the SQLite figures
            notes.append(f"postgresql: failed: {type(exc).__name__}: {exc}")
            rows.append({"backend": "postgresql", "note": notes[-1]})
    else:
        notes.append("postgresql: skipped, ALPHASWARM_PG_URL is not set")
        rows.append({"backend": "postgresql", "note": "skipped: set ALPHASWARM_PG_URL"})
    columns = [
        ("backend", "backend"),
        ("batch", "fills per batch"),
        ("fills", "fills"),
        ("fills_per_s", "fills/s"),
        ("ms_per_batch", "ms per batch"),
        ("wall_s", "wall s"),
        ("note", "note"),
    ]
    print(table(rows, columns, "Ledger: fills written per second (one transaction per batch)"))
    for note in notes:
        print(f"note: {note}")
    payload = {"plan": plan, "rows": rows, "notes": notes}
    write_results(args.results_dir, NAME, payload, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
