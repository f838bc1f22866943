"""Sweep scaling: trials/s in this process, on 1 and on 2 Dask worker processes.

One grid of SMA-crossover trials (``sma_cross``, one symbol of one-minute synthetic
bars, seed 7) runs three ways with identical metrics (checked):

* serial -- ``sweep(..., backend="serial")`` in this process;
* 1 worker / 2 workers -- a ``LocalCluster(n_workers=k, threads_per_worker=1,
  processes=True)``, warmed up by a small sweep first (imports, data cache).

Reported: wall seconds, trials/s, scaling efficiency ``T1 / (2 * T2)`` and the
per-task overhead ``(wall x workers - compute) / tasks`` (client, scheduler,
transfer and idle time per task; trials are batched into ~1 s tasks). A second
measurement sends tiny trials one per task (``target_seconds=0``) to expose the
per-task round trip of the scheduler.

    python bench/sweep_scaling.py            # 96 trials x 20,000 bars
    python bench/sweep_scaling.py --quick    # 24 trials x 4,000 bars
"""

from __future__ import annotations

import time

import _common

GRIDS = {
    False: (
        {
            "fast": [3, 5, 8, 10, 12, 15, 20, 25],
            "slow": [30, 40, 50, 60, 80, 100],
            "allocation": [0.2, 0.5],
        },
        20_000,
    ),
    True: ({"fast": [3, 5, 8, 10, 12, 15], "slow": [30, 60], "allocation": [0.2, 0.5]}, 4_000),
}
TINY_GRID = {"fast": list(range(2, 22)), "slow": [30, 40, 50, 60, 80]}
TINY_BARS = 100


def make_bot():
    import alphaswarm as aw

    return aw.Bot(
        name="bench-sweep",
        strategy="sma_cross",
        params={"fast": 10, "slow": 30},
        data={"feed": "synthetic", "seed": _common.SEED, "interval": "1m"},
    )


def run(label: str, workers: int, grid: dict, bars: int, client=None, **kw) -> dict:
    from alphaswarm.sweep import sweep

    backend = "serial" if client is None else "dask"
    t0 = time.perf_counter()
    res = sweep(
        make_bot(),
        grid,
        bars=bars,
        backend=backend,
        client=client,
        ledger=False,
        progress=False,
        **kw,
    )
    wall = time.perf_counter() - t0
    st = res.stats
    n = len(res.trials)
    return {
        "case": label,
        "workers": workers,
        "trials": n,
        "tasks": st.tasks,
        "mean_batch": n / st.tasks if st.tasks else None,
        "wall_s": wall,
        "run_s": st.wall,
        "trials_per_s": n / st.wall if st.wall else None,
        "compute_s": st.compute,
        "overhead_ms_per_task": 1000 * st.overhead_per_task,
        "_sharpe": res.trials.sort_values("trial_key")["sharpe"].tolist(),
    }


def main() -> None:
    args = _common.parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    from distributed import Client, LocalCluster

    grid, bars = GRIDS[args.quick]
    rows = [run("serial", 1, grid, bars)]
    tiny = []
    for k in (1, 2):
        with (
            LocalCluster(
                n_workers=k, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(k)
            run("warm-up", k, {"fast": [5, 10], "slow": [30]}, bars, client=client)
            rows.append(run(f"{k} worker{'s' * (k > 1)}", k, grid, bars, client=client))
            tiny.append(
                run(
                    f"tiny, {k} worker{'s' * (k > 1)}",
                    k,
                    TINY_GRID,
                    TINY_BARS,
                    client=client,
                    target_seconds=0.0,
                )
            )
    for r in rows[1:]:
        assert r["_sharpe"] == rows[0]["_sharpe"], "metrics differ from the serial run"
    t1, t2 = rows[1]["run_s"], rows[2]["run_s"]
    efficiency = t1 / (2 * t2)
    for r in rows + tiny:
        r.pop("_sharpe")
    columns = [
        ("case", "case"),
        ("trials", "trials"),
        ("tasks", "tasks"),
        ("mean_batch", "trials/task"),
        ("run_s", "run s"),
        ("trials_per_s", "trials/s"),
        ("compute_s", "compute s"),
        ("overhead_ms_per_task", "overhead ms/task"),
    ]
    print(_common.machine_line())
    print(
        _common.table(
            rows + tiny,
            columns,
            f"sweep scaling: {rows[0]['trials']} trials x {bars:,} one-minute bars",
        )
    )
    print(f"\nscaling efficiency T1 / (2 * T2) = {t1:.2f} / (2 * {t2:.2f}) = {efficiency:.2f}")
    _common.write_results(
        args.results_dir,
        "sweep_scaling",
        {
            "bars_per_trial": bars,
            "grid": grid,
            "rows": rows,
            "tiny": tiny,
            "tiny_bars": TINY_BARS,
            "scaling_efficiency": efficiency,
        },
        started,
        args.quick,
    )


if __name__ == "__main__":
    main()
