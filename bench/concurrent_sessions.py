"""Concurrent sessions: how many paper sessions at 1 bar/s one process sustains with lag < 100 ms.

In one process, N paper sessions of the SMA bot (5/20, qty 100) run at speed 60
on one-minute bars (one bar a second each; a 24x7 synthetic feed, so every gap
is exactly a minute) on the shared engine loop, all writing to one SQLite ledger
file (made beforehand by another process, as a server finds its ledger). Sessions
start one after another; after the last has started and a 2 s warm-up, a window of
~15 s is measured. Steps: N = 10, 50, 100, 200, 400, 800, 1000.
The RSS per session is the process's growth from before the step's first start to
the end of its warm-up, divided by N.

Bar processing lag is observed without touching the session: a sync subscriber
on each session's FrameBus records every ``bar.received`` frame. Its ``ts`` is
taken inside ``Engine.step`` when the bar is processed; the publish (after the
bar's ledger commit) is stamped by the subscriber. For each session the
schedule is anchored at its first bar in the window: bar k is due at
``anchor + (bar_ts_k - bar_ts_0) / 60``; lag = processed - due. Sessions pace
against an absolute schedule, so lag does not add up from bar to bar; the "slip"
columns show one bar's interval minus 1 s on its own. A subscriber makes every
session build each frame's envelope; ``--probe ledger`` attaches none (the bar and
equity frames stay records, as when nobody watches a session) and reads each bar's
processed time back from the ledger after the step (the published lag is then the
processed one).

Reported per N: p50/p99/max lag (processed, and published), p99 slip, bars/s
actually achieved per session, process CPU % (psutil; 100 % = one core, 200 %
= both) over the window, the full (generation 2) garbage collections in the
window and the longest (they stop every thread), and the largest N whose p99
lag stays under 100 ms.

    python bench/concurrent_sessions.py             # N = 10, 50, ..., 1000; 15 s each
    python bench/concurrent_sessions.py --quick     # N = 2, 5; 2 s each
    python bench/concurrent_sessions.py --tuning off   # untuned only (default: both)
    python bench/concurrent_sessions.py --probe ledger # nobody listens; lag from the ledger

Each N runs with the interpreter tuning off, then on (``--tuning both``, the default:
:mod:`alphaswarm.paper.tuning` enabled in this process), printed side by side.
"""

from __future__ import annotations

import gc
import logging
import statistics
import subprocess
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

NAME = "concurrent_sessions"
FULL_NS = (10, 50, 100, 200, 400, 800, 1000)
QUICK_NS = (2, 5)
SPEED = 60
LAG_LIMIT_MS = 100.0
FEED_BARS = 3_000


class Recorder:
    """A FrameBus subscriber: (processed ts, published wall time, bar time) per bar."""

    __slots__ = ("bars",)

    def __init__(self) -> None:
        self.bars: list[tuple[float, float, str]] = []

    def __call__(self, frame: dict[str, Any]) -> None:
        if frame["stage"] == "bar.received":
            self.bars.append((frame["ts"], time.time(), frame["bar"]["ts"]))


def ledger_bars(ledger: Any, run_id: str) -> list[tuple[float, float, str]]:
    """A session's bars as :class:`Recorder` holds them, read back from the ledger.

    For ``--probe ledger``: nobody listens while the sessions run (their bar and
    equity frames stay records), and each stored ``bar.received`` frame's ``ts`` is
    when its bar was processed. The publish time is not stored: it is given as the
    processed time.
    """
    frames = ledger.frames_after(run_id, 0, stages=("bar.received",))
    return [(f["ts"], f["ts"], f["bar"]["ts"]) for f in frames]


class FullCollections:
    """Times every full (generation 2) garbage collection of the process, ms."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []  # (wall time at the end, duration)
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append((time.time(), (time.perf_counter() - self._t0) * 1e3))

    def within(self, t_from: float, t_to: float) -> list[float]:
        """Durations of the collections that ended inside the window."""
        return [ms for at, ms in self.pauses if t_from <= at < t_to]


def lags(rec: Recorder, t_from: float, t_to: float) -> dict[str, list[float]]:
    """Lag (processed, published) and slip of one session's bars inside the window, ms."""
    from datetime import datetime

    inside = [b for b in rec.bars if t_from <= b[0] < t_to]
    out: dict[str, list[float]] = {"lag": [], "pub_lag": [], "slip": []}
    if not inside:
        return out
    anchor, _, bar0 = inside[0]
    t_bar0 = datetime.fromisoformat(bar0)
    prev: tuple[float, datetime] | None = None
    for ts, pub, bar in inside:
        t_bar = datetime.fromisoformat(bar)
        due = anchor + (t_bar - t_bar0).total_seconds() / SPEED
        out["lag"].append((ts - due) * 1e3)
        out["pub_lag"].append((pub - due) * 1e3)
        if prev is not None:
            gap = (t_bar - prev[1]).total_seconds() / SPEED
            out["slip"].append((ts - prev[0] - gap) * 1e3)
        prev = (ts, t_bar)
    return out


