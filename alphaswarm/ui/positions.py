"""Positions: quantity, average price and unrealised P&L per symbol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import param
from bokeh.models.widgets.tables import NumberFormatter

from alphaswarm.ui.base import LiveView
from alphaswarm.ui.tables import ReadOnlyTabulator

if TYPE_CHECKING:
    import panel as pn

COLUMNS = [
    "symbol",
    "qty",
    "avg_price",
    "last_price",
    "market_value",
    "unrealized_pnl",
    "realized_pnl",
]


def positions_frame(positions: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The positions snapshot of a frame (or of a run's state) as table rows."""
    rows = []
    for symbol, p in sorted((positions or {}).items()):
        qty = float(p.get("qty") or 0.0)
        if not qty:
            continue
        last = float(p.get("last_price") or 0.0)
        rows.append(
            {
                "symbol": symbol,
                "qty": qty,
                "avg_price": float(p.get("avg_price") or 0.0),
                "last_price": last,
                "market_value": qty * last,
                "unrealized_pnl": float(p.get("unrealized_pnl") or 0.0),
                "realized_pnl": float(p.get("realized_pnl") or 0.0),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS).astype({c: float for c in COLUMNS[1:]})


class Positions(LiveView):
    """Open positions of the run, replaced at most once per tick when they changed.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run (its final state from the ledger).
    """

    height = param.Integer(default=160, bounds=(60, None), doc="Table height in pixels.")

    def _build(self) -> None:
        money = NumberFormatter(format="0,0.00")
        self.table = ReadOnlyTabulator(
            positions_frame({}),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=self.height,
            layout="fit_columns",
            formatters={
                "qty": NumberFormatter(format="0,0.[0000]"),
                "avg_price": money,
                "last_price": money,
                "market_value": money,
                "unrealized_pnl": money,
                "realized_pnl": money,
            },
            titles={
                "symbol": "symbol",
                "avg_price": "avg",
                "last_price": "last",
                "market_value": "value",
                "unrealized_pnl": "unreal. P&L",
                "realized_pnl": "real. P&L",
            },
            css_classes=["alphaswarm-positions"],
        )
        self._snapshot: dict[str, Any] | None = None

    def _show(self, positions: dict[str, Any]) -> None:
        if positions == self._snapshot:
            return
        self._snapshot = positions
        self.table.value = positions_frame(positions)

    def _load(self) -> None:
        if self.session is not None:
            self._show(dict(self.session.positions))
            return
        row = self.run_row() or {}
        self._show((row.get("state") or {}).get("positions") or {})

    def _update(self, frames: list[dict[str, Any]]) -> None:
        for frame in reversed(frames):
            if "positions" in frame:
                self._show(frame["positions"])
                return

    @property
    def value(self) -> pd.DataFrame:
        """The rows shown."""
        return self.table.value

    def __panel__(self) -> pn.viewable.Viewable:
        """The table."""
        return self.table
