"""``alphaswarm sweep run|resume|status|top|rerun``: parameter sweeps from the terminal.

Wire it into the main parser with :func:`add_parser`::

    from alphaswarm.cli import sweep as sweep_cli
    sweep_cli.add_parser(subparsers)

Every leaf sets ``func`` to a handler that takes the parsed arguments and returns an
exit code, raising :class:`~alphaswarm.cli.errors.CliError` for readable errors.

``sweep run`` and ``sweep resume`` print their own lines: where the trials run and
the Dask dashboard's link first, then a progress bar, then the results. Dask's own
INFO logs (cluster start and stop) show only with ``-v``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphaswarm.cli.errors import EXIT_INTERRUPTED, EXIT_OK, CliError
from alphaswarm.cli.output import print_kv, print_table, to_json

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alphaswarm.ledger import Ledger
    from alphaswarm.sweep.api import SweepResult

__all__ = [
    "add_parser",
    "cmd_sweep_rerun",
    "cmd_sweep_resume",
    "cmd_sweep_run",
    "cmd_sweep_status",
    "cmd_sweep_top",
    "parse_grid",
]

EXAMPLES = """\
examples:
  alphaswarm sweep run bot.yaml --grid fast=5,10,20 --grid slow=30,60 --bars 5000
  alphaswarm sweep run bot.yaml --grid fast=5:40:5 --samples 20 --scheduler tcp://10.0.0.5:8786
  alphaswarm sweep status                      # every sweep
  alphaswarm sweep top NAME -n 5
  alphaswarm sweep resume NAME --workers 8
  alphaswarm sweep rerun NAME KEYPREFIX --out trial/   # equity.csv, trades.csv, fills.csv
