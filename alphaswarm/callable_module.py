"""A module that is also its main function: ``aw.backtest(...)`` and ``alphaswarm.backtest.X``.

``alphaswarm.backtest``, ``alphaswarm.sweep`` and ``alphaswarm.reconcile`` are
modules named after the function they are about. Python binds a submodule to its
package's attribute of the same name, and ``import alphaswarm.sweep as sw`` reads
that attribute: a function stored there would hide the module (``sw.stats`` would
fail). So the attribute stays the module, and the module runs its function when
called: ``aw.sweep(bot, grid)`` is ``alphaswarm.sweep.sweep(bot, grid)``, whichever
was imported first.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

__all__ = ["CallableModule", "make_callable"]


class CallableModule(types.ModuleType):
    """A module whose call runs its function named by ``__entry__``."""

    __entry__: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the module's entry function with the same arguments."""
        return getattr(self, self.__entry__)(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        """The entry function's signature (what ``help`` and IDEs show for a call)."""
        return inspect.signature(getattr(self, self.__entry__))


def make_callable(module_name: str, entry: str) -> None:
    """Make the module ``module_name`` callable as its function ``entry``.

    Parameters
    ----------
    module_name : str
        A module already in :data:`sys.modules` (call it at the end of the module).
    entry : str
        The name of the module's function a call runs.
    """
    module = sys.modules[module_name]
    if not callable(getattr(module, entry, None)):
        raise TypeError(f"{module_name}.{entry} is not a function")
    module.__entry__ = entry
    module.__class__ = CallableModule
