"""Walk-forward analysis: search in sample, test out of sample, fold after fold.

``walk_forward(bot, grid, train=, test=, gap=, anchored=False)`` cuts the data window
into folds (in-sample ``train`` bars, a ``gap``, out-of-sample ``test`` bars; rolling,
or anchored at the first bar), runs every fold x grid combination as one sweep, then
runs each fold's best in-sample parameters on its out-of-sample bars after a
non-trading warm-up (the strategy sees the bars before the test window, no order
passes). It reports the stitched out-of-sample equity, the walk-forward efficiency
(annualised out-of-sample over in-sample return), parameter stability, and the DSR
and PBO of every fold's search. A fold whose in-sample winner lost money (Sharpe
below zero: the best of the grid is still a losing bot) is flagged in the
``warning`` column and in the result's repr; it is still tested out of sample.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import param

from alphaswarm.bots import Bot
from alphaswarm.metrics import cagr
from alphaswarm.schema import result_field
from alphaswarm.sweep.api import (
    Item,
    Plan,
    SweepResult,
    _coerce_ledger,
    _plain,
    execute,
    overfit_report,
    plan_config,
    resolve_data,
    score,
    with_params,
)
from alphaswarm.sweep.runner import Runner
from alphaswarm.sweep.trials import TrialBase, expand_grid, replay
from alphaswarm.views import view

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from alphaswarm.data.base import Feed
    from alphaswarm.ledger import Ledger

__all__ = ["WalkForwardResult", "make_folds", "walk_forward"]


def _to_bars(value: Any, name: str, timestamps: np.ndarray) -> int:
    """A length in bars: an int, or a duration (``"90D"``, Timedelta) measured on the data."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number of bars or a duration, got {value!r}")
    if isinstance(value, int | np.integer):
        if value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
        return int(value)
    try:
        delta = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"{name}: expected a number of bars or a duration like '90D', got {value!r}"
        ) from None
    span = timestamps[-1] - timestamps[0]
    if span <= 0:
        return 0
    per_bar = span / max(len(timestamps) - 1, 1)
    return int(round(delta.value / per_bar))


def make_folds(
    n: int, train: int, test: int, gap: int = 0, anchored: bool = False
) -> list[tuple[int, int, int, int]]:
    """Fold boundaries ``(is_lo, is_hi, oos_lo, oos_hi)`` in bar indices.

    Parameters
    ----------
    n : int
        Bars in the window.
    train, test, gap : int
        In-sample, out-of-sample and gap lengths in bars.
    anchored : bool
        In-sample windows all start at bar 0 (and grow) instead of rolling.

    Examples
    --------
    >>> make_folds(10, 4, 2)
    [(0, 4, 4, 6), (2, 6, 6, 8), (4, 8, 8, 10)]
    """
    if train < 2 or test < 2:
        raise ValueError(f"train/test: need at least 2 bars each, got {train} and {test}")
    folds = []
    k = 0
    while True:
        is_hi = train + k * test
        is_lo = 0 if anchored else k * test
        oos_lo = is_hi + gap
        oos_hi = oos_lo + test
        if oos_hi > n:
            break
        folds.append((is_lo, is_hi, oos_lo, oos_hi))
        k += 1
    if not folds:
        raise ValueError(
            f"train/test/gap: {train} + {gap} + {test} bars do not fit in the window's {n} bars"
        )
    return folds


