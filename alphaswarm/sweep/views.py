"""Sweep views: a heatmap of the objective over two parameters and IS vs OOS scatters.

Both return HoloViews objects, so they render in a notebook, in a Panel layout and in
the dashboard alike. In :func:`heatmap` the parameters that are not on the axes
become widgets (a ``HoloMap`` over their values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from alphaswarm.sweep.api import SweepResult

__all__ = ["halves_scatter", "heatmap", "is_oos_scatter"]


def _hv() -> Any:
    """HoloViews with the Bokeh plotting backend loaded (options need one)."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401

    return hv


def heatmap(result: SweepResult, x: str, y: str, metric: str | None = None) -> Any:
    """Heatmap of a metric over parameters ``x`` and ``y``.

    Parameters
    ----------
    result : SweepResult
        A finished (or partly finished) sweep.
    x, y : str
        Swept parameters on the axes.
    metric : str, optional
        Metric to colour by (default the sweep's objective, or ``sharpe`` when the
        objective is a function).

    Returns
    -------
    holoviews.HeatMap or holoviews.HoloMap
        A HoloMap keyed by the other swept parameters (rendered with widgets) when
        there are any.
    """
    hv = _hv()
    names = list(result.params_names)
    for p in (x, y):
        if p not in names:
            raise ValueError(f"{p!r} is not a swept parameter; swept: {', '.join(names)}")
    if metric is None:
        metric = result.objective if isinstance(result.objective, str) else "sharpe"
    frame = result.trials
    frame = frame[frame["status"] == "done"]
    others = [p for p in names if p not in (x, y)]
    opts = {
        "tools": ["hover"],
        "colorbar": True,
        "cmap": "RdYlGn",
        "responsive": True,
        "height": 320,
        "title": f"{metric} by {x} and {y}",
    }
    if metric == "max_drawdown":
        opts["cmap"] = "RdYlGn_r"

    def one(part: pd.DataFrame) -> Any:
        agg = part.groupby([x, y], as_index=False)[metric].mean()
        return hv.HeatMap(agg, [x, y], metric).opts(**opts)

    if not others:
        return one(frame)
    maps = {
        key if isinstance(key, tuple) else (key,): one(part)
        for key, part in frame.groupby(others if len(others) > 1 else others[0])
    }
    return hv.HoloMap(maps, kdims=others)


def is_oos_scatter(frame: pd.DataFrame, is_col: str, oos_col: str, label: str = "") -> Any:
    """Scatter of in-sample vs out-of-sample values with the ``y = x`` diagonal."""
    hv = _hv()
    data = frame[[is_col, oos_col, *([label] if label else [])]].dropna(subset=[is_col, oos_col])
    values = np.concatenate([data[is_col].to_numpy(float), data[oos_col].to_numpy(float), [0.0]])
    lo, hi = float(np.min(values)), float(np.max(values))
    diagonal = hv.Curve([(lo, lo), (hi, hi)], is_col, oos_col, label="y = x").opts(
        color="gray", line_dash="dashed"
    )
    vdims = [oos_col, *([label] if label else [])]
    points = hv.Scatter(data, is_col, vdims, label="trials").opts(
        tools=["hover"],
        size=7,
        alpha=0.7,
        responsive=True,
        height=320,
        xlabel="in sample",
        ylabel="out of sample",
    )
    return (points * diagonal).opts(title=f"{is_col} vs {oos_col}")


def halves_scatter(result: SweepResult) -> Any:
    """Annualised Sharpe of every trial on the first vs the second half of the data."""
    return is_oos_scatter(result.halves(), "first_half", "second_half", label="trial_key")
