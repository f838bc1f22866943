"""alphaswarm: a Jupyter-first research kit for paper trading.

The notebook API::

    import alphaswarm as aw
    bot = aw.Bot.from_yaml(open("bot.yaml").read())
    result = aw.backtest(bot, bars=7800)
    session = aw.PaperSession(bot, speed=60).start()
    aw.kill_switch().engage("enough")
    aw.Ledger().fills(session.paper_run_id)

Importing the package is cheap: every name below is imported on first use, so
``import alphaswarm`` loads neither Panel, HoloViews, Bokeh, Alembic, Dask nor a
broker SDK. ``aw.backtest``, ``aw.sweep`` and ``aw.reconcile`` are the modules of
those names, callable as their functions (``import alphaswarm.sweep as sw;
sw.stats`` works too; see :mod:`alphaswarm.callable_module`).
"""

from __future__ import annotations

__version__ = "0.1.0"  # first: submodules read it while the package imports

import importlib
from typing import TYPE_CHECKING, Any

from alphaswarm import views

if TYPE_CHECKING:
    # for type checkers and IDEs; at run time __getattr__ imports each on first use
    from alphaswarm import backtest, reconcile, sweep  # noqa: F401
    from alphaswarm.backtest import BacktestResult  # noqa: F401
    from alphaswarm.bots import Bot, BotSpecError  # noqa: F401
    from alphaswarm.engine.broker import BrokerConfig  # noqa: F401
    from alphaswarm.ledger import Ledger  # noqa: F401
    from alphaswarm.model import ModelError, OrderRequest, Side  # noqa: F401
    from alphaswarm.notebook import extension  # noqa: F401
    from alphaswarm.paper.gate import GateRefused, check_gate  # noqa: F401
    from alphaswarm.paper.killswitch import KillSwitch, KillSwitchEngaged, kill_switch  # noqa: F401
    from alphaswarm.paper.registry import registry  # noqa: F401
    from alphaswarm.paper.runtime import Runtime, get_ledger, set_ledger, use_runtime  # noqa: F401
    from alphaswarm.paper.session import PaperSession  # noqa: F401
    from alphaswarm.reconcile import Reconciliation  # noqa: F401
    from alphaswarm.risk.limits import RiskLimits  # noqa: F401
    from alphaswarm.strategies.base import Strategy  # noqa: F401
    from alphaswarm.sweep import SweepResult, WalkForwardResult, walk_forward  # noqa: F401

#: Public name -> (module, attribute); attribute None: the (callable) module itself.
_EXPORTS: dict[str, tuple[str, str | None]] = {
    # research
    "backtest": ("alphaswarm.backtest", None),
    "BacktestResult": ("alphaswarm.backtest", "BacktestResult"),
    "sweep": ("alphaswarm.sweep", None),
    "SweepResult": ("alphaswarm.sweep", "SweepResult"),
    "walk_forward": ("alphaswarm.sweep", "walk_forward"),
    "WalkForwardResult": ("alphaswarm.sweep", "WalkForwardResult"),
    "reconcile": ("alphaswarm.reconcile", None),
    "Reconciliation": ("alphaswarm.reconcile", "Reconciliation"),
    # what a bot is made of
    "Bot": ("alphaswarm.bots", "Bot"),
    "BotSpecError": ("alphaswarm.bots", "BotSpecError"),
    "Strategy": ("alphaswarm.strategies.base", "Strategy"),
    "OrderRequest": ("alphaswarm.model", "OrderRequest"),
    "Side": ("alphaswarm.model", "Side"),
    "BrokerConfig": ("alphaswarm.engine.broker", "BrokerConfig"),
    "RiskLimits": ("alphaswarm.risk.limits", "RiskLimits"),
    "ModelError": ("alphaswarm.model", "ModelError"),
    # paper trading
    "PaperSession": ("alphaswarm.paper.session", "PaperSession"),
    "GateRefused": ("alphaswarm.paper.gate", "GateRefused"),
    "check_gate": ("alphaswarm.paper.gate", "check_gate"),
    "registry": ("alphaswarm.paper.registry", "registry"),
    "KillSwitch": ("alphaswarm.paper.killswitch", "KillSwitch"),
    "KillSwitchEngaged": ("alphaswarm.paper.killswitch", "KillSwitchEngaged"),
    "kill_switch": ("alphaswarm.paper.killswitch", "kill_switch"),
    # the ledger
    "Ledger": ("alphaswarm.ledger", "Ledger"),
    "get_ledger": ("alphaswarm.paper.runtime", "get_ledger"),
    "set_ledger": ("alphaswarm.paper.runtime", "set_ledger"),
    # the collaborators of paper sessions (one per process by default)
    "Runtime": ("alphaswarm.paper.runtime", "Runtime"),
    "use_runtime": ("alphaswarm.paper.runtime", "use_runtime"),
    # notebooks
    "extension": ("alphaswarm.notebook", "extension"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'alphaswarm' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


def _ready_in_a_notebook() -> None:
    """In a notebook kernel, ``import alphaswarm as aw`` alone loads the notebook resources."""
    from alphaswarm.notebook import extension, in_notebook

    if in_notebook():
        extension()


_ready_in_a_notebook()


def _views_from_ui() -> None:
    """The package wires the layers: the ui registers the views domain objects ask for."""
    importlib.import_module("alphaswarm.ui.view_registry")


views.add_loader(_views_from_ui)
