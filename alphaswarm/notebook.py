"""Make a notebook ready for the kit's views in one call, offline.

:func:`extension` loads what every kit view needs in a Jupyter notebook:
Panel with its Tabulator table and HoloViews with the Bokeh backend, their
JavaScript and CSS inlined from the installed packages (no CDN, so outputs
render with no network and in exported HTML). It runs once per kernel;
displaying a kit object (a :class:`~alphaswarm.paper.session.PaperSession`,
a reconciliation ...) calls it first, so ``import alphaswarm as aw`` is the
only setup a notebook needs.
"""

from __future__ import annotations

import builtins
import threading
from typing import Any

_lock = threading.Lock()
_loaded = False

#: Panel extensions the kit's views use.
PANEL_EXTENSIONS: tuple[str, ...] = ("tabulator",)


def in_notebook() -> bool:
    """True when running in an IPython kernel that a notebook front end talks to."""
    if not hasattr(builtins, "__IPYTHON__"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython defines __IPYTHON__
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def loaded() -> bool:
    """True once :func:`extension` has loaded the notebook resources in this kernel."""
    return _loaded


def extension(*, force: bool = False) -> None:
    """Load Panel (with Tabulator) and HoloViews' Bokeh backend for this notebook.

    Resources are inlined from the installed packages, so outputs render
    offline and in HTML exported with ``jupyter nbconvert``. Call it once at the
    top of a notebook, like ``pn.extension()``; further calls do nothing.
    Displaying a kit object calls it for you.

    Outside a notebook (a script, the dashboard server) only the Bokeh plotting
    backend is registered, nothing is displayed.

    Parameters
    ----------
    force : bool
        Load again even if already loaded (after the front end was reloaded).
    """
    global _loaded
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh renderer
    import panel as pn

    with _lock:
        if _loaded and not force:
            return
        if not in_notebook():
            bokeh_backend()
            return
        _loaded = True
    # HoloViews first: it installs the display hooks of hv objects and loads Bokeh;
    # Panel then adds its own models and Tabulator's, in the same inline mode.
    pn.config.inline = True
    hv.extension("bokeh", logo=False, inline=True)
    pn.extension(*PANEL_EXTENSIONS, inline=True)
    install_inline_stylesheets()


def inline_stylesheets(viewable: Any, root: Any, changed: Any = None, old: Any = None) -> None:
    """Replace Panel's CDN stylesheets in a notebook output's models by their text.

    A Panel preprocessing hook. Panel inlines the stylesheets of what it renders
    itself, but not of outputs HoloViews renders (an ``hv`` object displayed in a
    cell) nor of every later update; those models would fetch Panel's CSS (theme,
    layout, loading spinner) from its CDN, which fails offline. Documents of a
    Panel server (the dashboard) are left alone: their stylesheets are served locally.

    Parameters
    ----------
    viewable : panel.viewable.Viewable
        The object whose model tree was rendered.
    root : bokeh.model.Model
        The root model of the output.
    changed : panel.viewable.Viewable, optional
        The object whose models changed (an update); only those are visited.
    old : list, optional
        Models that did not change (unused).
    """
    from bokeh.models import UIElement
    from panel.io.notebook import patch_inline_stylesheets

    doc = root.document
    if doc is not None and doc.session_context is not None:
        return
    target = root
    if changed is not None and changed is not viewable:
        target = changed._models.get(root.ref["id"], (root,))[0]
    for model in target.select({"type": UIElement}):
        patch_inline_stylesheets(model)


def install_inline_stylesheets() -> None:
    """Register :func:`inline_stylesheets` with Panel (once); :func:`extension` does."""
    from panel.viewable import Viewable

    if inline_stylesheets not in Viewable._preprocessing_hooks:
        Viewable._preprocessing_hooks.append(inline_stylesheets)


def bokeh_backend() -> None:
    """Register HoloViews' Bokeh renderer and make it current; displays nothing."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh renderer

    if hv.Store.current_backend != "bokeh":
        hv.Store.set_current_backend("bokeh")


def ensure_extension() -> None:
    """Call :func:`extension` if a notebook has not loaded it yet (cheap otherwise)."""
    if not _loaded and in_notebook():
        extension()


def notebook_mimebundle(obj: Any, include: Any = None, exclude: Any = None) -> Any:
    """The rich display of a kit object: its ``__panel__()`` view, extensions loaded first.

    Parameters
    ----------
    obj : object
        A kit object with a ``__panel__`` method.
    include, exclude : optional
        Passed on to Panel's ``_repr_mimebundle_``.
    """
    import panel as pn

    ensure_extension()
    view = obj.__panel__()
    # a view with a display of its own (a live view ties its pump to the output)
    target = view if hasattr(view, "_repr_mimebundle_") else pn.panel(view)
    return target._repr_mimebundle_(include, exclude)
