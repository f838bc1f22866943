"""Sweep scaling: one SMA grid serial, on 2 local workers, on a tcp scheduler with 2 workers.

A grid of SMA-crossover trials (``sma_cross``, one symbol of one-minute synthetic
bars, seed 7; ``fast`` x ``slow``, every point valid) runs, with identical metrics
(checked):

* serial -- ``sweep(..., backend="serial")`` in this process;
* 2 local workers -- a ``LocalCluster(n_workers=2, threads_per_worker=1)``;
* tcp, 2 workers -- ``dask scheduler`` and ``dask worker --nworkers 2 --nthreads 1``
  as subprocesses on 127.0.0.1, reached by address (``client="tcp://..."``).

Each Dask case is timed from a running cluster (its start is printed apart). Reported:
run seconds, trials/s, speed-up and efficiency against the serial run
(``T_serial / (W x T_W)``), the measured seconds of one trial, the seconds spent
sending the bars to the workers, and the overhead per trial
``(run x workers - compute) / trials`` (client, scheduler, transfer and idle time).

When ``vectorbt`` is importable (``bench/requirements.txt``), the same grid runs as a
vectorbt moving-average crossover (``Portfolio.from_signals``, in column chunks to
bound memory) in the same process, twice: cold (first call: imports and Numba
compilation) and warm.

    python bench/sweep_scaling.py                       # 1,000 points x 1,000,000 bars
    python bench/sweep_scaling.py --quick               # 100 points x 50,000 bars
    python bench/sweep_scaling.py --points 200 --bars 100000
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

FULL = (1000, 1_000_000)
QUICK = (100, 50_000)


def make_grid(points: int) -> dict[str, list[int]]:
    """A ``fast`` x ``slow`` grid of about ``points`` combinations, every one valid."""
    n_slow = 25 if points >= 250 else max(2, points // 10)
    n_fast = max(1, points // n_slow)
    return {
        "fast": list(range(2, 2 + n_fast)),
        "slow": [50 + 10 * k + n_fast for k in range(n_slow)],
    }


def make_bot():
    import alphaswarm as aw

    return aw.Bot(
        name="bench-sweep",
        strategy="sma_cross",
        params={"fast": 10, "slow": 60},
        data={"feed": "synthetic", "seed": _common.SEED, "interval": "1m"},
    )


def run(label: str, grid: dict, bars: int, client=None, start_s: float | None = None) -> dict:
    from alphaswarm.sweep import sweep

    backend = "serial" if client is None else "dask"
    res = sweep(
        make_bot(), grid, bars=bars, backend=backend, client=client, ledger=False, progress=False
    )
    assert res.status == "done", res.error
    st = res.stats
    n = len(res.trials)
    return {
        "case": label,
        "workers": st.workers,
        "trials": n,
        "tasks": st.tasks,
        "mean_batch": n / st.tasks if st.tasks else None,
        "start_s": start_s,
        "ship_s": st.ship_seconds,
        "run_s": st.wall,
        "trials_per_s": n / st.wall if st.wall else None,
        "trial_ms": 1000 * st.trial_seconds,
        "compute_s": st.compute,
        "overhead_ms_per_trial": 1000 * st.overhead_per_trial,
        "note": "; ".join(res.notes),
        "_sharpe": res.trials.sort_values("trial_key")["sharpe"].tolist(),
    }


def start_tcp_cluster(workdir: Path) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` + ``dask worker --nworkers 2`` on 127.0.0.1; address and processes."""
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    port = _common.free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(workdir / "dask.log", "w")  # noqa: SIM115 - closed with the processes
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"]
            + ["--local-directory", str(workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    deadline = time.monotonic() + 120
    while True:
        try:
            with Client(address, timeout=5, set_as_default=False) as probe:
                probe.wait_for_workers(2, timeout=120)
            return address, procs
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def vectorbt_rows(grid: dict, bars: int) -> list[dict]:
    """The grid as a vectorbt MA crossover, cold then warm (empty when not installed)."""
    t0 = time.perf_counter()
    try:
        import vectorbt as vbt
    except ImportError:
        return []
    import_s = time.perf_counter() - t0
    import numpy as np
    import pandas as pd

    feed = make_bot().make_feed()
    frame = feed.frame(limit=bars)
    close = pd.Series(frame["close"].to_numpy(float), index=pd.to_datetime(frame["ts"]))
    combos = [(f, s) for f in grid["fast"] for s in grid["slow"]]
    chunk = max(1, int(2e7 // max(bars, 1)))  # ~160 MB per float array

    def once() -> tuple[float, list[float]]:
        t = time.perf_counter()
        sharpe: list[float] = []
        for i in range(0, len(combos), chunk):
            part = combos[i : i + chunk]
            fast = vbt.MA.run(close, window=[f for f, _ in part]).ma.to_numpy()
            slow = vbt.MA.run(close, window=[s for _, s in part]).ma.to_numpy()
            f, s = pd.DataFrame(fast, index=close.index), pd.DataFrame(slow, index=close.index)
            entries = f.vbt.crossed_above(s)
            exits = f.vbt.crossed_below(s)
            pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=100_000.0, freq="1min")
            sharpe.extend(np.asarray(pf.sharpe_ratio(), dtype=float).tolist())
        return time.perf_counter() - t, sharpe

    cold, _ = once()
    warm, _ = once()
    rows = []
    for label, wall in (("vectorbt, cold", cold + import_s), ("vectorbt, warm", warm)):
        rows.append(
            {
                "case": label,
                "workers": 1,
                "trials": len(combos),
                "run_s": wall,
                "trials_per_s": len(combos) / wall,
                "trial_ms": 1000 * wall / len(combos),
                "note": f"{len(combos)} columns in chunks of {chunk}"
                + (f"; import {import_s:.1f} s" if label.endswith("cold") else ""),
            }
        )
    return rows


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--points", type=int, help="grid points (default 1,000; --quick 100)")
    p.add_argument("--bars", type=int, help="one-minute bars (default 1,000,000; --quick 50,000)")
    p.add_argument("--no-vectorbt", action="store_true", help="skip vectorbt even if installed")
    args = p.parse_args()
    started = time.perf_counter()
    from distributed import Client, LocalCluster

    from alphaswarm.sweep.runner import close_clients

    points, bars = QUICK if args.quick else FULL
    points, bars = args.points or points, args.bars or bars
    grid = make_grid(points)
    rows = [run("serial", grid, bars)]

    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.wait_for_workers(2)
        rows.append(run("2 local workers", grid, bars, client, time.perf_counter() - t0))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        address, procs = start_tcp_cluster(Path(tmp))
        try:
            rows.append(run("tcp, 2 workers", grid, bars, address, time.perf_counter() - t0))
        finally:
            close_clients()
            stop(procs)

    for r in rows[1:]:
        assert r["_sharpe"] == rows[0]["_sharpe"], f"{r['case']}: metrics differ from serial"
    serial_s = rows[0]["run_s"]
    for r in rows:
        r.pop("_sharpe")
        r["speedup"] = serial_s / r["run_s"]
        r["efficiency"] = serial_s / (r["workers"] * r["run_s"])
    columns = [
        ("case", "case"),
        ("trials", "trials"),
        ("tasks", "tasks"),
        ("mean_batch", "trials/task"),
        ("start_s", "cluster start s"),
        ("ship_s", "ship bars s"),
        ("run_s", "run s"),
        ("trials_per_s", "trials/s"),
        ("trial_ms", "ms/trial"),
        ("speedup", "x serial"),
        ("efficiency", "efficiency"),
        ("overhead_ms_per_trial", "overhead ms/trial"),
    ]
    # the Dask rows first: the vectorbt runs at full size take long, and a run stopped
    # during them would otherwise print nothing
    print(_common.machine_line(), flush=True)
    first = _common.table(rows, columns, "sweep scaling, serial and Dask (vectorbt next)")
    print(first, flush=True)
    vbt = [] if args.no_vectorbt else vectorbt_rows(grid, bars)
    for r in vbt:
        r["speedup"] = serial_s / r["run_s"]
    n = rows[0]["trials"]
    print(_common.machine_line())
    print(
        _common.table(
            rows + vbt,
            columns,
            f"sweep scaling: {n:,} trials x {bars:,} one-minute bars "
            f"(fast {grid['fast'][0]}..{grid['fast'][-1]} x {len(grid['slow'])} slow windows)",
        )
    )
    print("\nefficiency = T_serial / (workers x T); overhead = (T x workers - compute) / trials")
    if not vbt and not args.no_vectorbt:
        print("vectorbt: not installed here (bench/requirements.txt installs it in bench/.venv)")
    for r in rows:
        if r.get("note"):
            print(f"note ({r['case']}): {r['note']}")
    _common.write_results(
        args.results_dir,
        "sweep_scaling",
        {"bars": bars, "grid": grid, "rows": rows, "vectorbt": vbt},
        started,
        args.quick,
    )


if __name__ == "__main__":
    main()
