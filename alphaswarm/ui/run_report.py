"""RunReport: a run's statistics, closed trades and P&L by symbol, read from the ledger.

Everything shown is read back from the ledger (:mod:`alphaswarm.ledger.run_reads`),
so a finished run opened cold shows the same report as the page that watched it.
A live run's report is re-read when new fills arrive (at most every
``refresh_ticks`` ticks) and once more when the run ends.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pandas as pd
import param

from alphaswarm.ledger.run_reads import closed_trades, pnl_by_symbol, session_stats
from alphaswarm.ui.base import LiveView
from alphaswarm.ui.pages.html import browser_zone, fmt_number, fmt_zoned, table
from alphaswarm.ui.tables import InlineHTML

if TYPE_CHECKING:
    import panel as pn

#: Choices of the time toggle: the browser's zone or UTC.
ZONE_CHOICES = ("local", "UTC")


def fmt_in_zone(value: Any, zone_choice: str) -> str:
    """A timestamp (naive UTC) in the browser's zone (``"local"``) or in UTC, zone named."""
    zone = browser_zone() if zone_choice == "local" else "UTC"
    return fmt_zoned(value, zone, "%Y-%m-%d %H:%M %Z")


def _pct(value: Any, spec: str = "+.2f") -> str:
    text = fmt_number(value, spec)
    return text if text == "–" else f"{text} %"


class RunReport(LiveView):
    """Session statistics, closed trades with their P&L, and P&L by symbol.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run.
    """

    zone = param.Selector(
        default="local", objects=list(ZONE_CHOICES), doc="Times in the browser's zone or in UTC."
    )
    refresh_ticks = param.Integer(
        default=4, bounds=(1, None), doc="Ticks at least between two re-reads of a live run."
    )
    trades_shown = param.Integer(default=200, bounds=(1, None), doc="Newest closed trades listed.")
    stats = param.Dict(default={}, doc="The statistics shown (see session_stats).")

    def _build(self) -> None:
        self._dirty = True
        self._since = 0
        self._ended = False
        self._trades = pd.DataFrame()
        self._by_symbol = pd.DataFrame()
        self.stats_pane = InlineHTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-run-stats"]
        )
        self.trades_pane = InlineHTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-closed-trades"]
        )
        self.symbols_pane = InlineHTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-pnl-by-symbol"]
        )
        self.param.watch(lambda _e: self._render(), "zone")

    # -- data -----------------------------------------------------------------------
    def _load(self) -> None:
        self._read()

    def _read(self) -> None:
        if not self.run_id:
            return
        ledger = self.ledger_()
        if ledger.get_run(self.run_id) is None:
            return
        stats = session_stats(ledger, self.run_id)
        if self.session is not None:  # the live numbers run ahead of the last commit
            s = self.session
            stats.update(
                status=s.status,
                complete=s.finished,
                fills=max(stats["fills"], s.num_fills),
                bars_seen=max(stats["bars_seen"], s.bars_seen),
            )
        self.stats = stats
        self._trades = closed_trades(ledger, self.run_id)
        self._by_symbol = pnl_by_symbol(ledger, self.run_id)
        self._dirty = False
        self._since = 0
        self._render()

    def _update(self, frames: list[dict[str, Any]]) -> None:
        if self.session is None:
            return
        self._since += 1
        if any(f.get("stage") in ("order.filled", "equity.update") for f in frames):
            self._dirty = True
        ended = self.session.finished
        if ended and not self._ended:
            self._ended = True
            self._read()  # the final numbers, once
        elif self._dirty and self._since >= self.refresh_ticks:
            self._read()

    # -- rendering ------------------------------------------------------------------
    def _render(self) -> None:
        s = self.stats
        if not s:
            return
        total = s.get("bars_total")
        bars = f"{s['bars_seen']:,}" + (f" of {total:,}" if total else " (until stopped)")
        items = [
            ("Return", _pct(s["return_pct"]), "return"),
            (
                "Max drawdown",
                _pct(-abs(s["max_drawdown_pct"]) if s["max_drawdown_pct"] else 0.0, ".2f"),
                "drawdown",
            ),
            ("Fills", f"{s['fills']:,}", "fills"),
            ("Turnover", fmt_number(s["turnover"], ".2f") + "×", "turnover"),
            ("Closed trades", f"{s['trades']:,}", "trades"),
            ("Win rate", _pct(s["win_rate_pct"], ".0f"), "win-rate"),
            ("Bars seen", bars, "bars"),
        ]
        cells = "".join(
            f'<div class="stat stat-{key}" style="min-width:110px">'
            f'<div style="font-size:11px;opacity:.7">{html.escape(label)}</div>'
            f'<div style="font-size:16px;font-weight:600">{html.escape(value)}</div></div>'
            for label, value, key in items
        )
        self.stats_pane.object = (
            f'<div style="display:flex;flex-wrap:wrap;gap:10px 22px;padding:4px 10px">{cells}</div>'
        )
        zone = self.zone
        trades = self._trades.tail(self.trades_shown).iloc[::-1]
        self.trades_pane.object = table(
            [
                "symbol",
                "side",
                "qty",
                "entry",
                "exit",
                "entry price",
                "exit price",
                "P&L",
                "return %",
            ],
            [
                [
                    t.symbol,
                    t.direction,
                    float(t.qty),
                    fmt_in_zone(t.entry_ts, zone),
                    fmt_in_zone(t.exit_ts, zone),
                    float(t.entry_price),
                    float(t.exit_price),
                    round(float(t.pnl), 2),
                    round(float(t.return_pct), 2),
                ]
                for t in trades.itertuples()
            ],
            "alphaswarm-trades-table",
            empty="no closed trades yet",
        )
        self.symbols_pane.object = table(
            [
                "symbol",
                "trades",
                "wins",
                "realized",
                "unrealized",
                "commission",
                "total P&L",
                "open qty",
            ],
            [
                [
                    r.symbol,
                    int(r.trades),
                    int(r.wins),
                    round(float(r.realized_pnl), 2),
                    round(float(r.unrealized_pnl), 2),
                    round(float(r.commission), 2),
                    round(float(r.total_pnl), 2),
                    float(r.open_qty),
                ]
                for r in self._by_symbol.itertuples()
            ],
            "alphaswarm-symbols-table",
            empty="no fills yet",
        )

    @property
    def trades(self) -> pd.DataFrame:
        """The closed trades shown (all of them, oldest first)."""
        return self._trades

    @property
    def by_symbol(self) -> pd.DataFrame:
        """The P&L by symbol shown."""
        return self._by_symbol

    def __panel__(self) -> pn.viewable.Viewable:
        """The statistics (the tables are placed by the session view)."""
        return self.stats_pane
