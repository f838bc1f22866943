"""Load: 50 sessions at speed 60, 50 WebSocket clients on one run, ~100 requests/s.

The server is a real process (forked, see ``servers.py``); the clients run here.

* **No 5xx**: every API request of the flood is answered below 500.
* **No lost frame**: each WebSocket client checks that ``seq`` rises by exactly one
  from its first frame to ``done``; a ``subscriber.lagged`` frame counts as a loss.
* **Bar lag**: a paced session's bars are due ``(bar_ts - prev_bar_ts) / speed`` apart.
  Its lag on bar *k* is how much later than that its ``bar.received`` frame was made:
  ``(frame_ts[k] - frame_ts[k-1]) - (bar_ts[k] - bar_ts[k-1]) / speed``. This includes
  the engine loop's wake-up delay and whatever work of other sessions ran first, for
  every one of the 50 sessions (frames read back from the ledger afterwards), over the
  steady window (from 1 s after the last session started until the flood ends).

  The lag, the request latencies and the request rate are printed with the server's
  CPU and the machine's load (others' work shares the cores), not asserted: a time
  depends on that load. The target (bar lag p99 < 100 ms) is measured by
  ``bench/concurrent_sessions.py``; 9.5-16.7 ms here in three runs on this 2-core
  machine at load 1-1.2 (170-380 ms before the group commit, 65-90 ms before the
  feeds held their blocks as tuples the garbage collector skips).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import psutil
import pytest
import requests
import websockets

from alphaswarm.ledger import Ledger

from .conftest import FAST_BOT

SESSIONS = 50
CLIENTS = 50
SPEED = 60
SECONDS = 12.0
RATE = 100.0  # requests per second, all workers together
WORKERS = 8


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _client(url: str, out: dict) -> None:
    frames: list[tuple[int, str, float]] = []
    out["frames"] = frames
    async with websockets.connect(url, open_timeout=30, max_queue=None) as ws:
        out["connected"] = time.time()
        async for message in ws:
            frame = json.loads(message)
            frames.append((frame.get("seq"), frame.get("stage"), time.time() - frame["ts"]))
            if frame.get("stage") == "done":
                break
        out["close_code"] = ws.close_code


def _run_clients(url: str, outs: list[dict], ready: threading.Event, timeout: float) -> None:
    async def main() -> None:
        tasks = [asyncio.ensure_future(_client(url, out)) for out in outs]
        while sum("connected" in o for o in outs) < len(outs) and not all(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        ready.set()
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                outs.append({"error": repr(task.exception())})

    asyncio.run(main())
    ready.set()


def _flood(url: str, paths: list[str], stop: threading.Event, results: list, worker: int) -> None:
    session = requests.Session()
    interval = WORKERS / RATE
    next_at = time.monotonic()
    i = worker
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += WORKERS
        t0 = time.monotonic()
        try:
            status = session.get(url + path, timeout=30).status_code
        except requests.RequestException as exc:
            status = repr(exc)
        results.append((path, status, time.monotonic() - t0))
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    session.close()


def _server_process(url: str) -> psutil.Process | None:
    """The process listening on ``url``'s port."""
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return float("nan")
    times = proc.cpu_times()
    return times.user + times.system


def _bar_lags(ledger: Ledger, run_ids: list[str], until: float) -> tuple[list[float], float]:
    """Bar lags of every run in the steady window, and the startup burst's worst lag."""
    lags: list[tuple[float, float]] = []
    started: list[float] = []
    for run_id in run_ids:
        frames = ledger.frames(run_id).sort_values("seq")
        points = []
        for stage, frame in zip(frames["stage"], frames["frame"], strict=True):
            frame = json.loads(frame) if isinstance(frame, str) else frame
            if stage == "session.started":
                started.append(frame["ts"])
            elif stage == "bar.received":
                points.append((frame["ts"], pd.Timestamp(frame["bar"]["ts"]).timestamp()))
        for (f0, b0), (f1, b1) in zip(points, points[1:], strict=False):
            lags.append((f1, (f1 - f0) - (b1 - b0) / SPEED))
    steady_from = max(started) + 1.0
    steady = [lag for at, lag in lags if steady_from <= at <= until]
    burst = max((lag for at, lag in lags if at < steady_from), default=0.0)
    return steady, burst