def one_step(
    aw: Any,
    bot: Any,
    feed: Any,
    ledger: Any,
    n: int,
    window: float,
    warmup: float,
    collections: FullCollections,
    probe: str = "bus",
) -> dict[str, Any]:
    import psutil

    from alphaswarm.paper.registry import registry

    proc = psutil.Process()
    gc.collect()
    rss_before = proc.memory_info().rss
    sessions, recorders = [], []
    t_start = time.perf_counter()
    for _ in range(n):
        s = aw.PaperSession(
            bot,
            speed=SPEED,
            duration_minutes=None,
            feed=feed,
            ledger=ledger,
            force=True,
            reason="benchmark: gate not under test",
        )
        rec = Recorder()
        if probe == "bus":
            s.frames.subscribe(rec)
        s.start()
        sessions.append(s)
        recorders.append(rec)
    start_s = time.perf_counter() - t_start
    time.sleep(warmup)
    rss_per_session = (proc.memory_info().rss - rss_before) / n / 2**20
    load_before = load()
    proc.cpu_percent(None)
    t_from = time.time()
    time.sleep(window)
    t_to = time.time()
    cpu = proc.cpu_percent(None)
    running = sum(s.status == "running" for s in sessions)
    t_stop = time.perf_counter()
    registry().stop_many([s for s in sessions if not s.finished], "stopped", "benchmark step over")
    for s in sessions:
        s.wait(30)
    stop_s = time.perf_counter() - t_stop
    if probe == "ledger":
        for s, rec in zip(sessions, recorders, strict=True):
            rec.bars = ledger_bars(ledger, s.paper_run_id)
    lag, pub_lag, slip, bars = [], [], [], 0
    for rec in recorders:
        got = lags(rec, t_from, t_to)
        lag += got["lag"]
        pub_lag += got["pub_lag"]
        slip += got["slip"]
        bars += len(got["lag"])
    p99 = percentile(lag, 99)
    full_gcs = collections.within(t_from, t_to)
    return {
        "sessions": n,
        "window_s": t_to - t_from,
        "bars": bars,
        "bars_per_s_per_session": bars / (t_to - t_from) / n,
        "lag_p50_ms": statistics.median(lag) if lag else None,
        "lag_p99_ms": p99,
        "lag_max_ms": max(lag) if lag else None,
        "pub_lag_p99_ms": percentile(pub_lag, 99),
        "slip_p50_ms": statistics.median(slip) if slip else None,
        "slip_p99_ms": percentile(slip, 99),
        "under_limit": bool(lag) and p99 < LAG_LIMIT_MS,
        "cpu_percent": cpu,
        "rss_per_session_mib": rss_per_session,
        "full_gcs": len(full_gcs),
        "full_gc_max_ms": max(full_gcs, default=None),
        "running": running,
        "start_s": start_s,
        "stop_s": stop_s,
        "load_before": load_before,
        "load_after": load(),
    }


