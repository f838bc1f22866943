"""Kill switch latency: engage -> every running session's final row committed.

For each N, start N paper sessions of the SMA bot at speed 60 (a minute bar a
second) on seeded synthetic bars, all writing to one temporary SQLite ledger
(also the kill switch's state store), let them trade, then call
``alphaswarm.kill_switch().engage(...)`` from the main thread. Measured from
just before ``engage`` to the commit of the last session's final row (its
``status`` ``killed``, ``stop_reason`` and ``ended_at``, its open orders
cancelled), as ``engage`` reports it (``final_rows_committed_ms``); then to the
commit of the sessions' closing rows (counters, state, last bars and frames:
``closing_rows_committed_ms``), to when ``engage`` returns (the sessions have
then published their last frames too) and to when a ledger query after that
sees every one of the N runs ``killed``. Between repetitions the switch is
reset and fresh sessions start.

    python bench/killswitch_latency.py             # N = 1, 10, 20, 50, 200; 20 reps
    python bench/killswitch_latency.py --quick     # N = 1, 5; 3 reps
    python bench/killswitch_latency.py --tuning off   # untuned only (default: both)

Each N is measured with the interpreter tuning off, then on (``--tuning both``, the
default; :mod:`alphaswarm.paper.tuning` enabled in this process), and the p50/p99
of both are printed side by side.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    SEED,
    add_tuning_arguments,
    load,
    machine_line,
    parser,
    peak_rss_mib,
    percentile,
    side_by_side,
    table,
    tuning_modes,
    write_results,
)

NAME = "killswitch_latency"
FULL_NS = (1, 10, 20, 50, 200)
QUICK_NS = (1, 5)
FEED_BARS = 2_000  # far more than a repetition consumes at speed 60


def killed_count(ledger: Any, run_ids: list[str]) -> int:
    from sqlalchemy import func, select

    from alphaswarm.ledger.schema import paper_trading_runs as runs

    with ledger.engine().connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(runs)
            .where(runs.c.id.in_(run_ids), runs.c.status == "killed")
        ).scalar_one()


def one_rep(aw: Any, bot: Any, feed: Any, ledger: Any, n: int, settle: float) -> dict[str, Any]:
    ks = aw.kill_switch()
    sessions = [
        aw.PaperSession(
            bot,
            speed=60,
            duration_minutes=None,
            feed=feed,
            ledger=ledger,
            force=True,
            reason="benchmark: gate not under test",
        )
        for _ in range(n)
    ]
    t_start = time.perf_counter()
    for s in sessions:
        s.start()
    deadline = time.monotonic() + 60 + n * 0.5
    while time.monotonic() < deadline and not all(
        s.status == "running" and s.bars_seen >= 1 for s in sessions
    ):
        time.sleep(0.01)
    start_s = time.perf_counter() - t_start
    running = sum(s.status == "running" for s in sessions)
    time.sleep(settle)
    run_ids = [s.paper_run_id for s in sessions]
    load_before = load()
    t0 = time.perf_counter()
    result = ks.engage("benchmark: kill switch latency", mode="cancel", actor="bench")
    t_ret = time.perf_counter()
    killed = killed_count(ledger, run_ids)
    while killed < n and time.perf_counter() - t0 < 30:
        time.sleep(0.001)
        killed = killed_count(ledger, run_ids)
    t_done = time.perf_counter()
    ks.reset(actor="bench")
    for s in sessions:
        s.wait(10)
    return {
        "engage_ms": (t_ret - t0) * 1e3,
        "final_rows_ms": result["final_rows_committed_ms"],
        "closing_rows_ms": result["closing_rows_committed_ms"],
        "committed_ms": (t_done - t0) * 1e3,
        "switch_elapsed_ms": result["elapsed_ms"],
        "halted": sum(t["halted"] for t in result["targets"].values()),
        "killed_in_ledger": killed,
        "running_at_engage": running,
        "start_s": start_s,
        "failures": result["failures"],
        "load_before": load_before,
    }


def measure(
    aw: Any, bot: Any, feed: Any, ledger: Any, ns: list[int], reps: int, settle: float, label: str
) -> list[dict[str, Any]]:
    """Every N, ``reps`` times: one row per N."""
    rows: list[dict[str, Any]] = []
    for n in ns:
        samples = []
        for rep in range(reps):
            s = one_rep(aw, bot, feed, ledger, n, settle)
            samples.append(s)
            print(
                f"  [{label}] N={n:<4d} rep {rep + 1:2d}/{reps}: final rows committed "
                f"{s['final_rows_ms']:7.1f} ms, closing rows {s['closing_rows_ms']:7.1f} ms, "
                f"engage returned {s['engage_ms']:7.1f} ms, "
                f"all killed rows seen {s['committed_ms']:7.1f} ms "
                f"({s['killed_in_ledger']}/{n} killed, {s['running_at_engage']} running; "
                f"load {s['load_before']})",
                flush=True,
            )
        final = [s["final_rows_ms"] for s in samples]
        seen = [s["committed_ms"] for s in samples]
        engage = [s["engage_ms"] for s in samples]
        closing = [s["closing_rows_ms"] for s in samples]
        rows.append(
            {
                "sessions": n,
                "reps": reps,
                "median_ms": statistics.median(final),
                "p99_ms": percentile(final, 99),
                "worst_ms": max(final),
                "best_ms": min(final),
                "closing_median_ms": statistics.median(closing),
                "closing_p99_ms": percentile(closing, 99),
                "engage_median_ms": statistics.median(engage),
                "engage_p99_ms": percentile(engage, 99),
                "seen_median_ms": statistics.median(seen),
                "all_killed": all(s["killed_in_ledger"] == n for s in samples),
                "failures": sorted({f for s in samples for f in s["failures"]}),
                "samples": samples,
            }
        )
    return rows


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sessions", default=None, help="comma-separated N (default 1,10,20,50,200)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per N (default 20)")
    p.add_argument(
        "--settle", type=float, default=None, help="seconds of trading before engaging (0.5)"
    )
    add_tuning_arguments(p, "alphaswarm.paper.tuning in this process")
    args = p.parse_args()
    ns = (
        [int(x) for x in args.sessions.split(",")]
        if args.sessions
        else list(QUICK_NS if args.quick else FULL_NS)
    )
    reps = args.reps or (3 if args.quick else 20)
    settle = args.settle if args.settle is not None else (0.2 if args.quick else 0.5)
    modes = tuning_modes(args)
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)

    import alphaswarm as aw
    from alphaswarm.data import ReplayFeed, SyntheticFeed
    from alphaswarm.paper import tuning
    from alphaswarm.paper.registry import registry

    shown = ", then ".join("tuning on" if t else "tuning off" for t in modes)
    print(f"{NAME}: N sessions at speed 60, one SQLite ledger, {reps} reps per N; {shown}")
    print(machine_line())
    feed = ReplayFeed(
        SyntheticFeed(["DEMO"], seed=SEED, bars=FEED_BARS).frame(),
        interval="1m",
        calendar="equities",
    )
    bot = aw.Bot(
        name="bench-killswitch",
        strategy="sma_cross",
        params={"fast": 5, "slow": 20, "qty": 100},
        universe=["DEMO"],
        risk={"kill_switch_attached": True},
    )
    rows_by_mode: dict[bool, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-killswitch-") as tmp:
        ledger = aw.Ledger(url=f"sqlite:///{Path(tmp) / 'ledger.db'}")
        ledger.ensure_schema()
        aw.set_ledger(ledger)
        registry()  # registers the kill switch's `paper` target
        aw.kill_switch().reset(actor="bench")
        for tuned in modes:
            if tuned:
                tuning.enable()
            try:
                label = "tuning on" if tuned else "tuning off"
                rows_by_mode[tuned] = measure(aw, bot, feed, ledger, ns, reps, settle, label)
            finally:
                if tuned:
                    tuning.disable()
        ledger.close()
        aw.set_ledger(None)
    columns = [
        ("sessions", "sessions"),
        ("reps", "reps"),
        ("median_ms", "median ms"),
        ("p99_ms", "p99 ms"),
        ("worst_ms", "worst ms"),
        ("best_ms", "best ms"),
        ("closing_median_ms", "closing rows, median ms"),
        ("closing_p99_ms", "closing rows, p99 ms"),
        ("engage_median_ms", "engage() returns, median ms"),
        ("engage_p99_ms", "engage() returns, p99 ms"),
        ("seen_median_ms", "rows seen after return, median ms"),
        ("all_killed", "all rows killed"),
    ]
    for tuned, rows in rows_by_mode.items():
        print(
            table(
                rows,
                columns,
                "Kill switch: engage -> all N final rows committed (status killed), "
                f"tuning {'on' if tuned else 'off'}",
            )
        )
    print(
        side_by_side(
            rows_by_mode,
            [
                ("median_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("engage_p99_ms", "engage() returns p99 ms"),
            ],
            "Kill switch, final rows committed: interpreter tuning off and on side by side",
        )
    )
    print(
        "final rows committed = engage's `final_rows_committed_ms` (the commit of the "
        "sessions' final run rows: status, reason, end time, open orders cancelled); closing "
        "rows = `closing_rows_committed_ms` (their counters, state, last bars and frames); "
        "engage() returns after the sessions have also published their last frames; 'seen' "
        "adds a ledger query after that. Tuning on = alphaswarm.paper.tuning.enable() in this "
        "process (switch interval, heap freezer, collector held off during a halt)."
    )
    print(f"\npeak RSS {peak_rss_mib():.0f} MiB")
    write_results(
        args.results_dir,
        NAME,
        {
            "settle_s": settle,
            "tuning": ["on" if t else "off" for t in modes],
            "rows": rows_by_mode.get(False, []),
            "rows_tuned": rows_by_mode.get(True, []),
            "peak_rss_mib": peak_rss_mib(),
        },
        started,
        args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
