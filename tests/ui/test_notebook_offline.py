"""Notebook outputs carry Panel's CSS inline: nothing is fetched from a CDN.

HoloViews renders an ``hv`` object displayed in a cell itself, without Panel's
inline pass, so its layout, theme and loading-spinner stylesheets pointed at
Panel's CDN (notebooks 02, 03 and 04 in JupyterLab, offline).
"""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - the Bokeh renderer (options need it)
import pytest
from bokeh.models import ImportedStyleSheet, UIElement
from panel.io.resources import CDN_DIST
from panel.viewable import Viewable

from alphaswarm import notebook


@pytest.fixture
def inline_hook():
    """The kit's notebook stylesheet pass, registered as ``aw.extension()`` does."""
    before = list(Viewable._preprocessing_hooks)
    notebook.install_inline_stylesheets()
    yield
    Viewable._preprocessing_hooks[:] = before


def _cdn_stylesheets(obj) -> list[str]:
    """Render ``obj`` as the notebook display hook does; its stylesheets from the CDN."""
    renderer = hv.renderer("bokeh")
    plot, _fmt = renderer._validate(obj, None)
    model = plot.layout._render_model(comm=renderer.comm_manager.get_server_comm())
    return [
        sheet.url
        for element in model.select({"type": UIElement})
        for sheet in element.stylesheets
        if isinstance(sheet, ImportedStyleSheet) and sheet.url.startswith(CDN_DIST)
    ]


def test_a_displayed_holoviews_plot_fetches_no_css(inline_hook):
    curve = hv.Curve([(0, 1), (1, 3), (2, 2)]).opts(responsive=True, height=200)
    assert _cdn_stylesheets(curve) == []


def test_extension_registers_the_stylesheet_pass(monkeypatch):
    import panel as pn

    before = list(Viewable._preprocessing_hooks)
    monkeypatch.setattr(notebook, "in_notebook", lambda: True)
    monkeypatch.setattr(notebook, "_loaded", False)
    monkeypatch.setattr(pn.config, "inline", pn.config.inline)
    monkeypatch.setattr(pn, "extension", lambda *a, **k: None)
    monkeypatch.setattr(hv, "extension", lambda *a, **k: None)
    try:
        notebook.extension()
        assert notebook.inline_stylesheets in Viewable._preprocessing_hooks
    finally:
        Viewable._preprocessing_hooks[:] = before
