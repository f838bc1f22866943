"""Cluster kill switch: engage commit -> last final row committed, 3 server processes.

Three real ``serve`` processes share one PostgreSQL ledger. Each repetition starts
N paper sessions per process over HTTP (the SMA bot, speed 1: running, idle
between bars), waits until every session has committed its first bar, engages
the kill switch with ``POST /kill-switch`` on one process (round robin), waits
until every run is ``killed`` and every process has acknowledged, then resets
and waits until all three are released.

Measured on the database clock, so no clock sync is involved:

* ``commit_ms``: commit time of the last final row (``pg_xact_commit_timestamp``
  of the run rows' ``xmin``) minus the commit time of the engagement (the
  ``kill_switch`` row's ``xmin``); needs ``track_commit_timestamp = on``, which the
  PostgreSQL this script starts has.
* ``ack_ms``: the last process's ack (``kill_switch_acks.done_at``, written after
  its final rows committed) minus ``kill_switch.engaged_at``; both
  ``clock_timestamp()`` and available on any PostgreSQL.
* ``api_ms``: the engaging process's own fan-out (``elapsed_ms`` of the response).

    python bench/killswitch_cluster.py            # N = 10, 100 per process; 20 reps
    python bench/killswitch_cluster.py --quick    # N = 5 per process; 2 reps
    python bench/killswitch_cluster.py --sessions 100 --reps 5

PostgreSQL: a temporary server from Debian's ``postgresql`` package (as the tests
do, via ``tests/pg.py``), or ``$ALPHASWARM_PG_URL`` (a database this script may
fill; ``commit_ms`` is then reported only if that server tracks commit times).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, load, machine_line, parser, percentile, table, write_results

sys.path.insert(0, str(REPO_ROOT))  # tests/pg.py and tests/cluster/helpers.py

from tests.cluster.helpers import (  # noqa: E402
    create_bot,
    sql,
    start_servers,
    start_session,
    wait_until,
)
from tests.pg import PostgresServer, create_database, find_pg_bin  # noqa: E402

NAME = "killswitch_cluster"
PROCESSES = 3
FULL_NS, FULL_REPS = (10, 100), 20
QUICK_NS, QUICK_REPS = (5,), 2


def start_postgres() -> tuple[PostgresServer | None, str]:
    """A PostgreSQL server URL with commit timestamps on (ours), or $ALPHASWARM_PG_URL."""
    env = os.environ.get("ALPHASWARM_PG_URL", "").strip()
    if env:
        return None, env
    bindir = find_pg_bin()
    if bindir is None:
        sys.exit(
            "PostgreSQL binaries not found (apt-get install postgresql) and no ALPHASWARM_PG_URL"
        )
    server = PostgresServer(bindir)
    server.start()
    admin = server.url("postgres")
    sql(admin, "ALTER SYSTEM SET track_commit_timestamp = on")
    proc = server._run(bindir / "pg_ctl", "-D", server.data, "-l", server.log, "-w", "restart")
    server._check(proc, "pg_ctl restart")
    return server, admin


def one_rep(servers: list, db_url: str, bot_id: str, n: int, engager: int) -> dict[str, Any]:
    """Start n sessions per process, engage on ``servers[engager]``, measure, reset."""
    with ThreadPoolExecutor(12) as pool:
        responses = list(
            pool.map(
                lambda s: start_session(s, bot_id, speed=1),
                [s for s in servers for _ in range(n)],
            )
        )
    bad = [r.text for r in responses if r.status_code != 201]
    if bad:
        raise RuntimeError(f"{len(bad)} starts failed: {bad[0]}")
    run_ids = [r.json()["paper_run_id"] for r in responses]

    def all_trading() -> bool:  # every session has committed its first bar
        return sql(
            db_url,
            "SELECT count(*) FROM paper_trading_runs WHERE id = ANY(:ids) AND bars_seen >= 1",
            ids=run_ids,
        )[0][0] == len(run_ids)

    wait_until(all_trading, 60, 0.05)
    time.sleep(0.2)  # let the sessions reach their idle wait
    r = servers[engager].post("/kill-switch", {"reason": "bench"})
    r.raise_for_status()
    body = r.json()
    epoch = body["cluster"]["epoch"]
    commit = sql(db_url, "SELECT pg_xact_commit_timestamp(xmin), engaged_at FROM kill_switch")
    engage_commit, engaged_at = commit[0]
    ids = {"ids": run_ids}

    def finished() -> bool:
        left = sql(
            db_url,
            "SELECT count(*) FROM paper_trading_runs WHERE id = ANY(:ids) AND status <> 'killed'",
            **ids,
        )[0][0]
        acks = sql(db_url, "SELECT count(*) FROM kill_switch_acks WHERE epoch = :e", e=epoch)[0][0]
        return left == 0 and acks >= len(servers)

    wait_until(finished, 30, 0.01)
    last_commit = sql(
        db_url,
        "SELECT max(pg_xact_commit_timestamp(xmin)) FROM paper_trading_runs WHERE id = ANY(:ids)",
        **ids,
    )[0][0]
    acks = sql(
        db_url,
        "SELECT process, sessions, done_at FROM kill_switch_acks WHERE epoch = :e",
        e=epoch,
    )
    row = {
        "n": n,
        "epoch": epoch,
        "engager": engager,
        "ack_ms": max((a[2] - engaged_at).total_seconds() * 1e3 for a in acks),
        "api_ms": body["elapsed_ms"],
        "acked_in_response": len(body["cluster"]["processes"]),
        "sessions_acked": sum(a[1] for a in acks),
        "commit_ms": None,
    }
    if engage_commit is not None and last_commit is not None:
        row["commit_ms"] = (last_commit - engage_commit).total_seconds() * 1e3
    servers[(engager + 1) % len(servers)].post("/kill-switch/reset").raise_for_status()
    for s in servers:
        wait_until(lambda s=s: not s.get("/kill-switch").json()["engaged"], 10, 0.02)
    return row


def summarise(n: int, reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p99 of each measure over the repetitions of one N."""
    out: dict[str, Any] = {"n_per_process": n, "sessions": n * PROCESSES, "reps": len(reps)}
    for key in ("commit_ms", "ack_ms", "api_ms"):
        values = [r[key] for r in reps if r[key] is not None]
        out[f"{key}_median"] = statistics.median(values) if values else None
        out[f"{key}_p99"] = percentile(values, 99) if values else None
    out["all_acked_in_response"] = all(r["acked_in_response"] == PROCESSES for r in reps)
    out["sessions_acked_ok"] = all(r["sessions_acked"] == n * PROCESSES for r in reps)
    return out


