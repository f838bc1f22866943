"""An executed notebook exported to HTML renders its plots in Chromium, offline.

The notebook runs in a real kernel (``nbclient``), ``nbconvert``'s HTML exporter
writes the page, and Chromium opens it from disk with every network request
blocked: the kit's outputs carry Bokeh's and Panel's JavaScript and CSS inline,
so the plots draw (canvases present) with no failed request and no console error.
nbconvert's own template links require.js and MathJax from a CDN; the export
points those at empty local scripts, as an offline export would.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Stands in for nbconvert's require.js and MathJax links (nothing the kit needs).
EMPTY_SCRIPT = "data:text/javascript,"

CELLS = [
    "import alphaswarm as aw\nimport holoviews as hv\n\naw.extension()",
    "bot = aw.Bot(name='export-demo', strategy='sma_cross', params={'fast': 5, 'slow': 20})\n"
    "result = aw.backtest(bot, bars=600, store=False)\n"
    "result.plot()",
    "hv.Curve([(0, 1), (1, 3), (2, 2)], 'x', 'y').opts(title='a HoloViews cell')",
]

pytestmark = [pytest.mark.ui, pytest.mark.notebooks, pytest.mark.timeout(600)]


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The notebook executed in a real kernel (temporary ledger) and exported to HTML."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    monkeypatch.setenv("ALPHASWARM_DB_URL", f"sqlite:///{tmp_path}/ledger.db")
    monkeypatch.setenv("ALPHASWARM_HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "py"}
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert errors == [], errors
    exporter = nbconvert.HTMLExporter(require_js_url=EMPTY_SCRIPT, mathjax_url=EMPTY_SCRIPT)
    with warnings.catch_warnings():
        # the empty display_data a Panel/HoloViews output sends alongside: nothing to show
        warnings.filterwarnings("ignore", "Your element with mimetype", UserWarning)
        body, _resources = exporter.from_notebook_node(nb)
    out = tmp_path / "export.html"
    out.write_text(body, encoding="utf-8")
    return out


def test_exported_notebook_renders_offline(exported: Path, page: Any) -> None:
    blocked: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(exported.as_uri())
    deadline = time.monotonic() + 60
    # the backtest view's price, equity, drawdown and P&L plots, and the HoloViews curve
    while page.locator("canvas").count() < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert page.locator("canvas").count() >= 2, "the exported plots did not render"
    assert blocked == [], blocked
    assert errors == [], errors
