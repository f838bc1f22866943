"""Panel widgets and panes the kit streams into: read-only tables, inline-styled HTML."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn


class ReadOnlyTabulator(pn.widgets.Tabulator):
    """A :class:`panel.widgets.Tabulator` for tables the kit streams into, never edited.

    The browser sends a table's data back in some cases (a notebook front end
    does it when the table first renders). For a table fed from Python that
    copy is at best equal to what Python holds and at worst stale (rows
    streamed since), and applying a stale copy fails with ``Must have equal len
    keys``; in a notebook that error also leaves the output's document held, so
    no later update reached the browser. Here the browser's copy of the data
    is ignored; selection, sorting, paging and every other event pass as usual.
    """

    def _process_events(self, events: dict[str, Any]) -> None:
        events.pop("data", None)
        super()._process_events(events)


class InlineStylesheets:
    """Mixin: a pane's stylesheets stay inline when Panel inlines resources.

    Each update of an HTML pane or a number indicator sends its stylesheets
    again; Panel inlines them only when an output is first displayed, so in a
    notebook every later update pointed the browser at a CDN (failing offline).
    Here they are inlined on every update while ``pn.config.inline`` is set
    (see :func:`alphaswarm.extension`).
    """

    def _process_param_change(self, params: dict[str, Any]) -> dict[str, Any]:
        props = super()._process_param_change(params)  # type: ignore[misc]
        if "stylesheets" in props and pn.config.inline:
            from bokeh.models import ImportedStyleSheet
            from panel.io.notebook import replace_inline_css

            props["stylesheets"] = [
                replace_inline_css(s) if isinstance(s, ImportedStyleSheet) else s
                for s in props["stylesheets"]
            ]
        return props

    def _update(self, ref: str, model: Any) -> None:
        super()._update(ref, model)  # type: ignore[misc]
        if pn.config.inline:  # before the change is pushed to a notebook output
            from panel.io.notebook import patch_inline_stylesheets

            patch_inline_stylesheets(model)


class InlineHTML(InlineStylesheets, pn.pane.HTML):
    """An HTML pane whose stylesheets stay inline (see :class:`InlineStylesheets`)."""


class InlineNumber(InlineStylesheets, pn.indicators.Number):
    """A number indicator whose stylesheets stay inline (see :class:`InlineStylesheets`)."""


def show_rows(table: pn.widgets.Tabulator, rows: pd.DataFrame) -> bool:
    """Show ``rows`` in ``table``: patch the cells that changed, or replace the value.

    When ``rows`` lists the same ids (column ``id``) in the same order as the table
    already shows, only the changed cells are sent: a smaller message, and the
    browser restores the selection and scroll position after applying it. (Panel's
    Tabulator still redraws its rows for a patch, as for a new value: a click whose
    press and release straddle a redraw is lost either way.) Returns True when the
    value was replaced.
    """
    current = table.value
    if len(current) == len(rows) and current.reset_index(drop=True).equals(rows):
        return False
    if _same_rows(current, rows):
        table.patch(_changed_cells(current, rows))
        return False
    table.value = rows
    return True


def _same_rows(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """True when ``new`` lists the same ids as ``old``, in the same order and index."""
    return (
        len(old) == len(new)
        and list(old.columns) == list(new.columns)
        and old.index.equals(new.index)
        and list(old["id"]) == list(new["id"])
    )


def _changed_cells(old: pd.DataFrame, new: pd.DataFrame) -> dict[str, list[tuple[Any, Any]]]:
    """``{column: [(index, new value), ...]}`` of the cells that differ (a Tabulator patch)."""
    patch: dict[str, list[tuple[Any, Any]]] = {}
    for column in new.columns:
        for index, a, b in zip(new.index, old[column], new[column], strict=True):
            if not (a == b or (pd.isna(a) and pd.isna(b))):
                patch.setdefault(column, []).append((index, b))
    return patch
