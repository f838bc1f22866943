"""Shared bits of the sweep tests: a small bot, a small grid, trial comparison."""

from __future__ import annotations

from typing import Any

import pandas as pd

import alphaswarm as aw
from alphaswarm.sweep import SweepResult, WalkForwardResult, sweep, walk_forward

GRID = {"fast": [3, 5, 8, 12], "slow": [20, 30, 50]}
BARS = 600
METRICS = [
    "sharpe",
    "sortino",
    "max_drawdown",
    "total_return",
    "num_trades",
    "win_rate",
    "exposure",
    "sr",
    "days",
    "skew",
    "kurt",
]


def small_bot(name: str = "sweep-test", seed: int = 3) -> aw.Bot:
    return aw.Bot(
        name=name,
        strategy="sma_cross",
        params={"fast": 5, "slow": 20},
        universe=["AAA", "BBB"],
        data={"feed": "synthetic", "seed": seed, "interval": "1d"},
    )


def metrics_table(trials: pd.DataFrame) -> pd.DataFrame:
    cols = ["trial_key", *GRID, "status", *METRICS]
    return trials[cols].sort_values("trial_key").reset_index(drop=True)


def assert_same_metrics(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(metrics_table(a), metrics_table(b), check_exact=True)


def serial_sweep(
    bot: aw.Bot, grid: dict[str, Any] | None = None, *, bars: int = BARS, **kw: Any
) -> SweepResult:
    """``sweep`` in this process over :data:`BARS` bars (default), no progress bar."""
    return sweep(bot, grid, bars=bars, backend="serial", progress=False, **kw)


def serial_walk_forward(
    bot: aw.Bot, grid: dict[str, Any], *, bars: int = BARS, **kw: Any
) -> WalkForwardResult:
    """``walk_forward`` in this process over :data:`BARS` bars (default), no progress bar."""
    return walk_forward(bot, grid, bars=bars, backend="serial", progress=False, **kw)
