"""Paper replay throughput: a PaperSession at speed 0 versus the backtest path, same bars.

The session runs the SMA 20/50 bot (qty 100) over ``ReplayFeed(frame)`` of seeded
synthetic minute bars, its ledger in a SQLite file (fills, orders, equity, frames
and the run row written in batches: a batch's ``bar.received`` and
``equity.update`` frames as one ``paper_frame_blocks`` row, its other frames as
``paper_frames`` rows; "frames in ledger" counts both, and must equal "frames
published"). Two session rows: with one sync subscriber on its FrameBus (every
envelope is built and delivered), and with nobody listening (the bar and equity
frames stay records, see ``alphaswarm.frame_records``, and their envelopes are
made when read back). The backtest path runs the same bot over the same bars with
``backtest(..., store=False)`` and with ``store=True`` (one ``backtest_runs`` row
in the same SQLite file).

Timed: ``session.start()`` (gate, run row, first batch) to ``session.wait()``
returning (final row committed); ``backtest(...)`` call for the backtest path.

bars/CPU-s counts the CPU time of every thread of the process (the session runs
on the engine loop's thread); on a shared machine it is the steadier figure.

Not covered here: frames/s received by a WebSocket client (``bench/ws_throughput.py``;
this measures the in-process FrameBus).

    python bench/paper_replay.py            # 100,000 bars
    python bench/paper_replay.py --quick    # 2,000 bars
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import SEED, load, machine_line, parser, peak_rss_mib, table, write_results

NAME = "paper_replay"
FAST, SLOW, QTY = 20, 50, 100
CASH = 10_000_000.0


def session_run(aw: Any, ledger: Any, bot: Any, frame: Any, listened: bool) -> dict[str, Any]:
    """One ``PaperSession(speed=0)`` over ``frame``.

    With ``listened`` a sync subscriber counts every frame (so every envelope is
    built); without, nobody listens (the bar and equity frames stay records until
    they are read back).
    """
    from alphaswarm.data import ReplayFeed

    stages: Counter[str] = Counter()
    feed = ReplayFeed(frame, interval="1m", calendar="equities")
    session = aw.PaperSession(
        bot,
        speed=0,
        duration_minutes=None,
        feed=feed,
        ledger=ledger,
        starting_cash=CASH,
        force=True,
        reason="benchmark: gate not under test",
    )
    if listened:
        session.frames.subscribe(lambda f, stages=stages: stages.update((f["stage"],)))
    load_before = load()
    c0, t0 = time.process_time(), time.perf_counter()
    session.start()
    finished = session.wait(timeout=3600)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0  # all threads: the session runs on the engine loop
    run = ledger.get_run(session.paper_run_id) or {}
    n_frames = int(
        ledger.sql(
            "SELECT (SELECT COUNT(*) FROM paper_frames WHERE paper_run_id = :r) + "
            "(SELECT COALESCE(SUM(frames), 0) FROM paper_frame_blocks "
            "WHERE paper_run_id = :r) AS n",
            r=session.paper_run_id,
        )["n"].iloc[0]
    )
    published = session.frames.published
    return {
        "path": "PaperSession(speed=0)" + (", 1 listener" if listened else ", no listener"),
        "bars": session.bars_seen,
        "wall_s": wall,
        "bars_per_s": session.bars_seen / wall,
        "bars_per_cpu_s": session.bars_seen / cpu,
        "fills": session.num_fills,
        "final_equity": session.equity,
        "frames_received": sum(stages.values()) if listened else None,
        "frames_published": published,
        "frames_per_s": published / wall,
        "frames_in_ledger": n_frames,
        "status": run.get("status"),
        "finished": finished,
        "stages": dict(stages),
        "load_before": load_before,
    }


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--bars", type=int, default=None, help="bars to replay (default 100,000)")
    p.add_argument("--repeat", type=int, default=1, help="runs per path (best kept)")
    args = p.parse_args()
    bars = args.bars or (2_000 if args.quick else 100_000)
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)

    import alphaswarm as aw
    from alphaswarm.data import ReplayFeed, SyntheticFeed

    print(f"{NAME}: SMA {FAST}/{SLOW} bot, {bars:,} one-minute bars, SQLite ledger file")
    print(machine_line())
    frame = SyntheticFeed(["DEMO"], seed=SEED, bars=bars).frame()
    bot = aw.Bot(
        name="bench-paper",
        strategy="sma_cross",
        params={"fast": FAST, "slow": SLOW, "qty": QTY},
        universe=["DEMO"],
        risk={"kill_switch_attached": True},
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-paper-") as tmp:
        db = Path(tmp) / "ledger.db"
        ledger = aw.Ledger(url=f"sqlite:///{db}")
        ledger.ensure_schema()
        aw.set_ledger(ledger)
        repeat = max(args.repeat, 1)

        def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
            row = min(runs, key=lambda r: r["wall_s"])
            row["runs_wall_s"] = [round(r["wall_s"], 3) for r in runs]
            return row

        for store in (False, True):
            runs = []
            for _ in range(repeat):
                feed = ReplayFeed(frame, interval="1m", calendar="equities")
                load_before = load()
                c0, t0 = time.process_time(), time.perf_counter()
                res = aw.backtest(bot, feed=feed, store=store, ledger=ledger, starting_cash=CASH)
                wall = time.perf_counter() - t0
                cpu = time.process_time() - c0
                runs.append(
                    {
                        "path": f"backtest(store={store})",
                        "bars": res.bars,
                        "wall_s": wall,
                        "bars_per_s": res.bars / wall,
                        "bars_per_cpu_s": res.bars / cpu,
                        "fills": len(res.fills),
                        "final_equity": float(res.equity["equity"].iloc[-1]),
                        "load_before": load_before,
                    }
                )
            rows.append(best(runs))
            print(f"  {rows[-1]['path']:28s} {rows[-1]['bars_per_s']:>10,.0f} bars/s", flush=True)

        for listened in (True, False):
            runs = [session_run(aw, ledger, bot, frame, listened) for _ in range(repeat)]
            rows.append(best(runs))
            r = rows[-1]
            print(
                f"  {r['path']:28s} {r['bars_per_s']:>10,.0f} bars/s  "
                f"{r['frames_per_s']:,.0f} frames/s  status {r['status']}",
                flush=True,
            )
        ledger.close()
        aw.set_ledger(None)
        db_mib = sum(f.stat().st_size for f in Path(tmp).glob("ledger.db*")) / 2**20

    ref = rows[0]
    for r in rows:
        r["vs_backtest"] = r["bars_per_s"] / ref["bars_per_s"]
        r["vs_backtest_cpu"] = r["bars_per_cpu_s"] / ref["bars_per_cpu_s"]
        r["fills_match"] = r["fills"] == ref["fills"]
        r["equity_match"] = abs(r["final_equity"] - ref["final_equity"]) < 1e-6
    columns = [
        ("path", "path"),
        ("bars", "bars"),
        ("bars_per_s", "bars/s"),
        ("wall_s", "wall s"),
        ("bars_per_cpu_s", "bars/CPU-s"),
        ("vs_backtest", "÷ backtest (wall)"),
        ("vs_backtest_cpu", "÷ backtest (CPU)"),
        ("fills", "fills"),
        ("fills_match", "same fills"),
        ("equity_match", "same equity"),
        ("frames_received", "frames received"),
        ("frames_published", "frames published"),
        ("frames_per_s", "frames/s"),
        ("frames_in_ledger", "frames in ledger"),
    ]
    print(table(rows, columns, "Paper replay at speed 0 vs backtest (same bars)"))
    print(f"\nSQLite ledger (db + WAL) after the runs: {db_mib:.1f} MiB")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    write_results(
        args.results_dir,
        NAME,
        {"bars": bars, "rows": rows, "ledger_mib": db_mib, "peak_rss_mib": peak_rss_mib()},
        started,
        args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
