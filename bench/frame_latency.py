"""Frame latency: engine publish -> WebSocket client receipt at 100, 1,000 and 10,000 frames/s.

The server runs in a subprocess (this script with ``--harness``): the real API
(``ServerThread``, dashboard off, a temporary SQLite ledger) plus a *synthetic
run*: an object registered in the session registry under a run id, with a
real :class:`~alphaswarm.frames.FrameBus`, exactly what ``WS /ws/paper/{id}``
looks up for a live session. A publisher thread in the server process (standing
in for the engine thread) publishes ``bar.received``-shaped frames (bar,
equity, positions: the size of a real one) into that bus at a fixed rate; each
frame's ``ts`` is ``time.time()`` taken immediately before ``bus.publish``.
The client (this process, asyncio ``websockets``) stamps ``time.time()`` as
each message arrives; latency = receipt - ``ts`` on the same machine clock.

Why not a real PaperSession: its rate is bars x frames per bar, and a paced
session commits each bar to the ledger before publishing it, so its frames
arrive in bursts whose ``ts`` (set when the frame is built, before the commit)
would add the commit to the latency. The synthetic run isolates publish ->
FrameBus -> the socket handler -> TCP -> client.

Full mode adds a row at 1,000/s with a speed-0 paper session replaying bars on
the server's engine loop meanwhile (CPU-bound, no client): the GIL contention a
busy server adds. The first 0.25 s of each rate is warm-up and not counted. A client that falls
more than 10,000 frames behind loses the oldest (``subscriber.lagged``): the
``dropped`` column.

    python bench/frame_latency.py             # 100/s for 10 s, 1,000/s for 5 s, 10,000/s for 3 s
    python bench/frame_latency.py --quick     # 100/s and 1,000/s, 1 s each
    python bench/frame_latency.py --profile   # + cProfile of the server at 1,000/s
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

NAME = "frame_latency"
FULL = ((100, 10.0), (1_000, 5.0), (10_000, 3.0))
QUICK = ((100, 1.0), (1_000, 1.0))
WARMUP_S = 0.25
BUSY = ((1_000, 5.0),)  # rates also run with a speed-0 session busy in the server process
BUSY_BARS = 500_000


# --------------------------------------------------------------------------- server side


class SyntheticRun:
    """What the registry and the WebSocket handler need of a live session."""

    def __init__(self, run_id: str) -> None:
        from alphaswarm.frames import FrameBus

        self.paper_run_id = run_id
        self.bot_id = "bench-frames"
        self.finished = False
        self.frames = FrameBus(run_id)


def sample_frame(run_id: str, seq: int, now: float) -> dict[str, Any]:
    """A ``bar.received`` frame the size of a session's (bar, equity, one position)."""
    from alphaswarm.frames import make_frame

    close = 100.0 + (seq % 100) * 0.01
    return make_frame(
        run_id,
        "bar.received",
        f"DEMO 2024-01-02 14:{seq % 60:02d} close {close:.2f}",
        seq,
        now=now,
        bar={
            "symbol": "DEMO",
            "ts": "2024-01-02T14:30:00+00:00",
            "open": close,
            "high": close + 0.05,
            "low": close - 0.05,
            "close": close,
            "volume": 1234.0,
        },
        equity=100_000.0 + seq * 0.01,
        positions={
            "DEMO": {
                "qty": 100.0,
                "avg_price": 100.0,
                "last_price": close,
                "unrealized_pnl": (close - 100.0) * 100,
                "realized_pnl": 0.0,
            }
        },
    )


def publish(run: SyntheticRun, rate: float, seconds: float) -> dict[str, Any]:
    """Publish ``rate x seconds`` frames at a steady pace, then ``done``."""
    from alphaswarm.frames import make_frame

    bus = run.frames
    total = int(rate * seconds)
    t_start = time.perf_counter()
    for i in range(total):
        delay = t_start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        bus.publish(sample_frame(run.paper_run_id, i + 1, time.time()))
    elapsed = time.perf_counter() - t_start
    time.sleep(0.2)
    bus.publish(make_frame(run.paper_run_id, "done", "benchmark done", total + 1))
    bus.close()
    run.finished = True
    return {"published": total, "publish_s": elapsed}


def start_busy(ledger: Any) -> Any:
    """A speed-0 paper session on the engine loop of the server process (CPU-bound)."""
    import alphaswarm as aw
    from alphaswarm.data import ReplayFeed, SyntheticFeed

    frame = SyntheticFeed(["DEMO"], seed=7, bars=BUSY_BARS).frame()
    bot = aw.Bot(
        name="bench-busy",
        strategy="sma_cross",
        params={"fast": 20, "slow": 50, "qty": 100},
        universe=["DEMO"],
        risk={"kill_switch_attached": True},
    )
    session = aw.PaperSession(
        bot,
        speed=0,
        duration_minutes=None,
        feed=ReplayFeed(frame, interval="1m", calendar="equities"),
        ledger=ledger,
        starting_cash=10_000_000.0,
        force=True,
        reason="benchmark: background load",
    )
    session.start()
    time.sleep(0.5)
    return session


