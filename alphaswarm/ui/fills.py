"""FillsTable: the run's fills in a Tabulator, streamed with a bounded rollover."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import param
from bokeh.models.widgets.tables import NumberFormatter

from alphaswarm.ui.base import LiveView, stream_rows
from alphaswarm.ui.tables import ReadOnlyTabulator

if TYPE_CHECKING:
    import panel as pn

COLUMNS = ["filled_at", "symbol", "side", "qty", "price", "commission", "order_id", "fill_id"]


def _bar_time_text(value: Any) -> str:
    """A fill's bar time (UTC in the ledger and in frames), labelled with its zone."""
    text = str(value or "")[:19].replace("T", " ")
    return f"{text} UTC" if text and text != "NaT" else ""


def _fill_row(fill: dict[str, Any]) -> dict[str, Any]:
    return {
        "filled_at": _bar_time_text(fill.get("filled_at")),
        "symbol": fill.get("symbol"),
        "side": fill.get("side"),
        "qty": float(fill.get("qty") or 0.0),
        "price": float(fill.get("price") or 0.0),
        "commission": float(fill.get("commission") or 0.0),
        "order_id": fill.get("order_id"),
        "fill_id": fill.get("fill_id") or fill.get("id"),
    }


class FillsTable(LiveView):
    """Every fill of the run, newest at the bottom (the table follows it).

    New fills are appended with ``Tabulator.stream(..., rollover=max_rows)``
    once per tick, so the table never holds more than ``max_rows`` rows.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run (read from the ledger).
    """

    max_rows = param.Integer(default=500, bounds=(1, None), doc="Rows kept (older roll over).")
    height = param.Integer(default=300, bounds=(100, None), doc="Table height in pixels.")

    def _build(self) -> None:
        self._seen: set[str] = set()
        self.table = ReadOnlyTabulator(
            pd.DataFrame(columns=COLUMNS).astype(
                {"qty": float, "price": float, "commission": float}
            ),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=self.height,
            layout="fit_data_stretch",
            hidden_columns=["fill_id"],
            formatters={
                "price": NumberFormatter(format="0,0.00"),
                "qty": NumberFormatter(format="0,0.[0000]"),
                "commission": NumberFormatter(format="0,0.00"),
            },
            text_align={"side": "center"},
            css_classes=["alphaswarm-fills"],
        )

    def _load(self) -> None:
        if not self.run_id:
            return
        # The bus's frames first, then the ledger: every frame published by then was
        # committed before, so the ledger holds each fill up to the last seq seen here
        # and the subscription brings the later ones (read the other way round, a fill
        # committed between the two reads and already out of the bus's memory is lost).
        recent = self._new(self.recent_frames()) if self.session is not None else []
        df = self.ledger_().fills(self.run_id)
        if len(df):
            rows = [
                _fill_row({**r, "fill_id": r.get("id")})
                for r in df.tail(self.max_rows).to_dict("records")
            ]
            self._stream(rows)
        if recent:
            self._update(recent)

    def _stream(self, rows: list[dict[str, Any]]) -> None:
        rows = [r for r in rows if r["fill_id"] not in self._seen]
        if not rows:
            return
        self._seen.update(r["fill_id"] for r in rows)
        if len(self._seen) > 4 * self.max_rows:
            self._seen = set(self.table.value["fill_id"]) | {r["fill_id"] for r in rows}
        stream_rows(self.table, pd.DataFrame(rows, columns=COLUMNS), self.max_rows)

    def _update(self, frames: list[dict[str, Any]]) -> None:
        rows = [_fill_row(f["fill"]) for f in frames if f.get("stage") == "order.filled"]
        if rows:
            self._stream(rows)

    @property
    def value(self) -> pd.DataFrame:
        """The rows shown."""
        return self.table.value

    def __panel__(self) -> pn.viewable.Viewable:
        """The table."""
        return self.table
