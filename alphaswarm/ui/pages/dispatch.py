"""Which content a page address shows (every page but the overview's run list)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alphaswarm.ui.routes import Route


def page_content(route: Route, ledger: Any = None) -> Any:
    """The content of ``route``'s page, or ``None`` for the overview and run pages.

    Parameters
    ----------
    route : Route
        The page the address names.
    ledger : Ledger, optional
        The ledger to read; the process default otherwise.
    """
    if route.page == "bots":
        from alphaswarm.ui.pages.bots import BotsPage

        return BotsPage(ledger=ledger)
    if route.page == "bot":
        from alphaswarm.ui.pages.bot import BotPage

        return BotPage(bot_id=route.ident, ledger=ledger)
    if route.page == "backtest":
        from alphaswarm.ui.pages.backtests import BacktestPage

        return BacktestPage(backtest_id=route.ident, ledger=ledger)
    if route.page == "sweeps":
        from alphaswarm.ui.pages.sweeps import SweepsPage

        return SweepsPage(ledger=ledger)
    if route.page == "sweep":
        from alphaswarm.ui.pages.sweeps import SweepPage

        return SweepPage(name=route.ident, ledger=ledger)
    return None
