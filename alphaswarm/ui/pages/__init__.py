"""The dashboard's pages beside the overview: bots, a bot, a backtest, sweeps, a sweep.

Each module builds one page's content from the ledger; :mod:`alphaswarm.ui.app`
picks the page the address names (see :mod:`alphaswarm.ui.routes`).
"""