def on_loop(server: Any, fn: Any) -> None:
    """Run ``fn`` on the server's IOLoop thread and wait for it."""
    done = threading.Event()

    def call() -> None:
        fn()
        done.set()

    server._loop.add_callback(call)
    done.wait(10)


def profiled(server: Any, run: SyntheticRun, rate: float, seconds: float, path: Path) -> dict:
    """:func:`publish` with cProfile on the server's IOLoop thread and on the publisher."""
    import cProfile
    import io
    import pstats

    loop_prof, pub_prof = cProfile.Profile(), cProfile.Profile()
    on_loop(server, loop_prof.enable)
    pub_prof.enable()
    out = publish(run, rate, seconds)
    pub_prof.disable()
    on_loop(server, loop_prof.disable)
    text = io.StringIO()
    for title, prof in (("IOLoop thread (socket handler)", loop_prof), ("publisher", pub_prof)):
        stats = pstats.Stats(prof, stream=text)
        total = stats.total_tt  # type: ignore[attr-defined]
        text.write(
            f"\n=== {title}: {total:.3f} s profiled CPU over {out['published']:,} frames at "
            f"{rate:,.0f}/s = {total / out['published'] * 1e6:.1f} us/frame (cProfile inflates)\n"
        )
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
    path.write_text(text.getvalue())
    return out


def harness(port: int, db: str) -> int:
    """``--harness``: the server plus synthetic runs driven by commands on stdin.

    ``run RUN_ID RATE SECONDS`` registers a run, waits for a subscriber, publishes
    and answers ``finished {json}``.
    """
    import logging

    from alphaswarm.paper import runtime
    from alphaswarm.paper.registry import registry
    from alphaswarm.server import ServerThread

    logging.basicConfig(level=logging.WARNING)
    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # an experiment: sys.setswitchinterval in serve
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    ledger = runtime.set_ledger(f"sqlite:///{db}")
    ledger.ensure_schema()
    server = ServerThread("127.0.0.1", port, ledger=ledger, dashboard=False).start()
    busy = None
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quit":
            break
        if parts[0] == "busy":  # busy on | busy off
            if parts[1] == "on":
                busy = start_busy(ledger)
            elif busy is not None:
                busy.stop("benchmark")
                busy = None
            print("ok", flush=True)
            continue
        command, run_id, rate, seconds, *rest = parts
        run = SyntheticRun(run_id)
        registry().add(run)  # type: ignore[arg-type]
        print("registered", flush=True)
        deadline = time.monotonic() + 30
        while not run.frames.has_subscribers and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        if command == "profile":
            out = profiled(server, run, float(rate), float(seconds), Path(rest[0]))
        else:
            out = publish(run, float(rate), float(seconds))
        print("finished " + json.dumps(out), flush=True)
    server.stop()
    return 0


# --------------------------------------------------------------------------- client side