class WalkForwardResult(param.Parameterized):
    """What :func:`walk_forward` returns."""

    folds = result_field(
        param.DataFrame, "One row per fold: windows, best params, IS and OOS metrics, DSR, PBO."
    )
    equity = result_field(
        param.Series, "Stitched out-of-sample equity (each fold compounds on the last)."
    )
    efficiency = result_field(
        param.Number,
        "Walk-forward efficiency: mean annualised OOS return / mean annualised IS return.",
    )
    stability = param.Dict(
        default={},
        constant=True,
        doc="Per parameter: best values by fold, modal value, its share, coefficient of variation.",
    )
    in_sample = param.ClassSelector(
        class_=SweepResult, constant=True, doc="The fold x grid search."
    )
    out_of_sample = param.ClassSelector(
        class_=SweepResult,
        allow_None=True,
        constant=True,
        doc="The out-of-sample runs of each fold's winner.",
    )
    objective = param.Parameter(default="sharpe", constant=True, doc="Metric the winner maximises.")

    @property
    def trials(self) -> pd.DataFrame:
        """Every in-sample trial (with its ``fold``)."""
        return self.in_sample.trials

    def scatter(self) -> Any:
        """In-sample vs out-of-sample objective of every fold's winner (HoloViews)."""
        folds = self.folds
        return view("sweep_is_oos_scatter", folds, "is_objective", "oos_objective", label="fold")

    def plot(self) -> Any:
        """The stitched out-of-sample equity curve (HoloViews)."""
        return view("sweep_equity_curve", self.equity, "Stitched out-of-sample equity")

    @property
    def losing_folds(self) -> list[int]:
        """Folds whose in-sample winner has a negative Sharpe ratio."""
        if self.folds is None or self.folds.empty:
            return []
        return [int(k) for k in self.folds.loc[self.folds["is_sharpe"] < 0, "fold"]]

    def __repr__(self) -> str:
        n = 0 if self.folds is None else len(self.folds)
        eff = float("nan") if self.efficiency is None else self.efficiency
        losing = self.losing_folds
        warn = (
            f", in-sample winner with a negative Sharpe in fold{'s' * (len(losing) > 1)} "
            f"{', '.join(map(str, losing))}"
            if losing
            else ""
        )
        return f"WalkForwardResult(folds={n}, efficiency={eff:.2f}{warn})"

    __str__ = __repr__


