"""ReadOnlyTabulator: a Tabulator whose rows only the Python side changes."""

from __future__ import annotations

from typing import Any

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