async def receive(url: str) -> list[tuple[float, str]]:
    """Every message of one socket with its receipt time, until the server closes it."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    got: list[tuple[float, str]] = []
    async with connect(url, max_size=None, compression=None) as ws:
        try:
            while True:
                msg = await ws.recv()
                got.append((time.time(), msg))
        except ConnectionClosed:
            pass
    return got


def one_rate(
    proc: Any, ws_base: str, rate: int, seconds: float, profile: Path | None = None
) -> dict[str, Any]:
    from _common import load, percentile

    run_id = f"bench-frames-{rate}-{int(time.time() * 1000) % 10**8}"
    command = (
        f"run {run_id} {rate} {seconds}"
        if profile is None
        else (f"profile {run_id} {rate} {seconds} {profile}")
    )
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line.startswith("registered"):
        raise RuntimeError(f"harness: {line!r}")
    load_before = load()
    result: dict[str, Any] = {}

    def client() -> None:
        result["got"] = asyncio.run(receive(f"{ws_base}/ws/paper/{run_id}"))

    th = threading.Thread(target=client)
    th.start()
    line = proc.stdout.readline()
    th.join(60)
    if not line.startswith("finished"):
        raise RuntimeError(f"harness: {line!r}")
    server = json.loads(line.split(" ", 1)[1])
    frames = [(t, json.loads(m)) for t, m in result.get("got", [])]
    bars = [(t, f) for t, f in frames if f.get("stage") == "bar.received"]
    dropped = sum(f.get("dropped", 0) for _, f in frames if f.get("stage") == "subscriber.lagged")
    t_first = bars[0][1]["ts"] if bars else 0.0
    counted = [(t - f["ts"]) * 1e3 for t, f in bars if f["ts"] - t_first >= WARMUP_S]
    span = bars[-1][0] - bars[0][0] if len(bars) > 1 else float("nan")
    return {
        "rate": rate,
        "seconds": seconds,
        "published": server["published"],
        "publish_rate": server["published"] / server["publish_s"],
        "received": len(bars),
        "receive_rate": (len(bars) - 1) / span if span == span and span > 0 else None,
        "dropped": dropped,
        "counted": len(counted),
        "median_ms": statistics.median(counted) if counted else None,
        "p90_ms": percentile(counted, 90) if counted else None,
        "p99_ms": percentile(counted, 99) if counted else None,
        "max_ms": max(counted) if counted else None,
        "got_done": any(f.get("stage") == "done" for _, f in frames),
        "load_before": load_before,
    }


def command(proc: Any, line: str) -> None:
    """Send one harness command and wait for its ``ok``."""
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    answer = proc.stdout.readline()
    if not answer.startswith("ok"):
        raise RuntimeError(f"harness: {line!r} -> {answer!r}")


def main() -> int:
    if "--harness" in sys.argv:
        i = sys.argv.index("--harness")
        return harness(int(sys.argv[i + 1]), sys.argv[i + 2])

    from _common import machine_line, parser, table, write_results
    from _server import serve_subprocess

    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--rates", default=None, help="comma-separated frames/s (default 100,1000,10000)"
    )
    p.add_argument("--seconds", type=float, default=None, help="seconds per rate")
    p.add_argument(
        "--no-busy", action="store_true", help="skip the rows with a speed-0 session running"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also profile the server at 1,000/s (cProfile) -> results/frame_latency_profile.txt",
    )
    p.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval(S) in the server process (default: Python's 0.005)",
    )
    args = p.parse_args()
    plan = list(QUICK if args.quick else FULL)
    if args.rates:
        secs = dict(plan)
        plan = [(int(r), secs.get(int(r), 3.0)) for r in args.rates.split(",")]
    if args.seconds:
        plan = [(r, args.seconds) for r, _ in plan]
    started = time.perf_counter()
    print(f"{NAME}: synthetic run's FrameBus in a server subprocess -> one WebSocket client")
    print(machine_line())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as tmp:
        db = str(Path(tmp) / "ledger.db")
        if args.switch_interval:
            os.environ["BENCH_SWITCH_INTERVAL"] = str(args.switch_interval)
        server_cmd = [sys.executable, __file__, "--harness"]
        with serve_subprocess(lambda p: [*server_cmd, str(p), db], Path(tmp), capture=True) as (
            port,
            proc,
        ):
            busy_plan = [] if args.quick or args.no_busy else list(BUSY)
            for (rate, seconds), busy in [(x, False) for x in plan] + [
                (x, True) for x in busy_plan
            ]:
                if busy:
                    command(proc, "busy on")
                row = one_rate(proc, f"ws://127.0.0.1:{port}", rate, seconds)
                if busy:
                    command(proc, "busy off")
                row["server"] = "speed-0 session running" if busy else "idle"
                rows.append(row)
                print(
                    f"  {rate:>6,}/s ({row['server']}): {row['received']:,} received, "
                    f"{row['dropped']} dropped, "
                    f"median {row['median_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms "
                    f"(load {row['load_before']})",
                    flush=True,
                )
            if args.profile:
                args.results_dir.mkdir(parents=True, exist_ok=True)
                path = (args.results_dir / f"{NAME}_profile.txt").resolve()
                row = one_rate(proc, f"ws://127.0.0.1:{port}", 1_000, 5.0, profile=path)
                print(f"  profiled 1,000/s (p99 {row['p99_ms']:.2f} ms under cProfile): {path}")
            proc.stdin.write("quit\n")
            proc.stdin.flush()
    columns = [
        ("server", "server process"),
        ("rate", "target frames/s"),
        ("publish_rate", "published/s"),
        ("received", "received"),
        ("receive_rate", "received/s"),
        ("dropped", "dropped"),
        ("counted", "counted"),
        ("median_ms", "median ms"),
        ("p90_ms", "p90 ms"),
        ("p99_ms", "p99 ms"),
        ("max_ms", "max ms"),
    ]
    print(table(rows, columns, "Frame latency: FrameBus.publish -> WebSocket client receipt"))
    payload = {"warmup_s": WARMUP_S, "switch_interval": args.switch_interval, "rows": rows}
    write_results(args.results_dir, NAME, payload, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
