"""The ui's views, registered for the domain objects that render with them.

Importing :mod:`alphaswarm.ui` imports this module, which registers each view in
:mod:`alphaswarm.views` under the kind its object asks for: a
:class:`~alphaswarm.backtest.BacktestResult` asks for ``"backtest"``, a
:class:`~alphaswarm.paper.session.PaperSession` for ``"paper_session"`` and so on.
The view modules themselves are imported only when a view is built.
"""

from __future__ import annotations

from typing import Any

from alphaswarm.views import register_view

__all__ = ["VIEWS"]


def _backtest(result: Any, **options: Any) -> Any:
    from alphaswarm.ui.backtest_view import BacktestView

    return BacktestView(result, **options)


def _reconciliation(reconciliation: Any) -> Any:
    from alphaswarm.ui.reconcile_view import ReconciliationView

    return ReconciliationView(reconciliation=reconciliation)


def _paper_session(session: Any) -> Any:
    from alphaswarm.ui.session_view import SessionView

    return SessionView(session=session)


def _sweep_progress(progress: Any) -> Any:
    from alphaswarm.ui.sweep_progress import SweepProgressView

    return SweepProgressView(progress)


def _sweep_chart(name: str) -> Any:
    def build(*args: Any, **options: Any) -> Any:
        from alphaswarm.ui import sweep_views

        return getattr(sweep_views, name)(*args, **options)

    build.__name__ = name
    return build


#: Kind -> factory, as registered.
VIEWS: dict[str, Any] = {
    "backtest": _backtest,
    "reconciliation": _reconciliation,
    "paper_session": _paper_session,
    "sweep_progress": _sweep_progress,
    "sweep_heatmap": _sweep_chart("heatmap"),
    "sweep_halves_scatter": _sweep_chart("halves_scatter"),
    "sweep_is_oos_scatter": _sweep_chart("is_oos_scatter"),
    "sweep_equity_curve": _sweep_chart("equity_curve"),
}

for _kind, _factory in VIEWS.items():
    register_view(_kind, _factory)
