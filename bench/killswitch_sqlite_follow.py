"""Cross-process kill switch on SQLite: another process engages -> this one's sessions stop.

This process runs N paced paper sessions (the SMA bot at speed 60) on a
temporary SQLite ledger. A second Python process, started once, engages the kill
switch with plain ``aw.kill_switch().engage(...)`` on the same file (its default
ledger through ``$ALPHASWARM_DB_URL``: no server, no ``set_ledger``) and reports
the wall time just before the call and when it returned (the row committed).
This process follows the row through its ``PRAGMA data_version`` watcher; the
repetition ends when all N sessions have status ``killed``. Then the switch is
reset here and fresh sessions start.

* ``follow_ms``: all N sessions ``killed`` here minus the other process's commit
  (its ``engage()`` returned): the watcher's part.
* ``total_ms``: the same minus the moment the other process called ``engage()``.

Wall clocks of two processes on one machine (one clock).

    python bench/killswitch_sqlite_follow.py            # N = 1, 10, 50; 20 reps
    python bench/killswitch_sqlite_follow.py --quick    # N = 3; 2 reps
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    REPO_ROOT,
    add_sessions_arguments,
    bench_bot,
    bench_sessions,
    load,
    machine_line,
    measure_rows,
    minute_replay,
    parser,
    sessions_and_reps,
    table,
    write_results,
)

NAME = "killswitch_sqlite_follow"
FULL_NS = (1, 10, 50)
QUICK_NS = (3,)
#: The statistics of each N: sample key -> {statistic: row key}.
STATS = {
    "follow_ms": {"median": "follow_median_ms", "p99": "follow_p99_ms", "worst": "follow_worst_ms"},
    "total_ms": {"median": "total_median_ms", "worst": "total_worst_ms"},
}

ENGAGER = """
import json, sys, time
import alphaswarm as aw
ks = aw.kill_switch()
print(json.dumps({"ready": ks.state()["engaged"] is not None}), flush=True)
for line in sys.stdin:
    t0 = time.time()
    result = ks.engage("benchmark: engaged by another process", actor="bench")
    t1 = time.time()
    print(json.dumps({"before": t0, "after": t1, "persisted": result["persisted"]}), flush=True)
"""


def one_rep(aw: Any, bot: Any, feed: Any, engager: subprocess.Popen, n: int) -> dict[str, Any]:
    sessions = [s.start() for s in bench_sessions(aw, bot, feed, n)]
    deadline = time.monotonic() + 60 + n
    while time.monotonic() < deadline and not all(s.bars_seen >= 1 for s in sessions):
        time.sleep(0.01)
    time.sleep(0.3)
    load_before = load()
    engager.stdin.write("engage\n")
    engager.stdin.flush()
    reply = json.loads(engager.stdout.readline())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(s.status == "killed" for s in sessions):
        time.sleep(0.001)
    t_seen = time.time()
    killed = sum(s.status == "killed" for s in sessions)
    aw.kill_switch().reset(actor="bench")
    for s in sessions:
        s.wait(10)
    return {
        "follow_ms": (t_seen - reply["after"]) * 1e3,
        "total_ms": (t_seen - reply["before"]) * 1e3,
        "engage_ms": (reply["after"] - reply["before"]) * 1e3,
        "killed": killed,
        "persisted": reply["persisted"],
        "load_before": load_before,
    }


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    add_sessions_arguments(p, FULL_NS)
    args = p.parse_args()
    ns, reps = sessions_and_reps(args, FULL_NS, QUICK_NS)
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)

    import alphaswarm as aw

    print(f"{NAME}: N sessions at speed 60 here, engaged from another process, {reps} reps")
    print(machine_line())
    feed = minute_replay(2_000)
    bot = bench_bot(aw, "bench-follow")
    rows: list[dict[str, Any]] = []  # filled inside, printed after the ledger is closed
    with tempfile.TemporaryDirectory(prefix="bench-follow-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        ledger = aw.set_ledger(url)
        ledger.ensure_schema()
        aw.kill_switch().reset(actor="bench")
        env = dict(os.environ, ALPHASWARM_DB_URL=url)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        engager = subprocess.Popen(
            [sys.executable, "-c", ENGAGER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            engager.stdout.readline()  # its kill switch has read the row
            rows = measure_rows(
                ns,
                reps,
                lambda n: one_rep(aw, bot, feed, engager, n),
                lambda n, s: (
                    f"followed {s['follow_ms']:7.1f} ms after the commit, "
                    f"{s['total_ms']:7.1f} ms after engage() was called "
                    f"({s['killed']}/{n} killed; load {s['load_before']})"
                ),
                STATS,
                lambda n, samples: {"all_killed": all(s["killed"] == n for s in samples)},
            )
        finally:
            engager.stdin.close()
            engager.wait(30)
        aw.set_ledger(None)
        ledger.close()
    columns = [
        ("sessions", "sessions"),
        ("reps", "reps"),
        ("follow_median_ms", "after commit, median ms"),
        ("follow_p99_ms", "after commit, p99 ms"),
        ("follow_worst_ms", "after commit, worst ms"),
        ("total_median_ms", "after engage(), median ms"),
        ("total_worst_ms", "after engage(), worst ms"),
        ("all_killed", "all killed"),
    ]
    print(table(rows, columns, "Another process engages -> all N sessions here killed"))
    write_results(args.results_dir, NAME, {"rows": rows}, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
