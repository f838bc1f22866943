"""Strategies: the base class, built-ins, and resolving a bot's ``strategy:`` reference."""

from __future__ import annotations

import importlib
import os

from alphaswarm.model import ModelError
from alphaswarm.strategies.base import SIGNALS, Strategy, StrategyContext
from alphaswarm.strategies.builtin import BuyAndHold, MeanReversion, SmaCross

BUILTINS: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (SmaCross, MeanReversion, BuyAndHold)
}

#: Module prefixes a ``package.module:ClassName`` reference may import from.
#: Extend with the ``ALPHASWARM_STRATEGY_MODULES`` environment variable
#: (comma-separated prefixes, ``*`` for any) or :func:`allow_strategy_module`.
ALLOWED_MODULES: list[str] = ["alphaswarm.strategies", "strategies"]


def allow_strategy_module(prefix: str) -> None:
    """Allow ``package.module:ClassName`` references under ``prefix``."""
    if prefix not in ALLOWED_MODULES:
        ALLOWED_MODULES.append(prefix)


def _module_allowed(module: str) -> bool:
    extra = [p.strip() for p in os.environ.get("ALPHASWARM_STRATEGY_MODULES", "").split(",")]
    for prefix in [*ALLOWED_MODULES, *filter(None, extra)]:
        if prefix == "*" or module == prefix or module.startswith(prefix + "."):
            return True
    return False


def resolve_strategy(ref: str | type[Strategy]) -> type[Strategy]:
    """Return the Strategy class a bot names.

    Parameters
    ----------
    ref : str or Strategy subclass
        A built-in name (``sma_cross``, ``mean_reversion``, ``buy_and_hold``), a
        ``package.module:ClassName`` reference under an allowed module prefix, or
        a Strategy subclass.
    """
    if isinstance(ref, type) and issubclass(ref, Strategy):
        return ref
    if not isinstance(ref, str) or not ref.strip():
        raise ModelError(f"strategy: expected a name or 'package.module:Class', got {ref!r}")
    if ref in BUILTINS:
        return BUILTINS[ref]
    if ":" not in ref:
        raise ModelError(
            f"strategy: unknown strategy {ref!r}; built-ins: {', '.join(sorted(BUILTINS))}, "
            "or 'package.module:ClassName'"
        )
    module_name, _, class_name = ref.partition(":")
    if not _module_allowed(module_name):
        raise ModelError(
            f"strategy: importing {module_name!r} is not allowed; allowed prefixes: "
            f"{', '.join(ALLOWED_MODULES)} (extend with ALPHASWARM_STRATEGY_MODULES)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"strategy: cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ModelError(f"strategy: {ref!r} is not a Strategy subclass")
    return cls


__all__ = [
    "BUILTINS",
    "SIGNALS",
    "BuyAndHold",
    "MeanReversion",
    "SmaCross",
    "Strategy",
    "StrategyContext",
    "allow_strategy_module",
    "resolve_strategy",
]
