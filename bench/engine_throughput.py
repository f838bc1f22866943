"""Engine throughput: one SMA crossover, the same bars, four engines side by side.

Strategy (identical everywhere): SMA 20/50 crossover on the close, long only,
fixed size 100 units; a ``buy`` when the fast SMA turns above the slow one, a
``sell`` (close the long) when it turns below; market orders placed at a bar's
close fill at the NEXT bar's open; no commission, no slippage; 10,000,000 cash
(never binding). The signal rule is alphaswarm's ``sma_cross``: a cross is a change
of sign of (fast - slow) between two non-zero readings, so the first reading after the
50-bar warm-up is never a cross (the common definition).

Bars: ``SyntheticFeed(symbols, seed=7, bars=N).frame()`` generated once per case
in this (parent) process, saved to a temporary ``.npz``, and loaded by every
engine, each in a fresh subprocess (so peak RSS is per engine).

Engines:

* alphaswarm -- ``backtest(bot, feed=ReplayFeed(frame), store=False)`` as a user writes it
  (interval and calendar inferred, nothing passed): ``engine="auto"``,
  which takes the vectorized path for ``sma_cross`` (array signals; the engine's own
  sizing, risk checks and broker run only at bars with a signal or an open order);
* alphaswarm-event -- the same call with ``engine="event"``: ``Engine.step`` bar by bar,
  as a paper session runs (same fills and P&L as the row above);
* alphaswarm-parquet, alphaswarm-csv -- the same, from ``ReplayFeed.from_parquet(path)`` /
  ``ReplayFeed.from_csv(path)``; the timed part includes reading the file (written once,
  untimed, before the run);
* backtrader -- ``Cerebro(stdstats=False)``, ``PandasData``, ``bt.ind.SMA``, default
  broker (market orders fill at the next bar's open), one Cerebro for all symbols;
* backtesting.py -- ``Backtest(trade_on_close=False)`` (market orders fill at the
  next open), SMAs via ``Strategy.I``; single-asset, so one run per symbol;
* plain -- a plain Python loop with incremental sums (the floor).

Timed: from the engine's input DataFrame(s) to its result in hand (feed
validation, indicator set-up, the bar loop, the engine's own result/stats
building). Not timed: loading the ``.npz`` and shaping the DataFrames (``prep``).

    python bench/engine_throughput.py            # 200k, 1M, 20 x 50k
    python bench/engine_throughput.py --quick    # 5k, 2 x 2k
    python bench/engine_throughput.py --profile  # pyinstrument/cProfile of alphaswarm, 200k
    python bench/engine_throughput.py --frameworks alphaswarm,alphaswarm-event,plain
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    SEED,
    current_rss_mib,
    load,
    machine_line,
    parser,
    peak_rss_mib,
    table,
    write_results,
)

NAME = "engine_throughput"
FAST, SLOW, QTY = 20, 50, 100
CASH = 10_000_000.0
RESYNC_EVERY = 10_000  # alphaswarm's SmaCross re-sums its windows exactly every 10k bars
FRAMEWORKS = (
    "alphaswarm",
    "alphaswarm-parquet",
    "alphaswarm-csv",
    "alphaswarm-event",
    "backtrader",
    "backtesting",
    "plain",
)
#: The rows the ratio table is about, and the peers each is divided by.
OURS = ("alphaswarm", "alphaswarm-parquet", "alphaswarm-csv", "alphaswarm-event")
PEERS = ("alphaswarm-event", "backtrader", "backtesting", "plain")
MODULES = {
    "alphaswarm": "alphaswarm",
    "alphaswarm-parquet": "pyarrow",
    "alphaswarm-csv": "alphaswarm",
    "alphaswarm-event": "alphaswarm",
    "backtrader": "backtrader",
    "backtesting": "backtesting",
}
FULL_CASES = [(1, 200_000), (1, 1_000_000), (20, 50_000)]
QUICK_CASES = [(1, 5_000), (2, 2_000)]
RESULT_MARK = "RESULT:"

FILL_NOTES = """\
Fill conventions (why counts may differ):
- alphaswarm: a market order placed on bar t fills at bar t+1's open (SimulatedBroker, no
  slippage); the first signal is possible on bar 50 (index 49), once the 50-bar window is full.
  Both paths (alphaswarm = vectorized, alphaswarm-event = bar by bar) give identical fills,
  equity and P&L (tests/engine/test_vectorized.py checks it bit for bit).
- backtrader: default broker (no cheat-on-open, no coc) fills a market order at the next
  bar's open; next() starts once both SMAs have their period (bar 50), as alphaswarm.
