"""Plots displayed by a notebook's HoloViews display hook warn about nothing.

The hook wraps a plot in a centred Panel layout; a plot that stretches in both
directions made Panel override that layout's sizing mode and log a warning, which
JupyterLab showed as the cell's stderr (notebooks 02 and 04).
"""

from __future__ import annotations

import logging

import holoviews as hv
import pytest

import alphaswarm as aw
from alphaswarm.sweep import sweep, walk_forward

BOT = {
    "name": "sizing-demo", "strategy": "sma_cross", "params": {"fast": 10, "slow": 30},
    "universe": ["AAA"], "data": {"feed": "synthetic", "seed": 11, "interval": "1d"},
}  # fmt: skip
GRID = {"fast": [3, 5], "slow": [30, 50]}


def _displayed_warnings(obj, caplog) -> list[str]:
    """Render ``obj`` as the notebook display hook does; the warnings it logged."""
    import holoviews.plotting.bokeh  # noqa: F401 - the Bokeh renderer

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        hv.renderer("bokeh").components(obj, fmt="html", comm=True)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    aw.set_ledger(f"sqlite:///{tmp_path_factory.mktemp('sizing')}/l.db")
    try:
        yield sweep(aw.Bot(BOT), GRID, bars=600, backend="serial", progress=False)
    finally:
        aw.set_ledger(None)


def test_sweep_heatmap_displays_without_a_sizing_warning(swept, caplog):
    assert _displayed_warnings(swept.heatmap("fast", "slow"), caplog) == []


def test_walk_forward_plot_displays_without_a_sizing_warning(swept, caplog):
    wf = walk_forward(aw.Bot(BOT), GRID, train=250, test=100, gap=5, bars=600, backend="serial")
    assert _displayed_warnings((wf.plot() + wf.scatter()).cols(1), caplog) == []
