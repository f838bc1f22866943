"""Sweep views: a heatmap of the objective over two parameters and IS vs OOS scatters.

All return HoloViews objects, so they render in a notebook, in a Panel layout and in
the dashboard alike. In :func:`heatmap` the parameters that are not on the axes
become widgets (a ``HoloMap`` over their values); its axes are categorical, one
equal cell per swept value in numeric order, so uneven grids (5, 10, 20, 50) leave
no gaps and no overlaps, and each cell is labelled with its value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from alphaswarm.metrics import METRIC_BY_NAME, PERCENT_METRICS

if TYPE_CHECKING:
    import pandas as pd

    from alphaswarm.sweep.api import SweepResult

__all__ = ["equity_curve", "halves_scatter", "heatmap", "is_oos_scatter"]

#: Most cells of a heatmap that get their value written in them.
MAX_LABELLED_CELLS = 150


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
    label = METRIC_BY_NAME[metric].label if metric in METRIC_BY_NAME else metric
    percent = metric in PERCENT_METRICS
    value_format = "0.00%" if percent else "0,0.00"
    xdim = hv.Dimension(x, values=_levels(frame[x]))
    ydim = hv.Dimension(y, values=_levels(frame[y]))
    zdim = hv.Dimension(metric, label=label)
    opts = {
        "tools": ["hover"],
        "colorbar": True,
        "cmap": "RdYlGn_r" if metric == "max_drawdown" else "RdYlGn",
        "clipping_colors": {"NaN": "#e0e0e0"},
        # responsive in width only: a plot stretching both ways makes the layout a
        # notebook wraps it in change its sizing mode, which Panel warns about
        "responsive": True,
        "height": 360,
        "xlabel": x,
        "ylabel": y,
        "title": f"{label} by {x} and {y}",
        "colorbar_opts": {"formatter": _numeral(value_format), "title": label},
        "hover_tooltips": [
            (x, f"@{{{x}}}"),
            (y, f"@{{{y}}}"),
            (label, f"@{{{metric}}}{{{value_format}}}"),
        ],
    }

    def one(part: pd.DataFrame) -> Any:
        agg = part.groupby([x, y], as_index=False)[metric].mean()
        agg[x] = agg[x].map(_level)
        agg[y] = agg[y].map(_level)
        cells = hv.HeatMap(agg, [xdim, ydim], zdim).opts(**opts)
        if len(agg) > MAX_LABELLED_CELLS:
            return cells
        text = agg.assign(text=[_cell_text(v, percent) for v in agg[metric]])
        labels = hv.Labels(text, [xdim, ydim], "text").opts(
            text_font_size="9pt", text_color="black"
        )
        return cells * labels

    if not others:
        return one(frame)
    maps = {
        key if isinstance(key, tuple) else (key,): one(part)
        for key, part in frame.groupby(others if len(others) > 1 else others[0])
    }
    return hv.HoloMap(maps, kdims=others)


def _level(value: Any) -> str:
    """A swept value as an axis category (``5``, ``0.25``, ``ema``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _levels(values: pd.Series) -> list[str]:
    """The distinct swept values as categories, in numeric order when they are numbers."""
    unique = list(dict.fromkeys(values.dropna()))
    try:
        unique = sorted(unique)
    except TypeError:
        unique = sorted(unique, key=str)
    return [_level(v) for v in unique]


def _cell_text(value: float, percent: bool) -> str:
    if value != value:
        return ""
    return f"{value:.1%}" if percent else f"{value:.2f}"


def _numeral(fmt: str) -> Any:
    from bokeh.models import NumeralTickFormatter

    return NumeralTickFormatter(format=fmt)


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
    plot = is_oos_scatter(result.halves(), "first_half", "second_half", label="trial_key")
    return plot.opts(
        title="Sharpe ratio of every trial: first half (x) vs second half (y) of the bars"
    )


def equity_curve(equity: pd.Series, title: str) -> Any:
    """An equity curve on an axis of bar positions labelled with their times.

    Closed markets (nights, weekends, the gap between walk-forward folds) take no
    room, so no straight line is drawn across them.
    """
    import pandas as pd

    from alphaswarm.ui.time_axis import TimeAxis

    hv = _hv()
    axis = TimeAxis.of(equity.index)
    frame = pd.DataFrame(
        {"bar": np.arange(len(equity)), "equity": equity.to_numpy(float), "time": axis.labels()}
    )
    return hv.Curve(
        frame,
        hv.Dimension("bar", label="Time (UTC; closed markets take no room)"),
        [hv.Dimension("equity", label="Equity"), "time"],
        label=title,
    ).opts(
        responsive=True,
        height=260,
        color="#1565c0",
        line_width=2,
        tools=["hover"],
        hover_tooltips=[("time", "@time"), ("equity", "@equity{0,0.00}")],
        xformatter=axis.formatter(),
        xticks=axis.ticker(),
        yformatter=_numeral("0,0"),
        show_grid=True,
        title=title,
    )