- backtesting.py: trade_on_close=False fills market orders at the next bar's open; next()
  starts one bar later than the others (warm-up + 1), so its first reading is one bar
  later. Open trades at the end are not closed
  (finalize_trades=False) and are counted as one fill.
- plain: same rule and the same running sums (re-summed every 10k bars) as alphaswarm.
- An order placed on the very last bar never fills anywhere (there is no next open).
- Remaining differences come from floating point: the engines compute the SMAs differently
  (running sums, math.fsum windows, pandas rolling means), so a bar where fast == slow to
  ~1e-12 can flip one engine's sign and shift or add a cross."""


# --------------------------------------------------------------------------- data


def symbols_for(k: int) -> list[str]:
    return ["DEMO"] if k == 1 else [f"S{i:02d}" for i in range(k)]


def case_name(k: int, n: int) -> str:
    return f"{k} x {n:,}"


def make_data(k: int, n: int, path: Path) -> float:
    """Generate the case's bars once and save the arrays; return seconds taken."""
    from alphaswarm.data import SyntheticFeed

    t0 = time.perf_counter()
    frame = SyntheticFeed(symbols_for(k), seed=SEED, bars=n).frame()
    np.savez(
        path,
        ts=frame["ts"].dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64),
        symbol=frame["symbol"].to_numpy().astype(str),
        open=frame["open"].to_numpy(),
        high=frame["high"].to_numpy(),
        low=frame["low"].to_numpy(),
        close=frame["close"].to_numpy(),
        volume=frame["volume"].to_numpy(),
    )
    return time.perf_counter() - t0


