"""Optional extras (``alphaswarm[alpaca]``, ``alphaswarm[ccxt]``): imported when used.

A feed or broker that needs a provider's package imports it through
:func:`import_extra`, so a missing package is the same readable error everywhere.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["import_extra"]


def import_extra(
    modules: tuple[str, ...],
    *,
    package: str,
    extra: str,
    who: str,
    error: type[Exception],
    quiet: bool = False,
) -> ModuleType:
    """Import ``modules`` of an optional package; returns the package's top module.

    Parameters
    ----------
    modules : tuple of str
        Dotted modules to import (all of one top-level package).
    package : str
        The distribution's name, as ``pip`` knows it (``alpaca-py``).
    extra : str
        The kit's extra that installs it (``alpaca``).
    who : str
        What needs it, the start of the message (``"broker: 'alpaca_paper'"``).
    error : type of Exception
        Raised, with a one-line message, when the package is missing.
    quiet : bool
        Silence the DeprecationWarnings the package's own imports raise.

    Examples
    --------
    >>> extra = import_extra(("json.decoder",), package="-", extra="-", who="-", error=ValueError)
    >>> extra.__name__
    'json'
    """
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", DeprecationWarning)
            for name in modules:
                importlib.import_module(name)
    except ImportError:  # pragma: no cover - the extra is missing
        raise error(
            f"{who} needs the {package} package: pip install 'alphaswarm[{extra}]'"
        ) from None
    return importlib.import_module(modules[0].split(".")[0])
