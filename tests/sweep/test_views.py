"""Sweep views rendered headless to Bokeh: the heatmap's categorical axes (one equal cell
per swept value, in numeric order, no gaps), the scatter, a trial's detail and the
walk-forward equity on the ordinal time axis.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
from bokeh.models import CustomJSTickFormatter, FactorRange, GlyphRenderer
from bokeh.plotting import figure as Figure

from alphaswarm.sweep import sweep, walk_forward
from tests.sweep.helpers import BARS, small_bot


def renderers(fig: Any) -> dict[str, list[GlyphRenderer]]:
    found: dict[str, list[GlyphRenderer]] = {}
    for r in fig.select({"type": GlyphRenderer}):
        found.setdefault(type(r.glyph).__name__, []).append(r)
    return found


def test_heatmap_has_one_equal_cell_per_value_in_numeric_order() -> None:
    grid = {"fast": [3, 5, 10, 20], "slow": [30, 45, 100]}  # uneven steps
    res = sweep(small_bot(), grid, bars=BARS, backend="serial", ledger=False, progress=False)
    fig = hv.render(res.heatmap("fast", "slow"))
    assert isinstance(fig.x_range, FactorRange) and isinstance(fig.y_range, FactorRange)
    assert list(fig.x_range.factors) == ["3", "5", "10", "20"]
    assert list(fig.y_range.factors) == ["30", "45", "100"]
    (cells,) = renderers(fig)["Rect"]
    data = cells.data_source.data
    assert len(data["fast"]) == 12 and not np.isnan(np.asarray(data["sharpe"], float)).any()
    assert cells.glyph.width == 1 and cells.glyph.height == 1  # cells touch: no white gaps
    labels = renderers(fig)["Text"][0].data_source.data["text"]
    assert len(labels) == 12 and all("e+" not in t for t in labels)
    assert fig.title.text == "Sharpe ratio by fast and slow"


def test_sweep_views_render_to_bokeh_models() -> None:
    res = sweep(
        small_bot(),
        {"fast": [3, 8], "slow": [20, 40]},
        bars=BARS,
        backend="serial",
        ledger=False,
        progress=False,
    )
    scatter = hv.render(res.scatter())
    assert "Scatter" in renderers(scatter)
    root = pn.panel(res.rerun().plot()).get_root()  # a trial's detail: the backtest view
    figs = list(root.select({"type": Figure}))
    assert {"AAA price", "BBB price", "Equity"} <= {f.yaxis[0].axis_label for f in figs}


def test_walk_forward_equity_is_drawn_on_the_ordinal_time_axis() -> None:
    wf = walk_forward(
        small_bot(),
        {"fast": [3, 8], "slow": [20]},
        train=200,
        test=100,
        bars=BARS,
        backend="serial",
        ledger=False,
        progress=False,
    )
    fig = hv.render(wf.plot())
    (line,) = renderers(fig)["Line"]
    assert np.array_equal(line.data_source.data["bar"], np.arange(len(wf.equity)))
    assert isinstance(fig.xaxis[0].formatter, CustomJSTickFormatter)
    assert fig.yaxis[0].axis_label == "Equity"


def test_sweep_table_shows_percentages_and_no_exponents() -> None:
    grid = {"fast": [3, 8], "slow": [20, 40], "allocation": [0.000025, 0.5]}
    res = sweep(small_bot(), grid, bars=BARS, backend="serial", ledger=False, progress=False)
    page = res._repr_html_()
    assert "%" in page and "2.5e-05" not in page and "e+" not in page
    assert "0.000025" in page
