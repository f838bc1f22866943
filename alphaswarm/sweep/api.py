"""``alphaswarm.sweep``: many backtests of one bot over a parameter grid, local or on a cluster.

::

    res = aw.sweep(bot, grid={"fast": [5, 10, 20], "slow": [30, 60]}, bars=5_000)
    res.trials            # one row per trial: params, metrics, status
    res.best              # the winner by the objective
    res.report            # DSR of the winner, PBO, N
    res.heatmap("fast", "slow")

The same call runs in this process (``backend="serial"``), on a LocalCluster with one
single-threaded worker process per core (the default), or on any Dask cluster
(``client=Client(...)`` or ``client="tcp://host:8786"``), with identical metrics.
Finished trials go to the ledger in batches; calling again with the same ``name``
(the default name is derived from the bot, grid and data) skips them.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import param

from alphaswarm.bots import Bot, BotSpecError
from alphaswarm.metrics import STORED_METRICS, format_metric
from alphaswarm.model import ModelError
from alphaswarm.schema import result_field
from alphaswarm.strategies import resolve_strategy
from alphaswarm.sweep import stats
from alphaswarm.sweep.ledger import OOS_PREFIX, SweepStore, TrialWriter
from alphaswarm.sweep.progress import SweepProgress
from alphaswarm.sweep.runner import Job, Runner, RunStats
from alphaswarm.sweep.trials import (
    MAX_BLOCKS,
    DataRef,
    TrialBase,
    WindowData,
    expand_grid,
    replay,
    sample_grid,
    trial_key,
)
from alphaswarm.views import view

if TYPE_CHECKING:
    from collections.abc import Callable

    from alphaswarm.backtest import BacktestResult
    from alphaswarm.data.base import Feed
    from alphaswarm.ledger import Ledger

__all__ = ["METRIC_COLUMNS", "SweepResult", "sweep"]

#: Metric columns of the trials table, in display order (the stored metrics).
METRIC_COLUMNS = STORED_METRICS
#: Objectives that are better when lower.
MINIMISE = frozenset({"max_drawdown"})
#: DSR a swept winner needs to pass the gate (``dsr >= DSR_GATE``).
DSR_GATE = 0.95
#: PBO a sweep must stay under to pass the gate (``pbo < PBO_GATE``).
PBO_GATE = 0.2
#: Largest C(S, S/2) x N the PBO evaluates before it halves S.
PBO_BUDGET = 2_000_000


# ----------------------------------------------------------------------------- helpers


def with_params(bot: Bot, params: dict[str, Any]) -> Bot:
    """The bot with ``params`` merged over its own (raises BotSpecError when invalid)."""
    spec = {**bot.spec, "params": {**bot.spec.get("params", {}), **params}}
    try:
        resolve_strategy(spec["strategy"])
    except ModelError:  # a class defined in a notebook: pass it, not its name
        spec["strategy"] = bot.strategy_class()
    return Bot(spec)


def _coerce_ledger(ledger: Ledger | str | bool | None) -> Ledger | None:
    if ledger is False:
        return None
    if ledger is None or ledger is True:
        from alphaswarm.paper.runtime import get_ledger

        return get_ledger()
    if isinstance(ledger, str):
        from alphaswarm.ledger import Ledger

        return Ledger(url=ledger)
    return ledger


def _data_ref(bot: Bot, feed: Feed, window: WindowData) -> DataRef | None:
    """A reference workers can rebuild the window from, or None (scatter it)."""
    data = dict(bot.spec.get("data") or {"feed": "synthetic", "seed": 7, "interval": "1m"})
    if data.get("feed") == "replay" and "path" in data:
        data["path"] = str(Path(data["path"]).expanduser().resolve())
    w = window.window
    return DataRef(data, tuple(bot.universe), w["start"], w["end"], w["bars"], feed.fingerprint())


def score(trials: pd.DataFrame, objective: str | Callable[[dict[str, Any]], float]) -> pd.Series:
    """Objective of every done trial, larger is better (NaN for the others).

    Parameters
    ----------
    trials : DataFrame
        A trials table.
    objective : str or callable
        A metric column (``max_drawdown`` is minimised) or a function of a row dict.
    """
    done = trials["status"] == "done"
    if callable(objective):
        values = trials.apply(
            lambda r: float(objective(r.to_dict())) if r["status"] == "done" else np.nan, axis=1
        )
        return values.astype(float)
    if objective not in trials.columns:
        raise ValueError(
            f"objective: {objective!r} is not a metric; use one of {', '.join(METRIC_COLUMNS)} "
            "or a function of the metrics row"
        )
    values = trials[objective].astype(float).where(done)
    return -values if objective in MINIMISE else values


def gate_failures(dsr: float, pbo: float) -> list[str]:
    """The gate rules a winner fails (empty: it passes ``DSR >= 0.95`` and ``PBO < 0.2``).

    Parameters
    ----------
    dsr, pbo : float
        The winner's Deflated Sharpe Ratio and the search's PBO (NaN: not computed).

    Examples
    --------
    >>> gate_failures(0.988, 0.63)
    ['PBO 0.63 >= 0.2']
    >>> gate_failures(0.99, 0.1)
    []
    """
    failures = []
    if not math.isfinite(dsr):
        failures.append("DSR not computed (no finished trial with returns)")
    elif dsr < DSR_GATE:
        failures.append(f"DSR {dsr:.3f} < {DSR_GATE:g}")
    if not math.isfinite(pbo):
        failures.append("PBO not computed (needs 2 or more finished trials)")
    elif pbo >= PBO_GATE:
        failures.append(f"PBO {pbo:.2f} >= {PBO_GATE:g}")
    return failures


def overfit_report(
    trials: pd.DataFrame,
    blocks: dict[str, Any],
    objective: str | Callable[[dict[str, Any]], float],
    n_family: int = 0,
    pbo_blocks: int = MAX_BLOCKS,
) -> dict[str, Any]:
    """DSR of the winner and PBO of the search, from a trials table.

    Parameters
    ----------
    trials : DataFrame
        Trials of one search (same data slice).
    blocks : dict
        Trial key -> per-block ``(n, sum, sum sq)`` moments.
    objective : str or callable
        How the winner is chosen.
    n_family : int
        Distinct finished trial keys on record for the bot (earlier sweeps
        included); ``N`` is the larger of this and the distinct keys here.
    pbo_blocks : int
        ``S`` of CSCV (2, 4, 8 or 16).

    Returns
    -------
    dict
        ``winner``, ``n_trials`` (N), ``n_sweep``, ``variance`` (of the trials' daily
        Sharpe), ``sr_daily``, ``days``, ``skew``, ``kurt``, ``psr``, ``sr0`` and
        ``dsr`` of the winner, ``pbo``, ``pbo_blocks``, ``degradation``,
        ``prob_loss``, ``passes_gate`` (DSR >= 0.95 and PBO < 0.2) and
        ``gate_failures`` (the rules it fails, in words).
    """
    nan = float("nan")
    done = trials[trials["status"] == "done"]
    n_keys = int(done["trial_key"].nunique())
    out: dict[str, Any] = {
        "n_sweep": n_keys,
        "n_trials": max(n_family, n_keys),
        "winner": None,
        "dsr": nan,
        "psr": nan,
        "pbo": nan,
        "passes_gate": False,
        "gate_failures": gate_failures(nan, nan),
    }
    if done.empty:
        return out
    s = score(done, objective)
    if s.notna().sum() == 0:
        return out
    win = done.loc[s.idxmax()]
    srs = done["sr"].astype(float).to_numpy()
    variance = float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0
    n = out["n_trials"]
    sr, t = float(win["sr"]), int(win["days"])
    skew, kurt = float(win["skew"]), float(win["kurt"])
    sr0 = stats.expected_max_sharpe(n, variance)
    out.update(
        winner=win["trial_key"],
        variance=variance,
        sr_daily=sr,
        days=t,
        skew=skew,
        kurt=kurt,
        sr0=sr0,
        psr=stats.psr(sr, t, skew, kurt),
        dsr=stats.psr(sr, t, skew, kurt, sr0),
    )
    keys = [k for k in done["trial_key"] if k in blocks]
    if len(keys) >= 2:
        m = np.stack([np.asarray(blocks[k], dtype=float) for k in keys], axis=1)
        s_used = pbo_blocks
        while s_used > 4 and math.comb(s_used, s_used // 2) * len(keys) > PBO_BUDGET:
            s_used //= 2  # S = 16 -> 8 -> 4 keeps CSCV at a few million metric evaluations
        result = stats.pbo(m, blocks=s_used)
        out.update(
            pbo=result.pbo,
            pbo_blocks=result.blocks,
            degradation=result.degradation,
            prob_loss=result.prob_loss,
        )
    failures = gate_failures(out["dsr"], out["pbo"])
    out["gate_failures"] = failures
    out["passes_gate"] = not failures
    return out


# ----------------------------------------------------------------------------- plan


@dataclass
class Item:
    """One planned trial: its parameters, slice and labels."""

    params: dict[str, Any]
    lo: int
    hi: int
    warmup: int = 0
    labels: dict[str, Any] = field(default_factory=dict)
    oos: bool = False
    key: str = ""
    error: str | None = None


@dataclass
class Plan:
    """Everything a sweep run needs, resolved on the client."""

    bot: Bot
    feed: Feed
    window: WindowData
    data: DataRef | None
    items: list[Item]
    config: dict[str, Any]
    starting_cash: float = 100_000.0

    def keyed(self) -> None:
        """Give every item its trial key (and its error when the params are invalid)."""
        fp, w = self.window.fingerprint, self.window.window
        cache: dict[str, Bot | str] = {}
        for it in self.items:
            pkey = json.dumps(it.params, sort_keys=True, default=str)
            if pkey not in cache:
                try:
                    cache[pkey] = with_params(self.bot, it.params)
                except (BotSpecError, ModelError) as exc:
                    cache[pkey] = str(exc)
            tb = cache[pkey]
            if isinstance(tb, str):
                it.error = tb
                tb = self.bot
            key = trial_key(tb, it.params, fp, w, it.lo, it.hi, it.warmup, self.starting_cash)
            it.key = (OOS_PREFIX + key[: 64 - len(OOS_PREFIX)]) if it.oos else key


def plan_config(
    kind: str,
    bot: Bot,
    grid: dict[str, Any],
    window: WindowData,
    ref: DataRef | None,
    *,
    start: Any,
    end: Any,
    objective: str | Callable[[dict[str, Any]], float],
    starting_cash: float,
    **specific: Any,
) -> dict[str, Any]:
    """The configuration a search records: the bot, the grid, the data and the objective.

    Parameters
    ----------
    kind : str
        ``"sweep"`` or ``"walk_forward"``.
    bot, grid, window, ref
        The search's bot, grid, data window and worker reference (None: scattered).
    start, end, objective, starting_cash
        As the caller was given them.
    **specific
        The kind's own keys (``samples``, ``train`` ...), placed after the grid.
    """
    return {
        "kind": kind,
        "bot": bot.spec,
        "grid": {k: list(v) for k, v in grid.items()},
        **specific,
        "start": None if start is None else str(start),
        "end": None if end is None else str(end),
        "bars": window.window["bars"],
        "objective": objective if isinstance(objective, str) else None,
        "starting_cash": starting_cash,
        "data_fingerprint": window.fingerprint,
        "client_data": ref is None,
    }


def resolve_data(
    bot: Bot, feed: Feed | pd.DataFrame | None, start: Any, end: Any, bars: int | None
) -> tuple[Feed, WindowData, DataRef | None]:
    """The feed, the window in memory and a worker reference (None: scatter)."""
    from alphaswarm.backtest import DEFAULT_BARS
    from alphaswarm.data import ReplayFeed

    client_only = feed is not None
    if isinstance(feed, pd.DataFrame):
        feed = ReplayFeed(feed)
    if feed is None:
        feed = bot.make_feed()
    missing = feed.covers(bot.universe)
    if missing:
        raise ModelError(f"universe: the feed cannot serve {', '.join(missing)}")
    if bars is not None and (isinstance(bars, bool) or not isinstance(bars, int) or bars <= 0):
        raise ModelError(f"bars: expected a whole number > 0, got {bars!r}")
    if bars is None and start is None and end is None and not feed.bounded:
        bars = DEFAULT_BARS
    if not feed.bounded and end is None and bars is None:
        raise ModelError("end: a synthetic feed needs bars= or end= to know when to stop")
    window = WindowData.from_feed(feed, start, end, bars)
    return feed, window, None if client_only else _data_ref(bot, feed, window)


# ----------------------------------------------------------------------------- result


class SweepResult(param.Parameterized):
    """The outcome of a sweep: every trial, the winner and the overfitting report.

    Runs in the background when the sweep was started with ``wait=False``;
    :meth:`wait` blocks until it ends and :meth:`cancel` stops it (resumable).
    """

    name = param.String(default="", constant=True, doc="Sweep name (its identity in the ledger).")
    sweep_id = result_field(param.String, "``sweeps.id`` in the ledger (None without a ledger).")
    objective = param.Parameter(
        default="sharpe",
        constant=True,
        doc="Metric the winner maximises (``max_drawdown``: minimises).",
    )
    status = param.Selector(
        default="pending",
        objects=["pending", "running", "done", "cancelled", "failed"],
        constant=True,
        doc="State of the sweep.",
    )
    trials = result_field(
        param.DataFrame, "One row per trial: key, params, status, error, metrics."
    )
    report = param.Dict(
        default={},
        constant=True,
        doc="Overfitting report: DSR of the winner, PBO, N (see overfit_report).",
    )
    params_names = param.List(default=[], constant=True, doc="Names of the swept parameters.")
    progress = param.ClassSelector(
        class_=SweepProgress, constant=True, doc="Live progress (bind a Panel indicator to it)."
    )
    error = result_field(param.String, "Why the sweep failed, when it did.")
    dashboard = result_field(
        param.String, "URL of the Dask dashboard of the cluster running the sweep (None: serial)."
    )
    where = param.String(
        default="", constant=True, doc="Where the trials run, e.g. 'a local cluster (2 workers)'."
    )
    notes = param.List(
        default=[],
        constant=True,
        doc="Remarks on the run, e.g. that the grid was too small to benefit from the cluster.",
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._plan: Plan | None = None
        self._blocks: dict[str, Any] = {}
        self.stats = RunStats()

    # -- control -----------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the sweep: futures are cancelled; finished trials stay in the ledger."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> SweepResult:
        """Block until the sweep ends (or ``timeout`` seconds pass); returns self."""
        self._finished.wait(timeout)
        if self._thread is not None and self._finished.is_set():
            self._thread.join()
        return self

    @property
    def done(self) -> bool:
        """Whether the sweep has ended (done, cancelled or failed)."""
        return self._finished.is_set()

    # -- results -----------------------------------------------------------------------
    def scores(self) -> pd.Series:
        """The objective of every trial (larger is better; NaN unless done)."""
        return score(self.trials, self.objective)

    @property
    def best(self) -> pd.Series | None:
        """The winning trial's row (None when no trial finished)."""
        if self.trials is None or self.trials.empty:
            return None
        s = self.scores()
        return None if s.notna().sum() == 0 else self.trials.loc[s.idxmax()]

    @property
    def best_params(self) -> dict[str, Any]:
        """The winner's parameters."""
        row = self.best
        return {} if row is None else {p: _plain(row[p]) for p in self.params_names}

    def best_bot(self) -> Bot:
        """The bot with the winner's parameters applied."""
        assert self._plan is not None
        return with_params(self._plan.bot, self.best_params)

    def top(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` best trials by the objective."""
        s = self.scores()
        return self.trials.loc[s.sort_values(ascending=False, na_position="last").index[:n]]

    def rerun(self, key: str | None = None) -> BacktestResult:
        """Replay one trial (default the winner) locally with full trades and equity.

        Parameters
        ----------
        key : str, optional
            A trial key or a unique prefix of one.
        """
        plan = self._plan
        assert plan is not None
        if key is None:
            best = self.best
            if best is None:
                raise ValueError("rerun: no trial finished")
            key = best["trial_key"]
        matches = [it for it in plan.items if it.key.startswith(key)]
        if len(matches) != 1:
            raise ValueError(f"rerun: {len(matches)} trials match key {key!r}")
        it = matches[0]
        bot = with_params(plan.bot, it.params)
        base = TrialBase(plan.bot.spec, plan.bot.strategy_class(), plan.starting_cash)
        return replay(bot, base, plan.window, it.params, it.lo, it.hi, it.warmup)

    def halves(self) -> pd.DataFrame:
        """Annualised Sharpe of every done trial on the first and second half of its bars."""
        done = self.trials[self.trials["status"] == "done"]
        keys = [k for k in done["trial_key"] if k in self._blocks]
        if not keys:
            return pd.DataFrame(columns=["trial_key", "first_half", "second_half"])
        m = np.stack([np.asarray(self._blocks[k], dtype=float) for k in keys], axis=1)
        half = m.shape[0] // 2
        ann = math.sqrt(self._plan.window.periods_per_year) if self._plan else 1.0
        return pd.DataFrame(
            {
                "trial_key": keys,
                "first_half": stats.block_sharpe(m, 0, half) * ann,
                "second_half": stats.block_sharpe(m, half, m.shape[0]) * ann,
            }
        ).merge(done, on="trial_key")

    # -- views -------------------------------------------------------------------------
    def heatmap(self, x: str, y: str, metric: str | None = None) -> Any:
        """HoloViews heatmap of the objective over ``x`` and ``y`` (other params on widgets)."""
        return view("sweep_heatmap", self, x, y, metric=metric)

    def scatter(self) -> Any:
        """In-sample (first half) vs out-of-sample (second half) Sharpe of every trial."""
        return view("sweep_halves_scatter", self)

    def __panel__(self) -> Any:
        import panel as pn

        return pn.Column(self.progress.panel(), pn.pane.DataFrame(self.top(10), max_rows=10))

    def _report_text(self) -> str:
        """The overfitting report in one line (per fold for a walk-forward search)."""
        r = self.report or {}
        if "folds" in r:
            folds = r["folds"]
            dsr = ", ".join(f"{v.get('dsr', float('nan')):.3f}" for v in folds.values())
            pbo = ", ".join(f"{v.get('pbo', float('nan')):.2f}" for v in folds.values())
            n = ", ".join(str(v.get("n_trials", 0)) for v in folds.values())
            return f"folds={len(folds)}, dsr by fold=[{dsr}], pbo by fold=[{pbo}], N by fold=[{n}]"
        if not r:
            running = self.status in ("pending", "running")
            return "report when it ends" if running else "no overfitting report"
        failed = r.get("gate_failures") or ["gate not evaluated"]
        gate = "passes" if r.get("passes_gate") else "fails: " + "; ".join(failed)
        return (
            f"best={self.best_params!r}, dsr={r.get('dsr', float('nan')):.3f}, "
            f"pbo={r.get('pbo', float('nan')):.2f}, N={r.get('n_trials', 0)}, gate {gate}"
        )

    def __repr__(self) -> str:
        n = 0 if self.trials is None else len(self.trials)
        dash = f", dashboard={self.dashboard}" if self.dashboard else ""
        return (
            f"SweepResult(name={self.name!r}, status={self.status!r}, trials={n}, "
            f"{self._report_text()}{dash})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        import html

        by = self.objective if isinstance(self.objective, str) else "objective"
        dash = (
            f' &middot; <a href="{html.escape(self.dashboard)}" target="_blank">Dask dashboard</a>'
            if self.dashboard
            else ""
        )
        head = (
            f"<b>Sweep {html.escape(self.name)}</b> ({self.status}) on "
            f"{html.escape(self.where or '-')}: {html.escape(self.progress.message)}{dash}<br>"
            f"by {html.escape(str(by))}: {html.escape(self._report_text())}"
        )
        head += "".join(f"<br><i>{html.escape(n)}</i>" for n in self.notes)
        if self.trials is None or self.trials.empty:
            return head
        top = self.top(5)
        formatters = {c: (lambda v, c=c: format_metric(c, v)) for c in METRIC_COLUMNS if c in top}
        return head + top.to_html(index=False, formatters=formatters, float_format=_plain_number)


def _plain_number(value: float) -> str:
    """A parameter value in a table: no exponent notation, no trailing zeros."""
    return f"{value:,.6f}".rstrip("0").rstrip(".")


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


# ----------------------------------------------------------------------------- execution


def _rows_to_frame(plan: Plan, rows: dict[str, dict[str, Any]], names: list[str]) -> pd.DataFrame:
    records = []
    for it in plan.items:
        row = rows.get(it.key)
        if row is None:
            continue
        rec: dict[str, Any] = {"trial_key": it.key, **it.params, **it.labels}
        rec["status"], rec["error"] = row["status"], row.get("error")
        metrics = row.get("metrics") or {}
        for k, v in metrics.items():
            if k not in ("blocks", "slice"):
                rec[k] = v
        records.append(rec)
    cols = [
        "trial_key",
        *names,
        *sorted({k for it in plan.items for k in it.labels}),
        "status",
        "error",
        *METRIC_COLUMNS,
        "sr",
        "days",
        "skew",
        "kurt",
        "bars",
    ]
    frame = pd.DataFrame.from_records(records)
    for c in cols:
        if c not in frame.columns:
            frame[c] = np.nan if c in METRIC_COLUMNS else None
    return frame[cols + [c for c in frame.columns if c not in cols]]


def execute(
    plan: Plan,
    *,
    name: str | None,
    objective: str | Callable[[dict[str, Any]], float],
    runner: Runner,
    ledger: Ledger | None,
    progress: bool,
    wait: bool,
    pbo_blocks: int = MAX_BLOCKS,
    report: Callable[[SweepResult, dict[str, Any]], dict[str, Any]] | None = None,
    phase: str | None = None,
) -> SweepResult:
    """Run a plan: resume from the ledger, run the rest, write, report.

    ``phase`` (e.g. ``"in-sample"``) is appended to the sweep name on the progress bar.
    """
    plan.keyed()
    keys = [it.key for it in plan.items]
    if len(set(keys)) != len(keys):
        plan.items = list({it.key: it for it in plan.items}.values())
    if name is None:
        digest = hashlib.sha256("".join(sorted(it.key for it in plan.items)).encode())
        name = f"{plan.bot.name}-{digest.hexdigest()[:10]}"
    names = list(dict.fromkeys(k for it in plan.items for k in it.params))
    store = SweepStore(ledger) if ledger is not None else None
    sweep_id, bot_id = None, None
    if store is not None:
        store.recover()
        bot_id = ledger.register_bot(plan.bot.name, plan.bot.spec, plan.bot.spec_hash)[0]
        sweep_id = store.open(name, bot_id, plan.config)
    try:
        runner.connect()
    except BaseException:
        if store is not None:
            store.set_status(sweep_id, "failed")
        raise
    bar = SweepProgress(
        bar=progress, desc=f"{name} {phase}" if phase else name, dashboard=runner.dashboard
    )
    result = SweepResult(
        name=name,
        sweep_id=sweep_id,
        objective=objective,
        progress=bar,
        params_names=names,
        status="running",
        dashboard=runner.dashboard,
        where=runner.where,
    )
    result._plan = plan
    rows: dict[str, dict[str, Any]] = {}
    if store is not None:
        rows.update(store.finished(sweep_id))
    invalid = [it for it in plan.items if it.error is not None and it.key not in rows]
    writer = TrialWriter(store, sweep_id or "")
    by_key = {it.key: it for it in plan.items}

    def record(batch: list[dict[str, Any]]) -> None:
        out, done, failed = [], 0, 0
        for r in batch:
            it = by_key[r["key"]]
            metrics = dict(r["metrics"] or {})
            metrics["slice"] = [it.lo, it.hi, it.warmup]
            row = {
                "trial_key": r["key"],
                "params": it.params,
                "metrics": metrics,
                "status": r["status"],
                "error": r.get("error"),
            }
            rows[r["key"]] = row
            out.append(row)
            done += r["status"] == "done"
            failed += r["status"] != "done"
        writer.add(out)
        bar.update(done=done, failed=failed)

    resumed = [rows[it.key] for it in plan.items if it.key in rows]
    bar.start(len(plan.items), len(resumed), sum(r["status"] != "done" for r in resumed))
    if invalid:
        record(
            [
                {"key": it.key, "status": "invalid", "error": it.error, "metrics": None}
                for it in invalid
            ]
        )
    jobs = [
        Job(it.key, it.params, it.lo, it.hi, it.warmup) for it in plan.items if it.key not in rows
    ]
    base = TrialBase(plan.bot.spec, plan.bot.strategy_class(), plan.starting_cash)

    def finish(status: str, error: str | None = None) -> None:
        try:
            writer.flush()
        finally:
            frame = _rows_to_frame(plan, rows, names)
            blocks = {
                k: r["metrics"]["blocks"]
                for k, r in rows.items()
                if r["status"] == "done" and r.get("metrics") and "blocks" in r["metrics"]
            }
            result._blocks = blocks
            with param.edit_constant(result):
                result.trials = frame
                result.error = error
            n_family = store.family_trials(bot_id) if store is not None else 0
            if report is not None:
                rep = report(result, {"n_family": n_family, "pbo_blocks": pbo_blocks})
            else:
                in_sample = frame[~frame["trial_key"].str.startswith(OOS_PREFIX)]
                rep = overfit_report(in_sample, blocks, objective, n_family, pbo_blocks)
            note = runner.small_grid_note()
            with param.edit_constant(result):
                result.report = rep
                result.status = status
                result.notes = [note] if note else []
            result.stats = runner.stats
            if store is not None:
                store.set_status(sweep_id, status)
            bar.close(status)
            result._finished.set()

    def body() -> None:
        beat = store.heartbeat(sweep_id) if store is not None else None
        try:
            status = runner.run(base, plan.data, plan.window, jobs, record, result._cancel)
        except KeyboardInterrupt:
            result._cancel.set()
            finish("cancelled")
            raise
        except BaseException as exc:
            finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if beat is not None:
                beat.stop()
        finish(status)

    if wait:
        body()
    else:

        def background() -> None:
            try:
                body()
            except BaseException:  # noqa: BLE001, S110 - recorded on the result
                pass

        result._thread = threading.Thread(target=background, name=f"sweep-{name}", daemon=True)
        result._thread.start()
    return result


def sweep(
    bot: Bot | dict[str, Any] | str | Path,
    grid: dict[str, Any] | None = None,
    *,
    samples: int | None = None,
    start: Any = None,
    end: Any = None,
    bars: int | None = None,
    objective: str | Callable[[dict[str, Any]], float] = "sharpe",
    client: Any = None,
    name: str | None = None,
    backend: str = "local",
    n_workers: int | None = None,
    ledger: Ledger | str | bool | None = None,
    progress: bool = True,
    seed: int = 0,
    feed: Feed | pd.DataFrame | None = None,
    starting_cash: float = 100_000.0,
    retries: int = 2,
    pbo_blocks: int = 16,
    target_seconds: float = 1.0,
    wait: bool = True,
) -> SweepResult:
    """Backtest ``bot`` over a parameter grid, locally or on a Dask cluster.

    Parameters
    ----------
    bot : Bot, dict, YAML text or path
        The bot; each trial replaces some of its ``params``.
    grid : dict
        Parameter name -> list of values; every combination is a trial.
    samples : int, optional
        Run this many random combinations of ``grid`` instead (drawn with ``seed``).
    start, end : date-like, optional
        Data window (inclusive).
    bars : int, optional
        Number of bar timestamps (default for a synthetic feed: 20 days of minutes).
    objective : str or callable
        Metric the winner maximises (``max_drawdown`` is minimised), or a function of
        a trial's metrics row.
    client : distributed.Client or str, optional
        Run on this Dask cluster (``"tcp://host:8786"`` connects to a scheduler; one
        Client per address, reused by later sweeps). Default: the active Client
        (``distributed.default_client()``) when there is one.
    name : str, optional
        Sweep name in the ledger; running again with the name skips finished trials.
        Default: derived from the bot, the grid and the data, so an identical call
        resumes.
    backend : str
        ``"local"`` (the active Client if there is one, else a LocalCluster with one
        single-threaded worker process per core), ``"serial"`` (this process, for
        debugging and tiny grids) or ``"dask"`` (with ``client``).
    n_workers : int, optional
        Worker processes of the default LocalCluster.
    ledger : Ledger, str or bool, optional
        Where trials are recorded: the default ledger (None), a Ledger or URL, or
        False for none (no resume).
    progress : bool
        Show a tqdm bar (terminal or notebook).
    seed : int
        Seed of ``samples``.
    feed : Feed or DataFrame, optional
        Data that exist only here (scattered to the workers once) instead of the
        bot's ``data:`` block.
    starting_cash : float
        Initial cash of every trial.
    retries : int
        Retries of a failed task before its trials are recorded as failed.
    pbo_blocks : int
        ``S`` of the PBO's CSCV: 2, 4, 8 or 16.
    target_seconds : float
        Aimed duration of one Dask task (trials are batched to reach it).
    wait : bool
        False returns once the cluster is found or started; the sweep runs in a
        background thread (``result.wait()``, ``result.cancel()``).

    Returns
    -------
    SweepResult
    """
    if grid is None:
        raise ValueError("grid: required, a dict of parameter -> list of values")
    bot = Bot.coerce(bot)
    combos = sample_grid(grid, samples, seed) if samples is not None else expand_grid(grid)
    feed_obj, window, ref = resolve_data(bot, feed, start, end, bars)
    items = [Item(c, 0, window.n_groups) for c in combos]
    config = plan_config(
        "sweep", bot, grid, window, ref, start=start, end=end, objective=objective,
        starting_cash=starting_cash, samples=samples, seed=seed,
    )  # fmt: skip
    plan = Plan(bot, feed_obj, window, ref, items, config, starting_cash)
    runner = Runner(backend, client, n_workers, retries=retries, target_seconds=target_seconds)
    return execute(
        plan,
        name=name,
        objective=objective,
        runner=runner,
        ledger=_coerce_ledger(ledger),
        progress=progress,
        wait=wait,
        pbo_blocks=pbo_blocks,
    )
