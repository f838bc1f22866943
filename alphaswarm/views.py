"""Where a domain object finds the view it renders with.

Results, sessions and reconciliations display as Panel views (``__panel__``,
``result.plot()``), but the views live in :mod:`alphaswarm.ui`, a higher layer
than the objects (docs/architecture.md). So the objects ask this registry by
*kind* and :mod:`alphaswarm.ui` registers its views into it when it is imported
(which ``aw.extension()`` and the dashboard do). The package's composition root
(:mod:`alphaswarm`) adds a loader that imports them on the first lookup, so a
script that never imported the ui still gets its plots.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ViewNotRegistered", "add_loader", "register_view", "registered", "view"]

_views: dict[str, Callable[..., Any]] = {}
_loaders: list[Callable[[], object]] = []
_lock = threading.Lock()


class ViewNotRegistered(LookupError):
    """No view is registered for a kind (the ui was not loaded)."""


def register_view(kind: str, factory: Callable[..., Any]) -> None:
    """Register the view of ``kind``: ``factory(obj, **options)`` returns it.

    Parameters
    ----------
    kind : str
        What is rendered, e.g. ``"backtest"``, ``"paper_session"``.
    factory : callable
        Builds the view from the object (and keyword options).
    """
    _views[kind] = factory


def add_loader(loader: Callable[[], object]) -> None:
    """Run ``loader`` (once) when a kind is looked up that nothing registered yet.

    Parameters
    ----------
    loader : callable
        Registers views as a side effect (typically by importing the module that
        registers them).
    """
    with _lock:
        _loaders.append(loader)


def registered() -> list[str]:
    """The kinds that have a view."""
    return sorted(_views)


def view(kind: str, *args: Any, **options: Any) -> Any:
    """The view of ``kind`` built from ``args`` and ``options``.

    Raises
    ------
    ViewNotRegistered
        When no view of that kind is registered, even after running the loaders.
    """
    factory = _views.get(kind)
    if factory is None:
        with _lock:
            pending, _loaders[:] = list(_loaders), []
        for loader in pending:
            loader()
        factory = _views.get(kind)
    if factory is None:
        raise ViewNotRegistered(
            f"no view registered for {kind!r}: import alphaswarm.ui (or call aw.extension()) first"
        )
    return factory(*args, **options)
