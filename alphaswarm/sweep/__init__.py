"""Sweeps and walk-forward analysis, in this process or on a Dask cluster.

* :func:`sweep` -- backtest a bot over a parameter grid; returns a :class:`SweepResult`;
* :func:`walk_forward` -- rolling or anchored in-sample search, out-of-sample test;
* :mod:`alphaswarm.sweep.stats` -- PSR, DSR and PBO (CSCV).
"""

from __future__ import annotations

from alphaswarm.callable_module import make_callable
from alphaswarm.sweep.api import SweepResult, sweep
from alphaswarm.sweep.progress import SweepProgress
from alphaswarm.sweep.runner import close_clients, close_local_cluster
from alphaswarm.sweep.walkforward import WalkForwardResult, walk_forward

__all__ = [
    "SweepProgress",
    "SweepResult",
    "WalkForwardResult",
    "close_clients",
    "close_local_cluster",
    "sweep",
    "walk_forward",
]


make_callable(__name__, "sweep")  # aw.sweep(...) calls it; the package stays importable
