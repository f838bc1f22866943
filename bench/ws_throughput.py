"""WebSocket throughput: frames/s one client receives from a speed-0 paper session.

A real server (``alphaswarm serve --port N --db sqlite:///tmp/...``) in its own
process; over HTTP the bot (the demo bot's spec) is created, backtested (so the
gate passes) and a session started with ``{"speed": 0, "max_bars": B}``. The
client connects to ``WS /ws/paper/{id}?since=0`` right after the 201 (so it gets
every frame: what the ledger already holds, then live) and reads until the
``done`` frame. It checks the sequence numbers (gaps, duplicates) and counts
``subscriber.lagged`` drops.

* **client frames/s**: frames received / (``done`` received - POST sent).
* **session frames/s**: the run's frames in the ledger / (``ended_at`` -
  ``started_at`` of its row): what the session itself produces.

Each repetition also runs the same session with no client attached, for the
session's own rate undisturbed.

    python bench/ws_throughput.py             # 20,000 bars, 3 repetitions
    python bench/ws_throughput.py --quick     # 1,000 bars, once
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import load, machine_line, parser, table, write_results
from _server import Api, alphaswarm_serve, bench_bot

NAME = "ws_throughput"


async def receive_all(url: str) -> list[tuple[float, str]]:
    """Every message of one socket with its receipt time, until the server closes it."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    got: list[tuple[float, str]] = []
    async with connect(url, max_size=None, compression=None) as ws:
        try:
            while True:
                got.append((time.perf_counter(), await ws.recv()))
        except ConnectionClosed:
            pass
    return got


def seconds_between(run: dict[str, Any]) -> float:
    start = datetime.fromisoformat(str(run["started_at"]))
    end = datetime.fromisoformat(str(run["ended_at"]))
    return (end - start).total_seconds()


def wait_final(api: Api, run_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/paper/{run_id}")
        if run.get("ended_at"):
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} did not finish")


def one_run(
    api: Api, conn: sqlite3.Connection, bot_id: str, bars: int, client: bool
) -> dict[str, Any]:
    import json

    load_before = load()
    body = {"starting_cash": 100_000, "speed": 0, "max_bars": bars}
    t0 = time.perf_counter()
    run_id = api.post(f"/bots/{bot_id}/paper", body)["paper_run_id"]
    got: list[tuple[float, str]] = []
    if client:
        got = asyncio.run(receive_all(f"{api.ws_url}/ws/paper/{run_id}?since=0"))
    t_end = time.perf_counter()
    run = wait_final(api, run_id)
    in_ledger = conn.execute(
        "SELECT (SELECT COUNT(*) FROM paper_frames WHERE paper_run_id = ?) + "
        "(SELECT COALESCE(SUM(frames), 0) FROM paper_frame_blocks WHERE paper_run_id = ?)",
        (run_id, run_id),
    ).fetchone()[0]
    session_s = seconds_between(run)
    row: dict[str, Any] = {
        "client": "1 WebSocket" if client else "none",
        "bars": run.get("bars_seen"),
        "status": run.get("status"),
        "session_s": session_s,
        "session_frames_per_s": in_ledger / session_s,
        "session_bars_per_s": (run.get("bars_seen") or 0) / session_s,
        "frames_in_ledger": in_ledger,
        "load_before": load_before,
    }
    if client:
        frames = [json.loads(m) for _, m in got]
        seqs = [f["seq"] for f in frames if isinstance(f.get("seq"), int)]
        dropped = sum(f.get("dropped", 0) for f in frames if f.get("stage") == "subscriber.lagged")
        expected = set(range(1, max(seqs) + 1)) if seqs else set()
        wall = (got[-1][0] - t0) if got else float("nan")
        row.update(
            {
                "received": len(seqs),
                "client_s": wall,
                "client_frames_per_s": len(seqs) / wall if got else None,
                "gaps": len(expected - set(seqs)),
                "duplicates": len(seqs) - len(set(seqs)),
                "dropped": dropped,
                "got_done": any(f.get("stage") == "done" for f in frames),
                "ratio": (len(seqs) / wall) / (in_ledger / session_s) if got else None,
                "socket_open_s": t_end - t0,
            }
        )
    return row


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--bars", type=int, default=None, help="bars per session (default 20,000)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions (default 3)")
    args = p.parse_args()
    bars = args.bars or (1_000 if args.quick else 20_000)
    repeat = args.repeat or (1 if args.quick else 3)
    started = time.perf_counter()
    print(f"{NAME}: speed-0 session of {bars:,} bars over HTTP, one WebSocket client (?since=0)")
    print(machine_line())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        db = Path(tmp) / "ledger.db"
        with alphaswarm_serve(db, Path(tmp)) as (url, _proc):
            api = Api(url)
            bot_id = bench_bot(api)
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
            for rep in range(repeat):
                for client in (True, False):
                    row = one_run(api, conn, bot_id, bars, client)
                    row["rep"] = rep + 1
                    rows.append(row)
                    print(
                        f"  rep {rep + 1}, client {row['client']:<11}: session "
                        f"{row['session_frames_per_s']:,.0f} frames/s"
                        + (
                            f", client {row['client_frames_per_s']:,.0f} frames/s, "
                            f"{row['gaps']} gaps, {row['dropped']} dropped"
                            if client
                            else ""
                        )
                        + f" (load {row['load_before']})",
                        flush=True,
                    )
            conn.close()
            api.close()
    columns = [
        ("rep", "rep"),
        ("client", "client"),
        ("bars", "bars"),
        ("session_s", "session s"),
        ("session_bars_per_s", "session bars/s"),
        ("frames_in_ledger", "frames"),
        ("session_frames_per_s", "session frames/s"),
        ("received", "received"),
        ("client_frames_per_s", "client frames/s"),
        ("ratio", "client ÷ session"),
        ("gaps", "gaps"),
        ("duplicates", "dups"),
        ("dropped", "dropped"),
    ]
    print(table(rows, columns, "WebSocket throughput: speed-0 session -> one client"))
    write_results(args.results_dir, NAME, {"bars": bars, "rows": rows}, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
