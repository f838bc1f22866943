"""Research: backtests and reconciliations of paper runs against them.

``aw.backtest`` and ``aw.reconcile`` are these modules (:mod:`alphaswarm.backtest`
and :mod:`alphaswarm.reconcile` are their public names).
"""