def create_schema(url: str) -> None:
    """Create the ledger at ``url`` in a child process, as a server finds its ledger made.

    A process that opens a ledger already at the newest schema revision does not load
    the migration machinery (some 20,000 objects every full collection would walk).
    """
    script = (
        "import sys; from alphaswarm.ledger import Ledger; Ledger(url=sys.argv[1]).ensure_schema()"
    )
    subprocess.run([sys.executable, "-c", script, url], check=True, timeout=300)


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sessions", default=None, help="comma-separated N (default 10,...,400)")
    p.add_argument("--window", type=float, default=None, help="seconds measured per N (15)")
    p.add_argument(
        "--probe",
        choices=("bus", "ledger"),
        default="bus",
        help="bus: a subscriber on every session records its bars (every frame is built); "
        "ledger: nobody listens, the bars' processed times are read back from the ledger "
        "after each step (no published lag)",
    )
    add_tuning_arguments(p, "alphaswarm.paper.tuning in this process")
    args = p.parse_args()
    modes = tuning_modes(args)
    ns = (
        [int(x) for x in args.sessions.split(",")]
        if args.sessions
        else list(QUICK_NS if args.quick else FULL_NS)
    )
    window = args.window or (2.0 if args.quick else 15.0)
    warmup = 0.5 if args.quick else 2.0
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)

    import alphaswarm as aw
    from alphaswarm.data import ReplayFeed, SyntheticFeed
    from alphaswarm.paper import tuning
    from alphaswarm.paper.registry import registry

    shown = ", then ".join("tuning on" if t else "tuning off" for t in modes)
    print(
        f"{NAME}: N sessions at speed {SPEED} (1 bar/s each), one process, {window:g} s per N;"
        f" {shown}"
    )
    print(machine_line())
    feed = ReplayFeed(
        SyntheticFeed(["DEMO"], seed=SEED, bars=FEED_BARS, calendar="24x7").frame(),
        interval="1m",
        calendar="24x7",
    )
    bot = aw.Bot(
        name="bench-concurrent",
        strategy="sma_cross",
        params={"fast": 5, "slow": 20, "qty": 100},
        universe=["DEMO"],
        risk={"kill_switch_attached": True},
    )
    rows_by_mode: dict[bool, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-concurrent-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        create_schema(url)
        ledger = aw.Ledger(url=url)
        ledger.ensure_schema()
        aw.set_ledger(ledger)
        registry()
        aw.kill_switch().reset(actor="bench")
        collections = FullCollections()
        gc.callbacks.append(collections)
        for tuned in modes:
            label = "tuning on" if tuned else "tuning off"
            if tuned:
                tuning.enable()
            try:
                rows = rows_by_mode[tuned] = []
                for n in ns:
                    row = one_step(
                        aw, bot, feed, ledger, n, window, warmup, collections, args.probe
                    )
                    row["probe"] = args.probe
                    rows.append(row)
                    print(
                        f"  [{label}] N={n:<4d}: lag p50 {row['lag_p50_ms']:.1f} ms, "
                        f"p99 {row['lag_p99_ms']:.1f} ms, "
                        f"slip p99 {row['slip_p99_ms']:.1f} ms, "
                        f"{row['bars_per_s_per_session']:.3f} bars/s/session, "
                        f"CPU {row['cpu_percent']:.0f} %, "
                        f"{row['rss_per_session_mib']:.2f} MiB/session, "
                        f"{row['full_gcs']} full GC(s)"
                        f" (start {row['start_s']:.1f} s; load {row['load_before']})",
                        flush=True,
                    )
            finally:
                if tuned:
                    tuning.disable()
        ledger.close()
        aw.set_ledger(None)
    columns = [
        ("sessions", "sessions"),
        ("bars", "bars in window"),
        ("bars_per_s_per_session", "bars/s per session"),
        ("lag_p50_ms", "lag p50 ms"),
        ("lag_p99_ms", "lag p99 ms"),
        ("lag_max_ms", "lag max ms"),
        ("pub_lag_p99_ms", "published lag p99 ms"),
        ("slip_p50_ms", "slip p50 ms"),
        ("slip_p99_ms", "slip p99 ms"),
        ("cpu_percent", "CPU %"),
        ("rss_per_session_mib", "RSS per session MiB"),
        ("full_gcs", "full GCs"),
        ("full_gc_max_ms", "longest full GC ms"),
        ("under_limit", "p99 < 100 ms"),
    ]
    for tuned, rows in rows_by_mode.items():
        print(
            table(
                rows,
                columns,
                f"Concurrent sessions at 1 bar/s (window {window:g} s per N), "
                f"tuning {'on' if tuned else 'off'}",
            )
        )
    print(
        side_by_side(
            rows_by_mode,
            [
                ("lag_p50_ms", "lag p50 ms"),
                ("lag_p99_ms", "lag p99 ms"),
                ("full_gcs", "full GCs"),
                ("full_gc_max_ms", "longest full GC ms"),
            ],
            "Concurrent sessions: interpreter tuning off and on side by side",
        )
    )
    rows = rows_by_mode[modes[0]]
    ok = [r["sessions"] for r in rows if r["under_limit"]]
    best = max(ok) if ok else None
    at100 = next((r["cpu_percent"] for r in rows if r["sessions"] == 100), None)
    print(f"\nlargest N with p99 lag < {LAG_LIMIT_MS:g} ms: {best if best is not None else 'none'}")
    if at100 is not None:
        print(f"process CPU at N=100: {at100:.0f} % of one core ({at100 / 2:.0f} % of 2 cores)")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    write_results(
        args.results_dir,
        NAME,
        {
            "speed": SPEED,
            "window_s": window,
            "warmup_s": warmup,
            "lag_limit_ms": LAG_LIMIT_MS,
            "max_sessions_under_limit": best,
            "cpu_percent_at_100": at100,
            "tuning": ["on" if t else "off" for t in modes],
            "rows": rows_by_mode.get(False, rows),
            "rows_tuned": rows_by_mode.get(True, []),
            "peak_rss_mib": peak_rss_mib(),
        },
        started,
        args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
