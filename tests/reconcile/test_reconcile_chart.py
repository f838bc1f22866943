"""The reconciliation view draws the P&L effect of each cause as a Bokeh bar chart."""

from __future__ import annotations

from bokeh.document import Document
from bokeh.models import ColumnDataSource, Plot
from pyviz_comms import Comm

from alphaswarm.reconcile import reconcile
from alphaswarm.ui.reconcile_view import LOSS_COLOR, ReconciliationView
from tests.reconcile.conftest import scripted_spec


def test_the_view_draws_one_bar_per_cause(paper_run, ledger):
    session = paper_run(scripted_spec(risk={"kill_switch_attached": True, "max_order_qty": 400}))
    rec = reconcile(session.paper_run_id, ledger, bot=scripted_spec())
    view = ReconciliationView(reconciliation=rec)
    assert view.chart in view.__panel__().select()
    root = view.chart.get_root(Document(), Comm())
    plots = list(root.select({"type": Plot}))
    assert len(plots) == 1, "no chart in the reconciliation view"
    bars = [s.data for s in plots[0].select({"type": ColumnDataSource}) if "cause" in s.data]
    assert bars, "the chart has no bars"
    explained = rec.summary["explained"]
    assert sorted(bars[0]["cause"]) == sorted(explained)
    for cause, color in zip(bars[0]["cause"], bars[0]["color"], strict=True):
        assert (color == LOSS_COLOR) == (explained[cause] < 0)
