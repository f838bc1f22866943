"""Keep ``alphaswarm serve``'s log configuration when Dask's ``distributed`` loads.

Importing ``distributed`` sets the ``tornado`` logger to CRITICAL (and ``bokeh`` to
ERROR), which silences the server's access log and its request warnings for the
rest of the process; a sweep on a local cluster run inside the server's process
imports it. The ``serve`` command, which owns its process, imports ``distributed``
up front (when installed) and puts back the levels, handlers and propagation the
server's loggers had before. Library code never calls this.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

__all__ = ["SERVER_LOGGERS", "keep_server_logging"]

#: The loggers the server writes through (``tornado.access`` is the access log).
SERVER_LOGGERS = (
    "tornado",
    "tornado.access",
    "tornado.application",
    "tornado.general",
    "bokeh",
)


@dataclass(frozen=True)
class _LoggerState:
    level: int
    handlers: tuple[logging.Handler, ...]
    propagate: bool

    @classmethod
    def of(cls, logger: logging.Logger) -> _LoggerState:
        return cls(logger.level, tuple(logger.handlers), logger.propagate)

    def restore(self, logger: logging.Logger) -> None:
        logger.setLevel(self.level)
        logger.handlers[:] = list(self.handlers)
        logger.propagate = self.propagate


def keep_server_logging(module: str = "distributed") -> bool:
    """Import ``module`` now and restore the server loggers' configuration after it.

    For the ``serve`` command only: it changes this process's logging state.

    Parameters
    ----------
    module : str
        The module whose import reconfigures logging.

    Returns
    -------
    bool
        Whether ``module`` was imported (``False`` when it is not installed).
    """
    before = {name: _LoggerState.of(logging.getLogger(name)) for name in SERVER_LOGGERS}
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    finally:
        for name, state in before.items():
            state.restore(logging.getLogger(name))
    return True