@pytest.mark.slow
def test_50_clients_100_rps_50_sessions(fresh_server):
    url, db_url, log = fresh_server
    r = requests.post(url + "/bots", json=FAST_BOT, timeout=30)
    assert r.status_code in (200, 201), r.text
    bot_id = r.json()["bot_id"]
    body = {"speed": SPEED, "duration_minutes": None, "force": True, "reason": "load test"}
    run_ids = []
    for _ in range(SESSIONS):
        r = requests.post(url + f"/bots/{bot_id}/paper", json=body, timeout=30)
        assert r.status_code == 201, r.text
        run_ids.append(r.json()["paper_run_id"])
    watched = run_ids[0]

    outs: list[dict] = [{} for _ in range(CLIENTS)]
    ready = threading.Event()
    ws_url = url.replace("http://", "ws://") + f"/ws/paper/{watched}"
    clients = threading.Thread(
        target=_run_clients, args=(ws_url, outs, ready, SECONDS + 60), daemon=True
    )
    clients.start()
    assert ready.wait(60), "the WebSocket clients did not connect"

    paths = ["/paper", f"/paper/{watched}", f"/paper/{run_ids[1]}/fills", "/bots",
             f"/bots/{bot_id}", "/kill-switch", "/health", f"/paper/{run_ids[-1]}",
             "/paper?status=running&limit=10", f"/bots/{bot_id}/versions"]  # fmt: skip
    results: list = []
    stop = threading.Event()
    server = _server_process(url)
    load_before = os.getloadavg()[0]
    cpu0 = _cpu_seconds(server)
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        for w in range(WORKERS):
            pool.submit(_flood, url, paths, stop, results, w)
        time.sleep(SECONDS)
        stop.set()
    elapsed = time.monotonic() - t0
    server_cpu = (_cpu_seconds(server) - cpu0) / elapsed
    flood_end = time.time()
    r = requests.post(url + "/paper/stop-all", json={"reason": "load test over"}, timeout=60)
    assert r.status_code == 200 and r.json()["halted"] == SESSIONS, r.text
    clients.join(60)

    ledger = Ledger(url=db_url)
    try:
        lags, burst = _bar_lags(ledger, run_ids, flood_end)
    finally:
        ledger.close()

    errors = [o["error"] for o in outs if "error" in o]
    streams = [o for o in outs if "frames" in o]
    lost = lagged = 0
    for out in streams:
        seqs = [s for s, _, _ in out["frames"]]
        lagged += sum(stage == "subscriber.lagged" for _, stage, _ in out["frames"])
        lost += sum(b - a - 1 for a, b in zip(seqs, seqs[1:], strict=False) if b != a + 1)
    complete = sum(bool(o["frames"]) and o["frames"][-1][1] == "done" for o in streams)
    delivery = [d for o in streams for _, _, d in o["frames"]]
    latencies = [t for _, status, t in results if isinstance(status, int)]
    statuses: dict = {}
    for _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    figures = {
        "sessions (speed 60)": SESSIONS,
        "websocket clients": CLIENTS,
        "seconds of load": round(elapsed, 1),
        "machine load (1 min) before": round(load_before, 2),
        "server CPU during the load (% of one core)": round(100 * server_cpu),
        "requests done": len(results),
        "requests/s": round(len(results) / elapsed, 1),
        "statuses": statuses,
        "latency p50 ms": round(1e3 * _pct(latencies, 0.50), 1),
        "latency p99 ms": round(1e3 * _pct(latencies, 0.99), 1),
        "frames received": sum(len(o["frames"]) for o in streams),
        "frames lost (seq gaps)": lost,
        "subscriber.lagged frames": lagged,
        "clients that saw done": f"{complete}/{CLIENTS}",
        "frame delivery p50/p99 ms": f"{1e3 * _pct(delivery, 0.5):.1f}/"
        f"{1e3 * _pct(delivery, 0.99):.1f}",
        "bars measured (steady window)": len(lags),
        "bar lag max while the 50 sessions start (ms)": round(1e3 * burst, 1),
        "bar lag p50 ms": round(1e3 * statistics.median(lags), 1) if lags else None,
        "bar lag p99 ms": round(1e3 * _pct(lags, 0.99), 1),
        "bar lag max ms": round(1e3 * max(lags), 1) if lags else None,
    }
    print("\nload figures:\n" + "\n".join(f"| {k} | {v} |" for k, v in figures.items()))  # noqa: T201
    assert not errors, errors
    assert all(isinstance(s, int) and s < 500 for s in statuses), statuses
    assert results, "the flood sent no request"
    assert lost == 0 and lagged == 0
    assert complete == CLIENTS
    assert len(lags) >= SESSIONS, "every session's bars were measured"