"""


def _value(text: str) -> Any:
    import yaml

    value = yaml.safe_load(text)
    return value if isinstance(value, int | float | str | bool) or value is None else text


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """Parse ``--grid name=v1,v2,...`` (or ``name=start:stop:step``) options into a grid.

    Examples
    --------
    >>> parse_grid(["fast=5,10", "slow=20:40:10"])
    {'fast': [5, 10], 'slow': [20, 30]}
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise CliError(f"--grid {item!r}: expected NAME=V1,V2,... or NAME=START:STOP:STEP")
        parts = values.split(":")
        if len(parts) == 3 and "," not in values:
            try:
                start, stop, step = (_number(p) for p in parts)
            except ValueError:
                raise CliError(f"--grid {item!r}: START:STOP:STEP must be numbers") from None
            if step <= 0:
                raise CliError(f"--grid {item!r}: STEP must be > 0")
            seq, v = [], start
            while v < stop - 1e-12:
                seq.append(v)
                v = v + step
            grid[name.strip()] = seq
        else:
            grid[name.strip()] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def _number(text: str) -> int | float:
    import yaml

    value = yaml.safe_load(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(text)
    return value


def _ledger(args: argparse.Namespace) -> Ledger:
    from alphaswarm.cli.embedded import ledger_url
    from alphaswarm.paper.runtime import get_ledger, set_ledger

    db = getattr(args, "db", None)
    return set_ledger(ledger_url(db)) if db else get_ledger()


def _json(args: argparse.Namespace, value: Any) -> bool:
    if getattr(args, "json", False):
        sys.stdout.write(to_json(value) + "\n")
        return True
    return False


def _backend(args: argparse.Namespace) -> dict[str, Any]:
    if args.serial and args.scheduler:
        raise CliError("use --serial or --scheduler, not both")
    if args.serial:
        return {"backend": "serial"}
    if args.scheduler:
        return {"client": args.scheduler}
    return {"backend": "local", "n_workers": args.workers}


#: Loggers of Dask's cluster chatter, quiet in ``sweep run``/``resume`` unless ``-v``.
DASK_LOGGERS = ("distributed", "dask")


class _QuietDask(logging.Filter):
    """Drop Dask's records below WARNING (its loggers set their own levels to INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == n or record.name.startswith(n + ".") for n in DASK_LOGGERS)


@contextlib.contextmanager
def dask_logs(verbose: bool) -> Iterator[None]:
    """Dask's INFO logs reach the terminal only when ``verbose``, while the command runs.

    A filter on the root handlers, removed afterwards. The CLI owns its process, so it
    may do this; library code never touches logging configuration.
    """
    if verbose:
        yield
        return
    quiet = _QuietDask()
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(quiet)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(quiet)


def _summary(res: SweepResult) -> dict[str, Any]:
    report = {k: v for k, v in (res.report or {}).items() if not isinstance(v, dict)}
    best = res.best
    return {
        "name": res.name,
        "sweep_id": res.sweep_id,
        "status": res.status,
        "trials": res.progress.total,
        "resumed": res.progress.resumed,
        "failed": res.progress.failed,
        "best_params": res.best_params,
        "best_key": None if best is None else best["trial_key"],
        "best_metrics": {}
        if best is None
        else {k: best[k] for k in ("sharpe", "total_return", "max_drawdown", "num_trades")},
        "report": report,
        "where": res.where,
        "dashboard": res.dashboard,
        "notes": list(res.notes),
        "error": res.error,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    rep = summary["report"]
    print_kv(
        [
            ("sweep", f"{summary['name']} ({summary['sweep_id']})"),
            ("status", summary["status"]),
            (
                "trials",
                f"{summary['trials']} ({summary['resumed']} resumed, {summary['failed']} failed)",
            ),
            ("best", summary["best_params"]),
            ("best key", (summary["best_key"] or "-")[:16]),
            *summary["best_metrics"].items(),
            ("N (family)", rep.get("n_trials")),
            ("DSR", rep.get("dsr")),
            ("PBO", rep.get("pbo")),
            ("gate", _gate_text(rep)),
            *(("error", summary["error"]),) * bool(summary.get("error")),
        ]
    )
    for note in summary.get("notes") or ():
        sys.stdout.write(f"note: {note}\n")


def _gate_text(rep: dict[str, Any]) -> str:
    if rep.get("passes_gate"):
        return "passes (DSR >= 0.95 and PBO < 0.2)"
    return "fails: " + "; ".join(rep.get("gate_failures") or ["no report"])


def _header(res: SweepResult) -> None:
    """The first lines of ``sweep run``/``resume``: what runs where, and the dashboard."""
    p = res.progress
    resumed = f", {p.resumed} already finished" if p.resumed else ""
    sys.stdout.write(f"sweep {res.name}: {p.total} trials{resumed}, on {res.where}\n")
    if res.dashboard:
        sys.stdout.write(f"dashboard: {res.dashboard}\n")
    sys.stdout.flush()


def _interrupted(name: str) -> int:
    sys.stderr.write(
        "alphaswarm: sweep interrupted; finished trials are saved, "
        f"`alphaswarm sweep resume {name}` continues\n"
    )
    return EXIT_INTERRUPTED


def _follow(res: SweepResult, show: bool) -> None:
    """Wait for the sweep, drawing the command's own progress bar when ``show``."""
    bar = None
    if show:
        from tqdm import tqdm

        p = res.progress
        bar = tqdm(total=p.total, initial=p.finished, unit="trial", dynamic_ncols=True)
    try:
        while not res.done:
            res.wait(0.25)
            if bar is not None and res.progress.finished > bar.n:
                bar.set_postfix(failed=res.progress.failed, refresh=False)
                bar.update(res.progress.finished - bar.n)
        res.wait()
        if bar is not None and res.progress.finished > bar.n:
            bar.update(res.progress.finished - bar.n)
    finally:
        if bar is not None:
            bar.close()


def _run(args: argparse.Namespace, call: Any) -> int:
    """Start the sweep (``call`` passes ``wait=False``), print the header, follow, report."""
    quiet = getattr(args, "json", False)
    from alphaswarm.sweep.runner import close_clients

    with dask_logs(getattr(args, "verbose", False)):
        try:
            try:
                res = call()
            except KeyboardInterrupt:
                return _interrupted("NAME")
            if not quiet:
                _header(res)
            try:
                _follow(res, show=not quiet and not args.no_progress)
            except KeyboardInterrupt:
                res.cancel()
                res.wait()
                return _interrupted(res.name)
        finally:
            close_clients()  # the command's cluster stops with it (its logs stay quiet)
    summary = _summary(res)
    if not _json(args, summary):
        _print_summary(summary)
    return EXIT_OK if res.status == "done" else 1


def cmd_sweep_run(args: argparse.Namespace) -> int:
    """``alphaswarm sweep run BOT --grid ...``."""
    from alphaswarm.bots import Bot
    from alphaswarm.sweep import sweep

    grid = parse_grid(args.grid or [])
    if not grid:
        raise CliError("sweep run: give at least one --grid NAME=V1,V2,...")
    bot = Bot.load(args.bot)
    ledger = _ledger(args)
    return _run(
        args,
        lambda: sweep(
            bot,
            grid,
            samples=args.samples,
            seed=args.seed,
            start=args.start,
            end=args.end,
            bars=args.bars,
            objective=args.objective,
            name=args.name,
            ledger=ledger,
            progress=False,  # the command draws its own bar (see _follow)
            wait=False,
            **_backend(args),
        ),
    )


def _sweep_row(ledger: Ledger, name: str) -> dict[str, Any]:
    from alphaswarm.sweep.ledger import SweepStore

    row = SweepStore(ledger).get(name)
    if row is None:
        raise CliError(f"unknown sweep {name!r}", hint="see `alphaswarm sweep status`")
    return row


def cmd_sweep_resume(args: argparse.Namespace) -> int:
    """``alphaswarm sweep resume NAME``: run the trials a sweep has not finished."""
    from alphaswarm.bots import Bot
    from alphaswarm.sweep import sweep, walk_forward

    ledger = _ledger(args)
    row = _sweep_row(ledger, args.name)
    cfg = row["config"] or {}
    if cfg.get("client_data"):
        raise CliError(
            f"sweep {row['name']!r} ran on data that existed only in its notebook",
            hint="resume it there: call sweep(...) again with the same name",
        )
    bot = Bot(cfg["bot"])
    common = {
        "start": cfg.get("start"),
        "end": cfg.get("end"),
        "bars": cfg.get("bars"),
        "objective": cfg.get("objective") or "sharpe",
        "name": row["name"],
        "ledger": ledger,
        "starting_cash": cfg.get("starting_cash", 100_000.0),
        "progress": not args.no_progress and not getattr(args, "json", False),
        **_backend(args),
    }
    if cfg.get("kind") == "walk_forward":
        with dask_logs(getattr(args, "verbose", False)):
            wf = _walk_forward_resume(walk_forward, bot, cfg, common)
        if not _json(args, wf.folds.to_dict("records")):
            print_table(
                wf.folds.to_dict("records"),
                tuple(c for c in wf.folds.columns if c not in ("oos_key", "is_start", "is_end")),
            )
        return EXIT_OK
    return _run(
        args,
        lambda: sweep(
            bot,
            cfg["grid"],
            samples=cfg.get("samples"),
            seed=cfg.get("seed", 0),
            wait=False,
            **{**common, "progress": False},
        ),
    )


def _walk_forward_resume(walk_forward: Any, bot: Any, cfg: dict[str, Any], common: dict) -> Any:
    return walk_forward(
        bot,
        cfg["grid"],
        train=cfg["train"],
        test=cfg["test"],
        gap=cfg["gap"],
        anchored=cfg["anchored"],
        warmup=cfg["warmup"],
        **common,
    )


def cmd_sweep_status(args: argparse.Namespace) -> int:
    """``alphaswarm sweep status [NAME]``: every sweep, or one with its counts."""
    from alphaswarm.sweep.ledger import SweepStore

    ledger = _ledger(args)
    SweepStore(ledger).recover()
    if not args.name:
        rows = SweepStore(ledger).list()
        if not _json(args, rows):
            print_table(rows, ("name", "id", "bot_id", "status", "trials", "created_at"))
        return EXIT_OK
    row = _sweep_row(ledger, args.name)
    cfg = row.get("config") or {}
    info = {
        "name": row["name"],
        "id": row["id"],
        "bot_id": row["bot_id"],
        "status": row["status"],
        "kind": cfg.get("kind"),
        "grid": cfg.get("grid"),
        "samples": cfg.get("samples"),
        "bars": cfg.get("bars"),
        "start": cfg.get("start"),
        "end": cfg.get("end"),
        "objective": cfg.get("objective"),
        "counts": row["counts"],
        "created_at": row["created_at"],
    }
    if not _json(args, info):
        print_kv(list(info.items()))
    return EXIT_OK


def _trials_frame(ledger: Ledger, sweep_id: str) -> Any:
    import pandas as pd

    from alphaswarm.sweep.ledger import SweepStore

    raw = SweepStore(ledger).trials(sweep_id)
    records = []
    for _, r in raw.iterrows():
        metrics = {k: v for k, v in (r["metrics"] or {}).items() if k not in ("blocks", "slice")}
        records.append(
            {"trial_key": r["trial_key"], **(r["params"] or {}), "status": r["status"], **metrics}
        )
    return pd.DataFrame.from_records(records)


def cmd_sweep_top(args: argparse.Namespace) -> int:
    """``alphaswarm sweep top NAME [-n 10]``: the best trials by the sweep's objective."""
    from alphaswarm.sweep.api import METRIC_COLUMNS, score

    ledger = _ledger(args)
    row = _sweep_row(ledger, args.name)
    frame = _trials_frame(ledger, row["id"])
    if frame.empty:
        raise CliError(f"sweep {row['name']!r} has no finished trials yet")
    objective = args.objective or (row["config"] or {}).get("objective") or "sharpe"
    frame = frame[~frame["trial_key"].str.startswith("oos-")]
    frame = frame.assign(_score=score(frame, objective)).sort_values(
        "_score", ascending=False, na_position="last"
    )
    top = frame.head(args.n).drop(columns="_score")
    params = list((row["config"] or {}).get("grid") or {})
    if _json(args, top.to_dict("records")):
        return EXIT_OK
    top = top.assign(key=top["trial_key"].str[:12])
    cols = ("key", *params, "status", *[c for c in METRIC_COLUMNS if c in top.columns])
    print_table(top.to_dict("records"), cols)
    return EXIT_OK


def cmd_sweep_rerun(args: argparse.Namespace) -> int:
    """``alphaswarm sweep rerun NAME KEY``: replay one trial locally with trades and equity."""
    from alphaswarm.bots import Bot
    from alphaswarm.cli.output import print_metrics
    from alphaswarm.sweep.api import resolve_data, with_params
    from alphaswarm.sweep.trials import TrialBase, replay

    ledger = _ledger(args)
    row = _sweep_row(ledger, args.name)
    cfg = row["config"] or {}
    frame = _trials_frame(ledger, row["id"])
    match = frame[frame["trial_key"].str.startswith(args.key)] if len(frame) else frame
    if len(match) != 1:
        raise CliError(
            f"{len(match)} trials of sweep {row['name']!r} match key {args.key!r}",
            hint="`alphaswarm sweep top NAME` lists keys",
        )
    if cfg.get("client_data"):
        raise CliError(
            "this sweep ran on data that existed only in its notebook",
            hint="use SweepResult.rerun(key) there",
        )
    key = match["trial_key"].iloc[0]
    raw = ledger.sql(
        "SELECT params, metrics FROM sweep_trials WHERE sweep_id = :s AND trial_key = :k",
        s=row["id"],
        k=key,
    )
    params, metrics = raw["params"].iloc[0], raw["metrics"].iloc[0]
    if isinstance(params, str):
        import json

        params, metrics = json.loads(params), json.loads(metrics)
    lo, hi, warmup = (metrics or {}).get("slice") or (None, None, 0)
    bot = Bot(cfg["bot"])
    _, window, _ = resolve_data(bot, None, cfg.get("start"), cfg.get("end"), cfg.get("bars"))
    if lo is None:
        lo, hi = 0, window.n_groups
    base = TrialBase(bot.spec, bot.strategy_class(), cfg.get("starting_cash", 100_000.0))
    result = replay(with_params(bot, params), base, window, params, lo, hi, warmup)
    out = {
        "trial_key": key,
        "params": params,
        "metrics": result.metrics,
        "bars": result.bars,
        "trades": len(result.trades),
    }
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        result.equity.to_csv(folder / "equity.csv")
        result.trades.to_csv(folder / "trades.csv", index=False)
        result.fills.to_csv(folder / "fills.csv", index=False)
        out["written"] = str(folder)
    if _json(args, out):
        return EXIT_OK
    sys.stdout.write(f"trial {key[:16]}  params {params}\n")
    print_metrics(
        {"id": None, "metrics": result.metrics, "bars": result.bars, "elapsed": result.elapsed}
    )
    if len(result.trades):
        print_table(
            result.trades.tail(args.trades).to_dict("records"),
            ("symbol", "direction", "qty", "entry_time", "exit_time", "pnl"),
        )
    if args.out:
        sys.stdout.write(f"wrote equity.csv, trades.csv, fills.csv to {args.out}\n")
    return EXIT_OK


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="ledger URL or SQLite file (default $ALPHASWARM_DB_URL)",
    )
    p.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scheduler", metavar="ADDR", help="run on a Dask cluster, e.g. tcp://10.0.0.5:8786"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default: one per core)",
    )
    p.add_argument("--serial", action="store_true", help="run in this process (debugging)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="show Dask's INFO logs (cluster start, stop)"
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` and its subcommands to the ``alphaswarm`` subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The main parser's subparsers.

    Returns
    -------
    argparse.ArgumentParser
        The ``sweep`` parser.
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "sweep",
        help="parameter sweeps, locally or on a Dask cluster",
        description="Backtest a bot over a parameter grid (resumable, with DSR and PBO).",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", title="subcommands")
    sub.required = True

    p = sub.add_parser("run", help="run a sweep", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("bot", help="bot file (.yaml/.yml/.json)")
    p.add_argument(
        "--grid",
        action="append",
        metavar="NAME=V1,V2",
        help="a swept parameter (repeat); NAME=START:STOP:STEP for a range",
    )
    p.add_argument("--samples", type=int, help="run N random combinations of the grid")
    p.add_argument("--seed", type=int, default=0, help="seed of --samples (default 0)")
    p.add_argument("--bars", type=int, help="bars per trial (synthetic default: 7800)")
    p.add_argument("--start", help="data window start (date)")
    p.add_argument("--end", help="data window end (date, inclusive)")
    p.add_argument("--objective", default="sharpe", help="metric to maximise (default sharpe)")
    p.add_argument("--name", help="sweep name (default: derived from bot, grid and data)")
    _cluster(p)
    _common(p)
    p.set_defaults(func=cmd_sweep_run)

    p = sub.add_parser("resume", help="finish a sweep's remaining trials")
    p.add_argument("name", help="sweep name or id")
    _cluster(p)
    _common(p)
    p.set_defaults(func=cmd_sweep_resume)

    p = sub.add_parser("status", help="list sweeps, or show one")
    p.add_argument("name", nargs="?", help="sweep name or id")
    _common(p)
    p.set_defaults(func=cmd_sweep_status)

    p = sub.add_parser("top", help="best trials of a sweep")
    p.add_argument("name", help="sweep name or id")
    p.add_argument("-n", type=int, default=10, help="how many (default 10)")
    p.add_argument("--objective", help="rank by this metric (default: the sweep's)")
    _common(p)
    p.set_defaults(func=cmd_sweep_top)

    p = sub.add_parser("rerun", help="replay one trial locally with trades and equity")
    p.add_argument("name", help="sweep name or id")
    p.add_argument("key", help="trial key or a unique prefix")
    p.add_argument("--out", metavar="DIR", help="write equity.csv, trades.csv, fills.csv here")
    p.add_argument("--trades", type=int, default=10, help="last trades to print (default 10)")
    _common(p)
    p.set_defaults(func=cmd_sweep_rerun)
    return parser