def walk_forward(
    bot: Bot | dict[str, Any] | str | Path,
    grid: dict[str, Any],
    *,
    train: int | str,
    test: int | str,
    gap: int | str = 0,
    anchored: bool = False,
    warmup: int | None = None,
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
    feed: Feed | pd.DataFrame | None = None,
    starting_cash: float = 100_000.0,
    pbo_blocks: int = 16,
) -> WalkForwardResult:
    """Walk-forward analysis of ``bot`` over ``grid``.

    Parameters
    ----------
    bot : Bot, dict, YAML text or path
        The bot.
    grid : dict
        Parameter name -> list of values.
    train, test, gap : int or duration
        In-sample, out-of-sample and gap lengths, in bars or as durations (``"90D"``).
    anchored : bool
        Every in-sample window starts at the first bar (expanding) instead of rolling.
    warmup : int, optional
        Non-trading bars before each out-of-sample window (default: ``min(train, 250)``).
    start, end, bars
        The data window, as for :func:`~alphaswarm.sweep.sweep`.
    objective : str or callable
        What the in-sample winner maximises.
    client, name, backend, n_workers, ledger, progress, feed, starting_cash, pbo_blocks
        As for :func:`~alphaswarm.sweep.sweep`.

    Returns
    -------
    WalkForwardResult
    """
    bot = Bot.coerce(bot)
    combos = expand_grid(grid)
    feed_obj, window, ref = resolve_data(bot, feed, start, end, bars)
    ts = window.timestamps
    n_train = _to_bars(train, "train", ts)
    n_test = _to_bars(test, "test", ts)
    n_gap = _to_bars(gap, "gap", ts)
    folds = make_folds(window.n_groups, n_train, n_test, n_gap, anchored)
    warm = min(n_train, 250) if warmup is None else int(warmup)
    items = [
        Item(c, is_lo, is_hi, labels={"fold": k})
        for k, (is_lo, is_hi, _, _) in enumerate(folds)
        for c in combos
    ]
    config = plan_config(
        "walk_forward", bot, grid, window, ref, start=start, end=end, objective=objective,
        starting_cash=starting_cash, train=n_train, test=n_test, gap=n_gap, anchored=anchored,
        warmup=warm,
    )  # fmt: skip
    run = partial(
        execute, objective=objective, runner=Runner(backend, client, n_workers),
        ledger=_coerce_ledger(ledger), progress=progress, wait=True, pbo_blocks=pbo_blocks,
    )  # fmt: skip

    def fold_reports(res: SweepResult, ctx: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, part in res.trials.groupby("fold"):
            out[int(k)] = overfit_report(part, res._blocks, objective, 0, ctx["pbo_blocks"])
        return {"folds": out}

    plan = Plan(bot, feed_obj, window, ref, items, config, starting_cash)
    is_res = run(plan, name=name, report=fold_reports, phase="in-sample")
    if is_res.status != "done":
        raise RuntimeError(f"walk_forward: the in-sample search ended {is_res.status}")
    trials = is_res.trials
    oos_items, winners = [], {}
    for k, (_, _, oos_lo, oos_hi) in enumerate(folds):
        part = trials[trials["fold"] == k]
        s = score(part, objective)
        if s.notna().sum() == 0:
            continue
        row = part.loc[s.idxmax()]
        params = {p: _plain(row[p]) for p in is_res.params_names}
        winners[k] = row
        w = min(warm, oos_lo)
        oos_items.append(Item(params, oos_lo, oos_hi, w, labels={"fold": k}, oos=True))
    oos_plan = Plan(
        bot, feed_obj, window, ref, oos_items, {**config, "phase": "oos"}, starting_cash
    )
    oos_res = run(oos_plan, name=is_res.name, report=lambda res, ctx: {}, phase="out-of-sample")
    ppy = window.periods_per_year
    base = TrialBase(bot.spec, bot.strategy_class(), starting_cash)
    rows, curves, last = [], [], starting_cash
    oos_by_fold = {int(r["fold"]): r for _, r in oos_res.trials.iterrows()}
    for k, (is_lo, is_hi, oos_lo, oos_hi) in enumerate(folds):
        if k not in winners or k not in oos_by_fold:
            continue
        win, oos = winners[k], oos_by_fold[k]
        item = next(it for it in oos_plan.items if it.labels["fold"] == k)
        rep = is_res.report["folds"].get(k, {})
        is_ann = cagr(float(win["total_return"]), is_hi - is_lo, ppy)
        is_sharpe = float(win["sharpe"])
        warning = (
            f"in-sample winner has a negative Sharpe ({is_sharpe:.2f}): no parameter set "
            "made money in this fold"
            if is_sharpe < 0
            else None
        )
        oos_ann = cagr(float(oos["total_return"]), oos_hi - oos_lo, ppy)
        rows.append(
            {
                "fold": k,
                "is_start": pd.Timestamp(ts[is_lo], tz="UTC"),
                "is_end": pd.Timestamp(ts[is_hi - 1], tz="UTC"),
                "oos_start": pd.Timestamp(ts[oos_lo], tz="UTC"),
                "oos_end": pd.Timestamp(ts[oos_hi - 1], tz="UTC"),
                **{p: _plain(win[p]) for p in is_res.params_names},
                "is_objective": float(score(pd.DataFrame([win]), objective).iloc[0]),
                "oos_objective": float(score(pd.DataFrame([oos]), objective).iloc[0]),
                "is_sharpe": is_sharpe,
                "oos_sharpe": float(oos["sharpe"]),
                "is_return_ann": is_ann,
                "oos_return_ann": oos_ann,
                "dsr": rep.get("dsr", float("nan")),
                "pbo": rep.get("pbo", float("nan")),
                "oos_key": oos["trial_key"],
                "warning": warning,
            }
        )
        if oos["status"] == "done":
            detail = replay(
                with_params(bot, item.params),
                base,
                window,
                item.params,
                item.lo,
                item.hi,
                item.warmup,
            )
            eq = detail.equity["equity"]
            curves.append(eq / eq.iloc[0] * last)
            last = float(curves[-1].iloc[-1])
    folds_df = pd.DataFrame(rows)
    equity = pd.concat(curves) if curves else pd.Series(dtype=float)
    equity.name = "equity"
    is_mean = folds_df["is_return_ann"].mean() if len(folds_df) else float("nan")
    oos_mean = folds_df["oos_return_ann"].mean() if len(folds_df) else float("nan")
    eff = float(oos_mean / is_mean) if is_mean and math.isfinite(is_mean) else float("nan")
    stability = {}
    for p in is_res.params_names:
        values = [_plain(v) for v in folds_df[p]] if len(folds_df) else []
        mode, count = Counter(values).most_common(1)[0] if values else (None, 0)
        numeric = [float(v) for v in values if isinstance(v, int | float)]
        mean = float(np.mean(numeric)) if numeric else float("nan")
        cv = float(np.std(numeric) / abs(mean)) if numeric and mean else float("nan")
        stability[p] = {
            "values": values,
            "mode": mode,
            "mode_share": count / len(values) if values else float("nan"),
            "cv": cv,
        }
    return WalkForwardResult(
        folds=folds_df,
        equity=equity,
        efficiency=eff,
        stability=stability,
        in_sample=is_res,
        out_of_sample=oos_res,
        objective=objective,
    )