def load_data(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {key: z[key] for key in z.files}


def per_symbol(data: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Split the long (ts, symbol)-sorted arrays into one set of arrays per symbol."""
    out = {}
    for sym in sorted(set(data["symbol"].tolist())):
        mask = data["symbol"] == sym
        out[sym] = {key: data[key][mask] for key in data if key != "symbol"}
    return out


# --------------------------------------------------------------------------- engines


def run_alphaswarm(
    data: dict[str, np.ndarray], engine: str = "auto", source: str = "frame"
) -> tuple[Any, Any]:
    import pandas as pd

    from alphaswarm import Bot, backtest
    from alphaswarm.data import ReplayFeed

    frame = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(data["ts"].view("M8[ns]")).tz_localize("UTC"),
            "symbol": data["symbol"].astype(object),
            **{c: data[c] for c in ("open", "high", "low", "close", "volume")},
        }
    )
    symbols = sorted(set(data["symbol"].tolist()))
    bot = Bot(
        name="bench-sma",
        strategy="sma_cross",
        params={"fast": FAST, "slow": SLOW, "qty": QTY},
        universe=symbols,
    )

    path = None
    if source != "frame":  # written before the timed run; reading it is timed
        path = Path(tempfile.mkdtemp(prefix="alphaswarm-bench-")) / f"bars.{source}"
        if source == "parquet":
            frame.to_parquet(path)
        else:
            frame.to_csv(path, index=False)
        del frame

    def open_feed() -> Any:
        if source == "parquet":
            return ReplayFeed.from_parquet(path)
        if source == "csv":
            return ReplayFeed.from_csv(path)
        return ReplayFeed(frame)

    def run() -> dict[str, Any]:
        feed = open_feed()
        res = backtest(bot, feed=feed, store=False, starting_cash=CASH, engine=engine)
        fills = res.fills
        return {
            "fills": len(fills),
            "round_trips": int((fills["side"] == "sell").sum()) if len(fills) else 0,
            "pnl": float(res.equity["equity"].iloc[-1]) - CASH,
            "loop_s": res.elapsed,
            "path": res.config["engine"],
        }

    return run, None


def run_backtrader(data: dict[str, np.ndarray]) -> tuple[Any, Any]:
    import backtrader as bt
    import pandas as pd

    frames = {
        sym: pd.DataFrame(
            {c: a[c] for c in ("open", "high", "low", "close", "volume")},
            index=pd.DatetimeIndex(a["ts"].view("M8[ns]")),
        )
        for sym, a in per_symbol(data).items()
    }

    class SmaCrossBT(bt.Strategy):
        params = (("fast", FAST), ("slow", SLOW), ("qty", QTY))

        def __init__(self) -> None:
            self.state = [
                [
                    d,
                    bt.ind.SMA(d.close, period=self.p.fast),
                    bt.ind.SMA(d.close, period=self.p.slow),
                    0,
                ]
                for d in self.datas
            ]
            self.fills = 0
            self.sells = 0

        def next(self) -> None:
            for st in self.state:
                d, f, s, prev = st
                diff = f[0] - s[0]
                sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
                if sign == 0 or sign == prev:
                    continue
                st[3] = sign
                if prev == 0:  # the first reading is not a cross
                    continue
                if sign > 0:
                    self.buy(data=d, size=self.p.qty)
                else:
                    self.close(data=d)

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                self.fills += 1
                self.sells += order.issell()

    def run() -> dict[str, Any]:
        cerebro = bt.Cerebro(stdstats=False)
        for sym, df in frames.items():
            cerebro.adddata(bt.feeds.PandasData(dataname=df, openinterest=None), name=sym)
        cerebro.addstrategy(SmaCrossBT)
        cerebro.broker.setcash(CASH)
        cerebro.broker.setcommission(commission=0.0)
        strat = cerebro.run()[0]
        return {
            "fills": strat.fills,
            "round_trips": strat.sells,
            "pnl": cerebro.broker.getvalue() - CASH,
        }

    return run, None


def run_backtesting(data: dict[str, np.ndarray]) -> tuple[Any, Any]:
    import pandas as pd
    from backtesting import Backtest, Strategy

    frames = {
        sym: pd.DataFrame(
            {
                "Open": a["open"],
                "High": a["high"],
                "Low": a["low"],
                "Close": a["close"],
                "Volume": a["volume"],
            },
            index=pd.DatetimeIndex(a["ts"].view("M8[ns]")),
        )
        for sym, a in per_symbol(data).items()
    }

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    class SmaCrossBTP(Strategy):
        fast, slow, qty = FAST, SLOW, QTY

        def init(self) -> None:
            self.f = self.I(sma, self.data.Close, self.fast)
            self.s = self.I(sma, self.data.Close, self.slow)
            self.prev = 0

        def next(self) -> None:
            diff = self.f[-1] - self.s[-1]
            sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
            prev = self.prev
            if sign == 0 or sign == prev:
                return
            self.prev = sign
            if prev == 0:  # the first reading is not a cross
                return
            if sign > 0:
                self.buy(size=self.qty)
            else:
                self.position.close()

    def run() -> dict[str, Any]:
        fills = trips = 0
        pnl = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "some trades remain open at the end"
            for df in frames.values():
                stats = Backtest(
                    df,
                    SmaCrossBTP,
                    cash=CASH,
                    commission=0.0,
                    trade_on_close=False,
                    exclusive_orders=False,
                    finalize_trades=False,
                ).run()
                closed = len(stats["_trades"])
                fills += 2 * closed + len(stats["_strategy"].trades)
                trips += closed
                pnl += float(stats["Equity Final [$]"]) - CASH
        return {"fills": fills, "round_trips": trips, "pnl": pnl}

    return run, None


def plain_loop(o: list[float], c: list[float]) -> tuple[int, int, float, list[float]]:
    """SMA cross over one symbol's bars: fills, sells, P&L, equity curve."""
    fast, slow, qty = FAST, SLOW, QTY
    buf = [0.0] * slow
    n = 0
    sf = ss = 0.0
    prev = 0
    pending = 0.0
    pos = 0.0
    cash = 0.0
    fills = sells = 0
    equity = []
    append = equity.append
    fsum = math.fsum
    for i in range(len(c)):
        if pending:
            cash -= pending * o[i]
            pos += pending
            fills += 1
            sells += pending < 0
            pending = 0.0
        x = c[i]
        p = n % slow
        if n >= slow:
            ss -= buf[p]
        if n >= fast:
            sf -= buf[(n - fast) % slow]
        buf[p] = x
        ss += x
        sf += x
        n += 1
        if n % RESYNC_EVERY == 0:
            ss = fsum(buf)
            sf = fsum(buf[(n - k) % slow] for k in range(1, fast + 1))
        append(cash + pos * x)
        if n < slow:
            continue
        diff = sf * slow - ss * fast
        sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
        if sign == 0 or sign == prev:
            continue
        first = prev == 0
        prev = sign
        if first:  # the first reading is not a cross
            continue
        pending = qty - pos if sign > 0 else -pos
    return fills, sells, cash + pos * c[-1], equity


def run_plain(data: dict[str, np.ndarray]) -> tuple[Any, Any]:
    arrays = per_symbol(data)

    def run() -> dict[str, Any]:
        fills = trips = 0
        pnl = 0.0
        for a in arrays.values():
            f, s, p, _ = plain_loop(a["open"].tolist(), a["close"].tolist())
            fills, trips, pnl = fills + f, trips + s, pnl + p
        return {"fills": fills, "round_trips": trips, "pnl": pnl}

    return run, None


def run_alphaswarm_event(data: dict[str, np.ndarray]) -> tuple[Any, Any]:
    return run_alphaswarm(data, engine="event")


def run_alphaswarm_parquet(data: dict[str, np.ndarray]) -> tuple[Any, Any]:
    return run_alphaswarm(data, source="parquet")


def run_alphaswarm_csv(data: dict[str, np.ndarray]) -> tuple[Any, Any]:
    return run_alphaswarm(data, source="csv")


RUNNERS = {
    "alphaswarm": run_alphaswarm,
    "alphaswarm-parquet": run_alphaswarm_parquet,
    "alphaswarm-csv": run_alphaswarm_csv,
    "alphaswarm-event": run_alphaswarm_event,
    "backtrader": run_backtrader,
    "backtesting": run_backtesting,
    "plain": run_plain,
}


def worker(framework: str, data_path: Path) -> dict[str, Any]:
    """Run one engine over one case (in its own process) and measure it."""
    t0 = time.perf_counter()
    data = load_data(data_path)
    bars = len(data["ts"])
    run, _ = RUNNERS[framework](data)
    prep = time.perf_counter() - t0
    rss_before = current_rss_mib()
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = run()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = peak_rss_mib()
    return {
        "bars": bars,
        "prep_s": prep,
        "wall_s": wall,
        "bars_per_s": bars / wall,
        "cpu_s": cpu,
        "bars_per_cpu_s": bars / cpu,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak,
        "run_rss_mib": peak - rss_before,
        **out,
    }


# --------------------------------------------------------------------------- parent


def available(framework: str) -> bool:
    module = MODULES.get(framework)
    return module is None or importlib.util.find_spec(module) is not None


def spawn(framework: str, data_path: Path, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, str(data_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{framework} worker failed ({proc.returncode}): " + " | ".join(tail))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    raise RuntimeError(f"{framework} worker printed no result")


def run_case(
    k: int,
    n: int,
    frameworks: list[str],
    repeat: int,
    tmp: Path,
    timeout: float,
    repeat_limit: float = 30.0,
) -> list[dict[str, Any]]:
    data_path = tmp / f"bars_{k}x{n}.npz"
    gen_s = make_data(k, n, data_path)
    print(f"\n{case_name(k, n)}: generated {k * n:,} bars in {gen_s:.1f} s", flush=True)
    rows = []
    for fw in frameworks:
        row: dict[str, Any] = {"case": case_name(k, n), "framework": fw, "symbols": k}
        if not available(fw):
            row["note"] = f"skipped: {MODULES[fw]} not installed here (bash bench/setup.sh)"
            print(f"  {fw:12s} {row['note']}", flush=True)
            rows.append(row)
            continue
        runs = []
        for _ in range(repeat):
            load_before = load()
            try:
                r = spawn(fw, data_path, timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                row["note"] = f"failed: {exc}"
                break
            r["load_before"] = load_before
            runs.append(r)
            print(
                f"  {fw:12s} {r['bars_per_s']:>12,.0f} bars/s  {r['wall_s']:7.2f} s  "
                f"({r['bars_per_cpu_s']:,.0f}/CPU-s)  "
                f"peak {r['peak_rss_mib']:6.0f} MiB  fills {r['fills']:,}  "
                f"pnl {r['pnl']:,.2f}  load {load_before}",
                flush=True,
            )
            if r["wall_s"] > repeat_limit:
                break  # long runs are not repeated (their noise is small relative to them)
        if runs:
            best = min(runs, key=lambda r: r["wall_s"])
            row.update(best)
            row["runs_wall_s"] = [round(r["wall_s"], 3) for r in runs]
            if len(runs) > 1:
                row["spread"] = (max(row["runs_wall_s"]) - best["wall_s"]) / best["wall_s"]
        else:
            print(f"  {fw:12s} {row['note']}", flush=True)
        rows.append(row)
    ref = next((r for r in rows if r["framework"] == "alphaswarm" and "fills" in r), None)
    for r in rows:
        if ref is not None and "fills" in r:
            r["fills_vs_alphaswarm"] = r["fills"] - ref["fills"]
            r["pnl_vs_alphaswarm"] = r["pnl"] - ref["pnl"]
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case and alphaswarm path: its bars/s divided by each peer's (wall and CPU)."""
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        case_rows = {r["framework"]: r for r in rows if r["case"] == case and "bars_per_s" in r}
        for ours in OURS:
            me = case_rows.get(ours)
            if me is None:
                continue
            line: dict[str, Any] = {"case": case, "engine": ours}
            for fw in PEERS:
                peer = case_rows.get(fw)
                for key, suffix in (("bars_per_s", ""), ("bars_per_cpu_s", "_cpu")):
                    ok = peer is not None and fw != ours
                    line[fw + suffix] = me[key] / peer[key] if ok else None
            out.append(line)
    return out


def profile(results_dir: Path, n: int) -> None:
    """Profile alphaswarm's backtest over ``n`` bars (pyinstrument if installed, and cProfile)."""
    import cProfile
    import io
    import pstats

    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    path = tmp / "bars.npz"
    make_data(1, n, path)
    run, _ = run_alphaswarm(load_data(path))
    run()  # warm imports and caches
    results_dir.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("pyinstrument") is not None:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        out = run()
        prof.stop()
        text = prof.output_text(unicode=False, color=False, show_all=False)
        (results_dir / "engine_profile_pyinstrument.txt").write_text(text)
        print(text)
        print(f"pyinstrument run: {out}")
    pr = cProfile.Profile(time.process_time)  # CPU time: robust to others' load
    pr.enable()
    out = run()
    pr.disable()
    buf = io.StringIO()
    stats = pstats.Stats(pr, stream=buf).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    (results_dir / "engine_profile_cprofile.txt").write_text(buf.getvalue())
    print(buf.getvalue())
    print(f"cProfile run (with profiler overhead): {out}")


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset")
    p.add_argument("--repeat", type=int, default=1, help="runs per engine and case (best kept)")
    p.add_argument(
        "--repeat-limit", type=float, default=30.0, help="do not repeat runs longer than this (s)"
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per engine run")
    p.add_argument("--profile", action="store_true", help="profile alphaswarm on 200k bars")
    p.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "NPZ"), help=argparse_hidden())
    args = p.parse_args()
    if args.worker:
        fw, path = args.worker
        print(RESULT_MARK + json.dumps(worker(fw, Path(path))))
        return 0
    if args.profile:
        profile(args.results_dir, 5_000 if args.quick else 200_000)
        return 0
    started = time.perf_counter()
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown:
        p.error(f"--frameworks: unknown {', '.join(unknown)}; known: {', '.join(FRAMEWORKS)}")
    cases = QUICK_CASES if args.quick else FULL_CASES
    print(f"{NAME}: SMA {FAST}/{SLOW} cross, qty {QTY}, next-open fills, no costs")
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        rows = []
        for k, n in cases:
            rows += run_case(
                k, n, frameworks, max(args.repeat, 1), Path(tmp), args.timeout, args.repeat_limit
            )
    columns = [
        ("case", "case (symbols x bars)"),
        ("framework", "engine"),
        ("path", "path"),
        ("bars_per_s", "bars/s"),
        ("wall_s", "wall s"),
        ("bars_per_cpu_s", "bars/CPU-s"),
        ("peak_rss_mib", "peak RSS MiB"),
        ("run_rss_mib", "+RSS in run"),
        ("fills", "fills"),
        ("round_trips", "round trips"),
        ("fills_vs_alphaswarm", "Δfills"),
        ("pnl", "P&L"),
        ("note", "note"),
    ]
    print(table(rows, columns, "Engine throughput (timed: input DataFrame -> result)"))
    ratio_rows = ratios(rows)
    print(
        table(
            ratio_rows,
            [
                ("case", "case"),
                ("engine", "engine"),
                *((fw, f"÷ {fw} (wall)") for fw in PEERS),
                *((fw + "_cpu", f"÷ {fw} (CPU)") for fw in PEERS),
            ],
            "alphaswarm bars/s ÷ peer bars/s (>1 = alphaswarm faster; CPU = per CPU-second,"
            " less sensitive to other load on the machine)",
        )
    )
    print("\n" + FILL_NOTES)
    write_results(
        args.results_dir,
        NAME,
        {
            "strategy": {"fast": FAST, "slow": SLOW, "qty": QTY, "cash": CASH, "seed": SEED},
            "cases": [case_name(k, n) for k, n in cases],
            "rows": rows,
            "ratios": ratio_rows,
            "notes": FILL_NOTES,
            "cpu_count": os.cpu_count(),
            "median_load_1m": statistics.median(
                [r["load_before"][0] for r in rows if r.get("load_before")] or [0.0]
            ),
        },
        started,
        args.quick,
    )
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
