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
    python bench/killswitch_latency.py --quick     # N = 3; 2 reps

``--lock-held``: before each engagement another process takes the ledger's SQLite
write lock (``BEGIN IMMEDIATE``) and keeps it until the engagement has returned
(the ledger's busy timeout is its default, 30 s). Measured: engage -> every
session's status ``killed`` (a watcher on each session's ``status`` stamps the
moment it is set: engage-to-halted), engage -> ``engage()`` returns (with the
engagement pending), and, once the other process has released the lock, release
-> the kill-switch row written (``persisted``).

    python bench/killswitch_latency.py --lock-held --sessions 1,5 --reps 10


    python bench/killswitch_latency.py --tuning off   # untuned only (default: both)

Each N is measured with the interpreter tuning off, then on (``--tuning both``, the
default; :mod:`alphaswarm.paper.tuning` enabled in this process), and the p50/p99
of both are printed side by side.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    add_sessions_arguments,
    add_tuning_arguments,
    bench_bot,
    bench_sessions,
    load,
    machine_line,
    measure_rows,
    minute_replay,
    parser,
    peak_rss_mib,
    sessions_and_reps,
    table,
    tuned_payload,
    tuned_tables,
    tuning_modes,
    write_results,
)

NAME = "killswitch_latency"
FULL_NS = (1, 10, 20, 50, 200)
QUICK_NS = (3,)
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
    sessions = bench_sessions(aw, bot, feed, n, ledger=ledger)
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


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
"""


class LockHolder:
    """Another process holding the write lock of a SQLite file until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "held":
            raise RuntimeError("the lock holder did not take the lock")

    def release(self) -> float:
        """Let it roll back; the perf_counter when it said the lock is free."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()
        released = time.perf_counter()
        self.proc.wait(30)
        return released


def one_rep_locked(
    aw: Any, bot: Any, feed: Any, ledger: Any, path: Path, n: int, settle: float
) -> dict[str, Any]:
    """One engagement while another process holds the write lock of ``path``."""
    from alphaswarm.paper.final_writes import final_writes

    ks = aw.kill_switch()
    sessions = [s.start() for s in bench_sessions(aw, bot, feed, n, ledger=ledger)]
    deadline = time.monotonic() + 60 + n * 0.5
    while time.monotonic() < deadline and not all(s.bars_seen >= 1 for s in sessions):
        time.sleep(0.01)
    time.sleep(settle)
    halted_at: dict[str, float] = {}

    def stamp(session: Any) -> Any:
        def on_status(event: Any) -> None:
            if event.new == "killed":
                halted_at.setdefault(session.paper_run_id, time.perf_counter())

        return on_status

    for s in sessions:
        s.param.watch(stamp(s), "status")
    holder = LockHolder(path)
    load_before = load()
    t0 = time.perf_counter()
    result = ks.engage("benchmark: kill switch under a held lock", mode="cancel", actor="bench")
    t_ret = time.perf_counter()
    halted = len(halted_at)
    t_halted = max(halted_at.values()) if halted == n else float("nan")
    pending = not result["persisted"]
    released = holder.release()
    while not ks.persisted and time.perf_counter() - released < 60:
        time.sleep(0.001)
    t_persisted = time.perf_counter()
    final_writes().wait_idle(120)
    ks.reset(actor="bench")
    for s in sessions:
        s.wait(30)
    return {
        "halted_ms": (t_halted - t0) * 1e3,
        "engage_ms": (t_ret - t0) * 1e3,
        "persisted_after_release_ms": (t_persisted - released) * 1e3,
        "pending_at_return": pending,
        "halted": halted,
        "load_before": load_before,
    }


def main_lock_held(args: Any, ns: list[int], reps: int, settle: float, started: float) -> int:
    """The ``--lock-held`` mode: engage-to-halted while another process holds the lock."""
    import alphaswarm as aw
    from alphaswarm.paper.registry import registry

    name = f"{NAME}_lock_held"
    print(f"{name}: N sessions at speed 60, the SQLite write lock held by another process")
    print(machine_line())
    feed = minute_replay(FEED_BARS)
    bot = bench_bot(aw, "bench-killswitch")
    with tempfile.TemporaryDirectory(prefix="bench-killswitch-") as tmp:
        path = Path(tmp) / "ledger.db"
        ledger = aw.Ledger(url=f"sqlite:///{path}")
        ledger.ensure_schema()
        aw.set_ledger(ledger)
        registry()
        aw.kill_switch().reset(actor="bench")
        rows = measure_rows(
            ns,
            reps,
            lambda n: one_rep_locked(aw, bot, feed, ledger, path, n, settle),
            lambda n, s: (
                f"halted {s['halted_ms']:7.1f} ms ({s['halted']}/{n}), engage returned "
                f"{s['engage_ms']:7.1f} ms (pending {s['pending_at_return']}), row written "
                f"{s['persisted_after_release_ms']:7.1f} ms after the release "
                f"(load {s['load_before']})"
            ),
            LOCKED_STATS,
            lambda n, samples: {
                "all_halted": all(s["halted"] == n for s in samples),
                "all_pending": all(s["pending_at_return"] for s in samples),
                "load": load(),
            },
        )
        ledger.close()
        aw.set_ledger(None)
    columns = [
        ("sessions", "sessions"),
        ("reps", "reps"),
        ("halted_p50_ms", "engage->halted p50 ms"),
        ("halted_p99_ms", "engage->halted p99 ms"),
        ("engage_p50_ms", "engage() returns p50 ms"),
        ("engage_p99_ms", "engage() returns p99 ms"),
        ("persisted_p50_ms", "release->row written p50 ms"),
        ("persisted_p99_ms", "release->row written p99 ms"),
        ("all_halted", "all halted"),
        ("all_pending", "pending at return"),
    ]
    print(table(rows, columns, "Kill switch with the ledger locked by another process"))
    print(f"load average after: {load()}")
    write_results(
        args.results_dir,
        name,
        {"settle_s": settle, "rows": rows, "peak_rss_mib": peak_rss_mib()},
        started,
        args.quick,
    )
    return 0


#: The statistics of each N: sample key -> {statistic: row key}.
STATS = {
    "final_rows_ms": {"median": "median_ms", "p99": "p99_ms", "worst": "worst_ms",
                      "best": "best_ms"},
    "closing_rows_ms": {"median": "closing_median_ms", "p99": "closing_p99_ms"},
    "engage_ms": {"median": "engage_median_ms", "p99": "engage_p99_ms"},
    "committed_ms": {"median": "seen_median_ms"},
}  # fmt: skip
#: Those of ``--lock-held``.
LOCKED_STATS = {
    "halted_ms": {"median": "halted_p50_ms", "p99": "halted_p99_ms"},
    "engage_ms": {"median": "engage_p50_ms", "p99": "engage_p99_ms"},
    "persisted_after_release_ms": {"median": "persisted_p50_ms", "p99": "persisted_p99_ms"},
}


def measure(
    aw: Any, bot: Any, feed: Any, ledger: Any, ns: list[int], reps: int, settle: float, label: str
) -> list[dict[str, Any]]:
    """Every N, ``reps`` times: one row per N."""
    return measure_rows(
        ns,
        reps,
        lambda n: one_rep(aw, bot, feed, ledger, n, settle),
        lambda n, s: (
            f"final rows committed {s['final_rows_ms']:7.1f} ms, closing rows "
            f"{s['closing_rows_ms']:7.1f} ms, engage returned {s['engage_ms']:7.1f} ms, "
            f"all killed rows seen {s['committed_ms']:7.1f} ms "
            f"({s['killed_in_ledger']}/{n} killed, {s['running_at_engage']} running; "
            f"load {s['load_before']})"
        ),
        STATS,
        lambda n, samples: {
            "all_killed": all(s["killed_in_ledger"] == n for s in samples),
            "failures": sorted({f for s in samples for f in s["failures"]}),
        },
        label,
    )


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    add_sessions_arguments(p, FULL_NS)
    p.add_argument(
        "--settle", type=float, default=None, help="seconds of trading before engaging (0.5)"
    )
    add_tuning_arguments(p, "alphaswarm.paper.tuning in this process")
    p.add_argument(
        "--lock-held",
        action="store_true",
        help="another process holds the ledger's write lock while the switch is engaged",
    )
    args = p.parse_args()
    ns, reps = sessions_and_reps(args, FULL_NS, QUICK_NS)
    settle = args.settle if args.settle is not None else (0.2 if args.quick else 0.5)
    modes = tuning_modes(args)
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)
    if args.lock_held:
        logging.getLogger("alphaswarm").setLevel(logging.CRITICAL)  # expected refusals
        return main_lock_held(args, ns, reps, settle, started)

    import alphaswarm as aw
    from alphaswarm.paper import tuning
    from alphaswarm.paper.registry import registry

    shown = ", then ".join("tuning on" if t else "tuning off" for t in modes)
    print(f"{NAME}: N sessions at speed 60, one SQLite ledger, {reps} reps per N; {shown}")
    print(machine_line())
    feed = minute_replay(FEED_BARS)
    bot = bench_bot(aw, "bench-killswitch")
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
    title = "Kill switch: engage -> all N final rows committed (status killed)"
    compared = [
        ("median_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("engage_p99_ms", "engage() returns p99 ms"),
    ]
    side = "Kill switch, final rows committed: interpreter tuning off and on side by side"
    print(tuned_tables(rows_by_mode, columns, title, compared, side))
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
        {"settle_s": settle, **tuned_payload(modes, rows_by_mode), "peak_rss_mib": peak_rss_mib()},
        started,
        args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
