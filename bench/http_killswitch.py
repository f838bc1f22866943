"""Kill switch over HTTP: ``POST /kill-switch`` -> response, and -> all N final rows committed.

A real server (``alphaswarm serve --port N --db sqlite:///tmp/...``) runs in its own
process. Over HTTP the benchmark creates the bot (the demo bot's spec), backtests it
so the paper gate passes honestly, and starts N paper sessions
(``POST /bots/{id}/paper``, speed 60, no duration). Once every session has
committed its first bar and they have traded for a moment it sends
``POST /kill-switch`` and measures, from just before the request:

* **response**: the HTTP response received (the handler runs
  ``kill_switch().engage`` to completion first: every session's final row is
  written in one transaction before it answers);
* **all killed**: a read-only SQLite connection of the client to the ledger file
  sees every one of the N runs with ``status = 'killed'``, so this is the commit
  of the last final run row as another process sees it (the response comes later:
  the handler also writes the closing rows and lets the sessions publish their
  last frames). A thread of the client watches from just before the request:
  every ~0.2 ms it reads ``PRAGMA data_version`` (which moves when another
  connection commits) and counts the killed runs when it has moved. The time is
  when the count that found all N began: its snapshot is taken then;
* **confirmed**: when that count returned (the above plus the query's own time);
* **server commit**: the server's own ``final_rows_committed_ms`` from the response
  (from the start of ``engage()``); ``request_to_engage_ms`` before it is the time
  from the server receiving the request to ``engage()`` starting;
* **longest poll gap**: the longest time between two looks of the client's thread
  (its own sleep, query and scheduling): a large one says the client, not the
  server, was slow to look.

Then ``POST /kill-switch/reset`` and fresh sessions for the next repetition.

    python bench/http_killswitch.py             # N = 1, 10, 50, 200; 20 reps
    python bench/http_killswitch.py --quick     # N = 3; 2 reps
    python bench/http_killswitch.py --tuning off   # an untuned server only (default: both)

By default each N is measured against an untuned server, then against one started
with ``--tune-interpreter``, and both are printed side by side.

The server builds its dashboard (Panel, Bokeh, HoloViews: some 200,000 more objects
for every full garbage collection to walk) only when a page is first asked for.
``--page none`` measures a server no page was opened on; ``--page open`` opens the
overview page in headless Chromium (``/usr/bin/chromium`` through Playwright; without
them the page is only fetched, and the row says so) and keeps it open while every
N is measured; ``--page both`` (the default) does one, then the other.

    python bench/http_killswitch.py --tuning off --page both --sessions 200
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    add_sessions_arguments,
    add_tuning_arguments,
    load,
    machine_line,
    measure_rows,
    parser,
    sessions_and_reps,
    tuned_payload,
    tuned_tables,
    tuning_modes,
    write_results,
)
from _server import Api, alphaswarm_serve, bench_bot

NAME = "http_killswitch"
FULL_NS = (1, 10, 50, 200)
QUICK_NS = (3,)
STARTERS = 4  # concurrent HTTP clients starting sessions (start-up is not what is timed)


def start_sessions(url: str, bot_id: str, n: int) -> list[str]:
    """Start ``n`` sessions over HTTP (a few clients at once); their run ids."""
    body = {"starting_cash": 100_000, "speed": 60}

    def start_some(count: int) -> list[str]:
        api = Api(url)
        try:
            return [api.post(f"/bots/{bot_id}/paper", body)["paper_run_id"] for _ in range(count)]
        finally:
            api.close()

    workers = min(STARTERS, n)
    shares = [n // workers + (i < n % workers) for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        return [rid for ids in pool.map(start_some, shares) for rid in ids]


def killed(conn: sqlite3.Connection, run_ids: list[str]) -> int:
    marks = ",".join("?" * len(run_ids))
    sql = f"SELECT COUNT(*) FROM paper_trading_runs WHERE status = 'killed' AND id IN ({marks})"  # noqa: S608
    return conn.execute(sql, run_ids).fetchone()[0]


def wait_trading(conn: sqlite3.Connection, run_ids: list[str], timeout: float = 60) -> None:
    """Wait until every run has committed its first bar (the server is done starting)."""
    marks = ",".join("?" * len(run_ids))
    sql = f"SELECT COUNT(*) FROM paper_trading_runs WHERE bars_seen >= 1 AND id IN ({marks})"  # noqa: S608
    deadline = time.perf_counter() + timeout
    while conn.execute(sql, run_ids).fetchone()[0] < len(run_ids):
        if time.perf_counter() > deadline:
            raise RuntimeError("the sessions did not all trade within 60 s")
        time.sleep(0.02)


def running_ids(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM paper_trading_runs WHERE status='running'")]


def watch_killed(
    db: Path, run_ids: list[str], started: threading.Event
) -> tuple[float, float, int, float, float]:
    """Watch the ledger file (own connection) until all runs are killed.

    Every ~0.2 ms it reads ``PRAGMA data_version``, a counter that moves when another
    connection commits (microseconds, no table read), and counts the killed runs
    only when it has moved: the watcher takes little CPU from the server it times.

    Returns (seen, confirmed, count, slowest count s, longest gap s). ``seen`` is when
    the count that first found all N killed began: its snapshot is taken then, so
    the commit came before it (and after the previous count began). ``confirmed`` is
    when that count returned. The last two tell a slow server from a watcher that was
    held up itself.
    """
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        started.set()
        deadline = time.perf_counter() + 30
        slowest = gap = 0.0
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        seen = time.perf_counter()
        count = killed(conn, run_ids)
        last = time.perf_counter()
        while count < len(run_ids) and last < deadline:
            time.sleep(0.0002)
            now = time.perf_counter()
            gap, last = max(gap, now - last), now
            moved = conn.execute("PRAGMA data_version").fetchone()[0]
            if moved == version:
                continue
            version, seen = moved, time.perf_counter()
            count = killed(conn, run_ids)
            last = time.perf_counter()
            slowest = max(slowest, last - seen)
        return seen, last, count, slowest, gap
    finally:
        conn.close()


def one_rep(
    api: Api, conn: sqlite3.Connection, db: Path, bot_id: str, n: int, settle: float
) -> dict:
    t_start = time.perf_counter()
    run_ids = start_sessions(api.url, bot_id, n)
    start_s = time.perf_counter() - t_start
    wait_trading(conn, run_ids)
    time.sleep(settle)  # let them trade
    running = len(set(running_ids(conn)) & set(run_ids))
    load_before = load()
    started = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(watch_killed, db, run_ids, started)
        started.wait(5)
        t0 = time.perf_counter()
        result = api.post("/kill-switch", {"reason": "benchmark: http kill switch latency"})
        t_resp = time.perf_counter()
        t_seen, t_confirmed, count, slowest_poll, poll_gap = watcher.result()
    api.post("/kill-switch/reset", {})
    leftover = running_ids(conn)
    return {
        "response_ms": (t_resp - t0) * 1e3,
        "committed_ms": (t_seen - t0) * 1e3,
        "confirmed_ms": (t_confirmed - t0) * 1e3,
        "server_elapsed_ms": result.get("elapsed_ms"),
        "server_commit_ms": result.get("final_rows_committed_ms"),
        "server_queued_ms": result.get("request_to_engage_ms"),
        "server_closing_ms": result.get("closing_rows_committed_ms"),
        "slowest_poll_ms": slowest_poll * 1e3,
        "poll_gap_ms": poll_gap * 1e3,
        "halted": sum(t.get("halted", 0) for t in result.get("targets", {}).values()),
        "killed_in_ledger": count,
        "running_at_engage": running,
        "left_running": len(leftover),
        "start_s": start_s,
        "failures": result.get("failures", []),
        "load_before": load_before,
    }


#: The statistics of each N: sample key -> {statistic: row key}.
STATS = {
    "response_ms": {"median": "response_median_ms", "p99": "response_p99_ms"},
    "committed_ms": {"median": "median_ms", "p99": "p99_ms", "worst": "worst_ms"},
    "confirmed_ms": {"median": "confirmed_median_ms", "p99": "confirmed_p99_ms"},
    "server_elapsed_ms": {"median": "server_median_ms"},
    "server_commit_ms": {"median": "server_commit_median_ms", "p99": "server_commit_p99_ms"},
    "server_queued_ms": {"median": "server_queued_median_ms"},
}


def measure(
    api: Api,
    conn: sqlite3.Connection,
    db: Path,
    bot_id: str,
    ns: list[int],
    reps: int,
    settle: float,
    label: str,
) -> list[dict[str, Any]]:
    """Every N, ``reps`` times, against one server: one row per N."""
    return measure_rows(
        ns,
        reps,
        lambda n: one_rep(api, conn, db, bot_id, n, settle),
        lambda n, s: (
            f"response {s['response_ms']:7.1f} ms, all killed {s['committed_ms']:7.1f} ms "
            f"(confirmed {s['confirmed_ms']:7.1f} ms; server: request to engage "
            f"{s['server_queued_ms']:5.1f} ms, commit {s['server_commit_ms']:6.1f} ms; "
            f"longest poll gap {s['poll_gap_ms']:5.1f} ms; server engage "
            f"{s['server_elapsed_ms']:6.1f} ms; {s['killed_in_ledger']}/{n} killed, "
            f"{s['running_at_engage']} running before; start {s['start_s']:.1f} s; "
            f"load {s['load_before']})"
        ),
        STATS,
        lambda n, samples: {
            "poll_gap_max_ms": max(s["poll_gap_ms"] for s in samples),
            "all_killed": all(s["killed_in_ledger"] == n for s in samples),
            "failures": sorted({f for s in samples for f in s["failures"]}),
        },
        label,
    )


CHROMIUM = "/usr/bin/chromium"


class OpenPage:
    """The server's overview page, open in headless Chromium until :meth:`close`.

    Without Playwright or Chromium the page is fetched once (``Accept: text/html``):
    the dashboard is built and a document made, but no browser keeps it open;
    :attr:`how` says which.
    """

    def __init__(self, url: str) -> None:
        self._pw = self._browser = None
        try:
            from playwright.sync_api import sync_playwright

            if not Path(CHROMIUM).exists():
                raise ImportError(CHROMIUM)
        except ImportError:
            import requests

            r = requests.get(url + "/", headers={"Accept": "text/html"}, timeout=300)
            r.raise_for_status()
            self.how = "page fetched (no browser)"
            return
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM)
        page = self._browser.new_page()
        page.goto(url + "/", timeout=300_000)
        page.locator(".alphaswarm-runs").first.wait_for(timeout=300_000)  # the runs table
        self.how = "page open in Chromium"

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._pw is not None:
            self._pw.stop()


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    add_sessions_arguments(p, FULL_NS)
    p.add_argument("--settle", type=float, default=None, help="seconds of trading first (0.5)")
    add_tuning_arguments(p, "the server's --tune-interpreter")
    p.add_argument(
        "--page",
        choices=("none", "open", "both"),
        default="both",
        help="a dashboard page open while measuring: none, open, or both (default both)",
    )
    args = p.parse_args()
    ns, reps = sessions_and_reps(args, FULL_NS, QUICK_NS)
    settle = args.settle if args.settle is not None else (0.2 if args.quick else 0.5)
    modes = tuning_modes(args)
    started = time.perf_counter()

    shown = ", then ".join("--tune-interpreter" if t else "untuned" for t in modes)
    print(
        f"{NAME}: alphaswarm serve subprocess ({shown}), N sessions at speed 60 over HTTP, "
        f"{reps} reps"
    )
    print(machine_line())
    pages = {"none": (False,), "open": (True,), "both": (False, True)}[args.page]
    by_page: dict[str, dict[bool, list[dict[str, Any]]]] = {}
    for open_page in pages:
        rows_by_mode: dict[bool, list[dict[str, Any]]] = {}
        page_label = "no page opened"
        for tuned in modes:
            label = "tuning on" if tuned else "tuning off"
            with tempfile.TemporaryDirectory(prefix="bench-http-ks-") as tmp:
                db = Path(tmp) / "ledger.db"
                with alphaswarm_serve(db, Path(tmp), tune_interpreter=tuned) as (url, _proc):
                    api = Api(url)
                    bot_id = bench_bot(api)
                    page = OpenPage(url) if open_page else None
                    if page is not None:
                        page_label = page.how
                    label = f"{label}, {page_label}"
                    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
                    try:
                        rows_by_mode[tuned] = measure(
                            api, conn, db, bot_id, ns, reps, settle, label
                        )
                    finally:
                        conn.close()
                        api.close()
                        if page is not None:
                            page.close()
        by_page[page_label] = rows_by_mode
    columns = [
        ("sessions", "sessions"),
        ("reps", "reps"),
        ("response_median_ms", "response median ms"),
        ("response_p99_ms", "response p99 ms"),
        ("median_ms", "all killed median ms"),
        ("p99_ms", "all killed p99 ms"),
        ("worst_ms", "worst ms"),
        ("confirmed_median_ms", "confirmed median ms"),
        ("confirmed_p99_ms", "confirmed p99 ms"),
        ("server_median_ms", "engage() in server, median ms"),
        ("server_queued_median_ms", "request to engage, median ms"),
        ("server_commit_median_ms", "server commit median ms"),
        ("server_commit_p99_ms", "server commit p99 ms"),
        ("poll_gap_max_ms", "longest poll gap ms"),
        ("all_killed", "all rows killed"),
    ]
    title = "Kill switch over HTTP: POST /kill-switch -> response, -> all N rows 'killed'"
    compared = [
        ("median_ms", "all killed p50 ms"),
        ("p99_ms", "all killed p99 ms"),
        ("response_p99_ms", "response p99 ms"),
    ]
    for page_label, rows_by_mode in by_page.items():
        side = f"Kill switch over HTTP, {page_label}: interpreter tuning off and on side by side"
        print(tuned_tables(rows_by_mode, columns, f"{title}, {page_label}", compared, side))
    first = next(iter(by_page.values()))
    payload = {
        "settle_s": settle,
        **tuned_payload(modes, first),
        "by_page": {
            page_label: {"off" if not t else "on": rows for t, rows in rows_by_mode.items()}
            for page_label, rows_by_mode in by_page.items()
        },
    }
    write_results(args.results_dir, NAME, payload, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