def main() -> int:
    """Run the benchmark and write ``results/killswitch_cluster.json``."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sessions", default=None, help="comma-separated N per process (10,100)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per N (default 20)")
    args = p.parse_args()
    ns, n_reps = (QUICK_NS, QUICK_REPS) if args.quick else (FULL_NS, FULL_REPS)
    if args.sessions:
        ns = tuple(int(x) for x in args.sessions.split(","))
    n_reps = args.reps or n_reps
    started = time.perf_counter()
    print(machine_line())
    server, server_url = start_postgres()
    rows: list[dict[str, Any]] = []
    raw: dict[str, list[dict[str, Any]]] = {}
    try:
        for n in ns:
            name = f"ks_cluster_{n}_{os.getpid()}"
            db_url = create_database(server_url, name)
            home = Path(tempfile.mkdtemp(prefix="ks-cluster-"))
            servers = start_servers(db_url, home, PROCESSES)
            try:
                bot_id = create_bot(servers[0])
                reps = []
                for i in range(n_reps):
                    reps.append(one_rep(servers, db_url, bot_id, n, i % PROCESSES))
                    last = reps[-1]
                    print(
                        f"  n={n} rep {i + 1}/{n_reps}: commit {last['commit_ms']} ms, "
                        f"ack {last['ack_ms']:.1f} ms",
                        flush=True,
                    )
            finally:
                for s in servers:
                    s.stop()
            raw[str(n)] = reps
            rows.append(summarise(n, reps))
    finally:
        if server is not None:
            server.stop()
    print(
        table(
            rows,
            [
                ("n_per_process", "sessions/process"),
                ("sessions", "sessions"),
                ("reps", "reps"),
                ("commit_ms_median", "commit→last row median ms"),
                ("commit_ms_p99", "p99 ms"),
                ("ack_ms_median", "engaged_at→last ack median ms"),
                ("ack_ms_p99", "p99 ms"),
                ("api_ms_median", "engager fan-out median ms"),
                ("all_acked_in_response", "3 acks in response"),
            ],
            title=f"Kill switch across {PROCESSES} server processes on one PostgreSQL "
            "(database clock)",
        )
    )
    write_results(
        args.results_dir,
        NAME,
        {"processes": PROCESSES, "rows": rows, "reps": raw, "load_after": load()},
        started,
        args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
