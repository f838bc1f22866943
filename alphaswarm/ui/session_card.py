"""SessionCard: status, cash, equity, P&L, fills, elapsed and remaining time, a stop button."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any, ClassVar

import panel as pn
import param

from alphaswarm.ledger.run_reads import bar_minutes, expected_bars
from alphaswarm.ui.base import LiveView, to_timestamp
from alphaswarm.ui.tables import InlineHTML, InlineNumber


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(int(seconds), 0)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _remaining(status: str, finished: bool, total: int | None, seconds: float | None) -> str:
    """What the card says about the time left."""
    if finished:
        return "complete" if status == "completed" else "ended"
    if not total:
        return "runs until stopped"
    return f"remaining {_clock(seconds)}" if seconds is not None else "remaining time unknown"


def _bars(seen: int, total: int | None) -> str:
    """Bars seen, of the total when the run has an end."""
    return f"{seen:,} of {total:,} bars" if total else f"{seen:,} bars"


class SessionCard(LiveView):
    """The headline numbers of a run and its stop button.

    Values are pulled from the session's read-only outputs on each tick (never
    pushed from the engine thread); a finished run shows its ledger row.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run.
    """

    status = param.String(default="", doc="The run's status as shown.")
    elapsed = param.String(default="–", doc="Wall-clock time since the start.")
    remaining = param.String(
        default="",
        doc="Wall-clock time left ('remaining 0:01:20'), 'runs until stopped', 'complete' "
        "or 'ended' (a run stopped before its end).",
    )

    STATUS_COLORS: ClassVar[dict[str, str]] = {
        "running": "#1565c0",
        "gating": "#1565c0",
        "stopping": "#ef6c00",
        "completed": "#2e7d32",
        "stopped": "#546e7a",
        "halted": "#c62828",
        "killed": "#c62828",
        "failed": "#c62828",
        "refused": "#c62828",
        "crashed": "#c62828",
    }

    def _build(self) -> None:
        size = {"font_size": "20pt", "title_size": "10pt"}
        self.equity_indicator = InlineNumber(
            label="Equity", value=0.0, format="{value:,.2f}", **size
        )
        self.cash_indicator = InlineNumber(label="Cash", value=0.0, format="{value:,.2f}", **size)
        self.pnl_indicator = InlineNumber(
            label="P&L",
            value=0.0,
            format="{value:+,.2f}",
            colors=[(-1e-9, "#c62828"), (1e-9, "#546e7a"), (float("inf"), "#2e7d32")],
            **size,
        )
        self.fills_indicator = InlineNumber(label="Fills", value=0, format="{value:,.0f}", **size)
        self.header = InlineHTML("", sizing_mode="stretch_width", margin=(5, 10))
        self.stop_button = pn.widgets.Button(
            label="Stop session", color="warning", width=140, disabled=True
        )
        self.stop_button.on_click(self._on_stop)
        self._first_bar = None
        self._last_bar = None
        self._shown: tuple | None = None
        self._layout = pn.Card(
            self.header,
            # the numbers wrap onto more lines in a narrow window (a phone) instead of overflowing
            pn.FlexBox(
                self.equity_indicator,
                self.cash_indicator,
                self.pnl_indicator,
                self.fills_indicator,
                pn.Column(pn.Spacer(height=18), self.stop_button),
                flex_wrap="wrap",
                sizing_mode="stretch_width",
            ),
            title="Session",
            collapsible=False,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-session-card"],
        )

    def _on_stop(self, _event: Any) -> None:
        if self.live:
            self.session.stop("stopped from the dashboard")
        self._update([])

    # -- data -----------------------------------------------------------------------
    def _load(self) -> None:
        if self.session is not None:
            super()._load()
            return
        self._update([])

    def _update(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            if frame.get("stage") == "bar.received":
                ts = to_timestamp((frame.get("bar") or {}).get("ts"))
                if self._first_bar is None:
                    self._first_bar = ts
                self._last_bar = ts
        if self.session is not None:
            self._show_session()
        else:
            self._show_row(self.run_row() if self._shown is None else None)

    def _show_session(self) -> None:
        s = self.session
        now = datetime.now(UTC)
        started = s.started_at
        end = s.ended_at or now
        elapsed = (end - started).total_seconds() if started is not None else None
        total = expected_bars(
            {
                "config": {
                    "bot": s.bot.spec if s.bot is not None else {},
                    "max_bars": s.max_bars,
                    "duration_minutes": s.duration_minutes,
                }
            }
        )
        remaining: float | None = None
        if not s.finished and total and s.speed > 0 and self._first_bar is not None:
            # bars still to come at the session's pace (from the time one bar group takes)
            per_bar = self._bar_seconds()
            groups_left = max(total - s.bars_seen, 0) / max(len(s.bot.universe), 1)
            if per_bar is not None:
                remaining = groups_left * per_bar / s.speed
        self._show(
            status=s.status,
            name=s.run_name or (s.bot.name if s.bot else ""),
            bot=s.bot_id,
            equity=s.equity,
            cash=s.cash,
            pnl=s.total_pnl,
            fills=s.num_fills,
            elapsed=_clock(elapsed),
            remaining=_remaining(s.status, s.finished, total, remaining),
            progress=_bars(s.bars_seen, total),
            reason=s.stop_reason,
            live=not s.finished,
        )

    def _bar_seconds(self) -> float | None:
        """Session seconds per bar, from the bar interval of the bot's data."""
        spec = self.session.bot.spec if self.session.bot is not None else {}
        minutes = bar_minutes((spec.get("data") or {}).get("interval"))
        return minutes * 60 if minutes else None

    def _show_row(self, row: dict[str, Any] | None) -> None:
        if row is None:
            return
        started, ended = row.get("started_at"), row.get("ended_at")
        elapsed = None
        if started is not None:
            end = ended if ended is not None else datetime.now(UTC)
            elapsed = (to_timestamp(end) - to_timestamp(started)).total_seconds()
        status = row.get("status") or ""
        finished = status not in ("running", "gating", "stopping")
        total = expected_bars(row)
        self._show(
            status=status,
            name=row.get("run_name") or "",
            bot=row.get("bot_id") or "",
            equity=row.get("final_equity") or 0.0,
            cash=(row.get("state") or {}).get("cash", 0.0),
            pnl=row.get("total_pnl") or 0.0,
            fills=row.get("num_fills") or 0,
            elapsed=_clock(elapsed),
            remaining=_remaining(status, finished, total, None),
            progress=_bars(int(row.get("bars_seen") or 0), total),
            reason=row.get("stop_reason") or "",
            live=False,
        )

    def _show(self, **v: Any) -> None:
        key = tuple(v.values())
        if key == self._shown:
            return
        self._shown = key
        color = self.STATUS_COLORS.get(v["status"], "#546e7a")
        reason = f" — {html.escape(v['reason'])}" if v["reason"] else ""
        self.header.object = (
            f'<div style="display:flex;gap:14px;align-items:baseline;flex-wrap:wrap">'
            f'<span class="session-status" data-status="{v["status"]}" '
            f'style="background:{color};color:white;padding:2px 10px;border-radius:10px;'
            f'font-weight:600">{html.escape(v["status"].upper())}</span>'
            f"<b>{html.escape(v['name'])}</b><code>{html.escape(self.run_id)}</code>"
            f"<span>bot {html.escape(v['bot'])}</span>"
            f"<span class='session-progress'>elapsed {v['elapsed']} · {v['remaining']}"
            f" · {v['progress']}</span><span style='color:#777'>{reason}</span></div>"
        )
        self.status, self.elapsed, self.remaining = v["status"], v["elapsed"], v["remaining"]
        self.equity_indicator.value = float(v["equity"] or 0.0)
        self.cash_indicator.value = float(v["cash"] or 0.0)
        self.pnl_indicator.value = float(v["pnl"] or 0.0)
        self.fills_indicator.value = int(v["fills"] or 0)
        # a finished run has nothing to stop: no button rather than a dead one
        self.stop_button.disabled = not v["live"]
        self.stop_button.visible = bool(v["live"])

    def __panel__(self) -> pn.viewable.Viewable:
        """The card."""
        return self._layout
