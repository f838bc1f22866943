"""alphaswarm: a Jupyter-first research kit for paper trading.

The notebook API::

    import alphaswarm as aw
    bot = aw.Bot.from_yaml(open("bot.yaml").read())
    result = aw.backtest(bot, bars=7800)
    session = aw.PaperSession(bot, speed=60).start()
    aw.kill_switch().engage("enough")
    aw.Ledger().fills(session.paper_run_id)
"""

from __future__ import annotations

__version__ = "0.1.0"  # first: submodules read it while the package imports

from alphaswarm.backtest import BacktestResult, backtest
from alphaswarm.bots import Bot, BotSpecError
from alphaswarm.killswitch import KillSwitch, KillSwitchEngaged, kill_switch
from alphaswarm.ledger import Ledger
from alphaswarm.model import ModelError
from alphaswarm.notebook import extension, in_notebook
from alphaswarm.reconcile import reconcile
from alphaswarm.runtime import get_ledger, set_ledger
from alphaswarm.sweep import SweepResult, sweep, walk_forward
from alphaswarm.trading.gate import GateRefused, check_gate
from alphaswarm.trading.registry import registry
from alphaswarm.trading.session import PaperSession

__all__ = [
    "BacktestResult",
    "Bot",
    "BotSpecError",
    "GateRefused",
    "KillSwitch",
    "KillSwitchEngaged",
    "Ledger",
    "ModelError",
    "PaperSession",
    "__version__",
    "backtest",
    "check_gate",
    "extension",
    "get_ledger",
    "kill_switch",
    "reconcile",
    "registry",
    "set_ledger",
    "sweep",
    "walk_forward",
    "SweepResult",
]

if in_notebook():  # a notebook needs nothing but ``import alphaswarm as aw``
    extension()
