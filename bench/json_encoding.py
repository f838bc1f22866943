"""JSON encoding: the standard library against orjson on the kit's own payloads, side by side.

Payloads: one fill frame (the WebSocket's most common message), a ``GET /paper/{id}/fills``
body of 1,000 fills with timestamps, and a kill-switch engage answer. Rows: the encoder the
server used before issue 20 (``jsonable`` walk + ``json.dumps``), :mod:`alphaswarm.jsoncodec`
on the standard library, and :mod:`alphaswarm.jsoncodec` on orjson (skipped with a note
when orjson is absent). Best of 5 timed loops; encodes per second and microseconds each.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import load, machine_line, parser, table, write_results

from alphaswarm import jsoncodec

NAME = "json_encoding"


def _frame(i: int) -> dict[str, Any]:
    return {
        "task_id": "run-0123456789abcdef",
        "stage": "fill",
        "message": f"BUY 100 DEMO @ {100 + i * 0.01:.2f}",
        "timestamp": "2026-12-07T00:00:00.000Z",
        "ts": 1_796_000_000.0 + i,
        "seq": i,
        "order_id": f"o-{i}",
        "symbol": "DEMO",
        "side": "buy",
        "qty": 100.0,
        "price": 100 + i * 0.01,
        "commission": 0.0,
        "equity": 100_000.0 + i,
        "positions": {"DEMO": 100.0},
    }


def _fills(n: int) -> dict[str, Any]:
    t0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    rows = [
        {
            "id": f"f-{i}",
            "order_id": f"o-{i}",
            "symbol": "DEMO",
            "side": "buy" if i % 2 else "sell",
            "qty": 100.0,
            "price": 100 + i * 0.01,
            "commission": 0.0,
            "slippage": float("nan") if i % 97 == 0 else 0.01,
            "filled_at": t0 + timedelta(minutes=i),
        }
        for i in range(n)
    ]
    return {"paper_run_id": "run-0123456789abcdef", "fills": rows}


def _engaged() -> dict[str, Any]:
    targets = {f"bot:b{i}": {"halted": 3, "failures": []} for i in range(20)}
    return {
        "engaged": True,
        "mode": "cancel",
        "reason": "kill switch engaged via api",
        "targets": targets,
        "failures": [],
        "elapsed_ms": 4.2,
        "final_rows_committed_ms": 3.9,
        "state": {"engaged": True, "engaged_at": datetime.now(UTC), "halted_bots": []},
    }


def _old_jsonable(value: Any) -> Any:
    """The server's walk before issue 20 (kept here as the baseline)."""
    if isinstance(value, dict):
        return {str(k): _old_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_old_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _time(fn: Any, payload: Any, loops: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn(payload)
        best = min(best, (time.perf_counter() - t0) / loops)
    return best


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n_fills = 100 if args.quick else 1000
    payloads = {
        "fill frame": (_frame(7), 200 if args.quick else 20_000),
        f"fills x{n_fills}": (_fills(n_fills), 5 if args.quick else 200),
        "kill-switch answer": (_engaged(), 50 if args.quick else 5_000),
    }
    encoders: dict[str, Any] = {
        "jsonable + json.dumps (before)": lambda v: json.dumps(_old_jsonable(v), allow_nan=False),
        "jsoncodec, standard library": lambda v: jsoncodec._stdlib(jsoncodec._LENIENT, v),
    }
    if jsoncodec.orjson is not None:
        encoders["jsoncodec, orjson"] = jsoncodec.dumps_lenient
    else:
        print("orjson is not installed: its row is skipped")
    rows = []
    for label, (payload, loops) in payloads.items():
        row: dict[str, Any] = {"payload": label}
        for name, fn in encoders.items():
            row[name] = _time(fn, payload, loops) * 1e6
        rows.append(row)
    columns = [("payload", "payload"), *((n, f"{n} µs") for n in encoders)]
    print(machine_line())
    print(table(rows, columns, "JSON encoding, microseconds per payload (best of 5 loops)"))
    print(f"library backend: {jsoncodec.BACKEND}; load average after: {load()}")
    write_results(args.results_dir, NAME, {"rows": rows}, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
