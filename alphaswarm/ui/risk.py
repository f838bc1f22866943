"""RiskPanel: each risk limit, its current value against its threshold, coloured by use."""

from __future__ import annotations

import html
import math
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

import param

from alphaswarm.risk.limits import RiskLimits
from alphaswarm.ui.base import LiveView
from alphaswarm.ui.tables import InlineHTML

if TYPE_CHECKING:
    import panel as pn

#: Limits whose values are fractions, shown as percentages.
_FRACTIONS = ("max_position_pct", "max_concentration_pct", "max_drawdown_pct", "max_daily_loss_pct")


def level(used: float | None) -> str:
    """``ok`` below 60 % of a limit, ``warn`` to 85 %, ``near`` below 100 %, else ``breach``."""
    if used is None or (isinstance(used, float) and math.isnan(used)):
        return "unknown"
    if used >= 1.0:
        return "breach"
    if used >= 0.85:
        return "near"
    if used >= 0.6:
        return "warn"
    return "ok"


def _fmt(limit: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if limit in _FRACTIONS:
        return f"{value:.2%}"
    if limit == "max_gross_exposure":
        return f"{value:.2f}×"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


class RiskPanel(LiveView):
    """Every limit the bot sets, with the value now, the threshold and a coloured gauge.

    ``rows`` holds ``{limit, value, threshold, used, level}`` (``level`` is
    ``ok``/``warn``/``near``/``breach``); the HTML is re-rendered only when a
    row changes.

    Parameters
    ----------
    session : PaperSession or str
        A live session, or the id of a finished run (thresholds and the final
        drawdown from the ledger).
    """

    rows = param.List(default=[], doc="The limits as rendered: limit, value, threshold, used.")
    mode = param.String(default="", doc="Trading mode the engine applies (active, halted ...).")
    recent_events = param.Integer(default=5, bounds=(0, None), doc="Risk denials listed.")

    COLORS: ClassVar[dict[str, str]] = {
        "ok": "#2e7d32",
        "warn": "#f9a825",
        "near": "#ef6c00",
        "breach": "#c62828",
        "unknown": "#9e9e9e",
    }

    def _build(self) -> None:
        self._events: deque[str] = deque(maxlen=max(self.recent_events, 1))
        self._halted = ""
        self._rendered = ""
        self.pane = InlineHTML("", sizing_mode="stretch_width", css_classes=["alphaswarm-risk"])

    # -- data -----------------------------------------------------------------------
    def _live_rows(self) -> list[dict[str, Any]]:
        engine = self.session.engine if self.session is not None else None
        if engine is None:
            return []
        for _ in range(3):  # the engine thread may resize a dict while we read it
            try:
                rows = engine.risk.utilisation(engine.state)
                self.mode = engine.halted and "halted" or engine.mode
                return rows
            except RuntimeError:
                continue
        return self.rows

    def _ledger_rows(self) -> list[dict[str, Any]]:
        row = self.run_row() or {}
        bot = (row.get("config") or {}).get("bot") or {}
        try:
            limits = RiskLimits.from_spec(bot.get("risk") or {}, bot.get("universe") or [])
        except Exception:  # noqa: BLE001 - an old spec: show what we can
            return []
        dd = row.get("max_drawdown")
        out = []
        for limit in RiskLimits.LIMIT_KEYS:
            threshold = getattr(limits, limit)
            if threshold is None:
                continue
            value = dd if limit == "max_drawdown_pct" else None
            used = value / threshold if value is not None else None
            out.append({"limit": limit, "value": value, "threshold": threshold, "used": used})
        self.mode = row.get("status") or ""
        events = self.ledger_().risk_events(self.run_id)
        for r in events.tail(self.recent_events).itertuples():
            self._events.append(f"{r.action}: {r.limit} {r.value:,.4g} > {r.threshold:,.4g}")
        return out

    def _load(self) -> None:
        if self.session is not None:
            super()._load()
            return
        if self.run_id:
            self._render(self._ledger_rows())

    def _update(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            stage = frame.get("stage")
            if stage == "order.rejected" and frame.get("reason_code") == "risk_denied":
                self._events.append(frame.get("message", ""))
            elif stage == "risk.halted":
                self._halted = frame.get("message", "")
        if self.session is not None:
            rows = self._live_rows()
            if self.session.finished:  # the engine's mode stays "active" after a kill or stop
                self.mode = self.session.status
            self._render(rows)

    # -- rendering ------------------------------------------------------------------
    def _render(self, rows: list[dict[str, Any]]) -> None:
        rows = [{**r, "level": level(r.get("used"))} for r in rows]
        body = []
        for r in rows:
            used = r.get("used")
            pct = 0.0 if used is None or math.isnan(used) else min(max(used, 0.0), 1.0) * 100
            color = self.COLORS[r["level"]]
            body.append(
                f'<tr class="risk-{r["level"]}" data-limit="{r["limit"]}">'
                f"<td>{r['limit']}</td>"
                f'<td style="text-align:right">{_fmt(r["limit"], r.get("value"))}</td>'
                f'<td style="text-align:right">{_fmt(r["limit"], r.get("threshold"))}</td>'
                f'<td style="width:35%"><div style="background:#eceff1;border-radius:3px;'
                f'height:10px"><div style="width:{pct:.0f}%;height:10px;border-radius:3px;'
                f'background:{color}"></div></div></td>'
                f'<td style="color:{color};font-weight:600">'
                f"{'–' if used is None or math.isnan(used) else f'{used:.0%}'}</td></tr>"
            )
        if not rows:
            body.append('<tr><td colspan="5"><i>no risk limits set</i></td></tr>')
        mode = self.mode or "–"
        mode_color = {"active": "#2e7d32", "running": "#2e7d32", "completed": "#2e7d32"}.get(
            mode, "#546e7a" if mode == "stopped" else "#c62828"
        )
        extra = ""
        if self._halted:
            extra += f'<div style="color:#c62828"><b>halted:</b> {html.escape(self._halted)}</div>'
        if self._events:
            items = "".join(f"<li>{html.escape(e)}</li>" for e in self._events)
            extra += f'<div style="font-size:12px">recent denials<ul>{items}</ul></div>'
        out = (
            f'<div><b>Risk</b> · mode <span style="color:{mode_color};font-weight:600">'
            f"{html.escape(mode)}</span></div>"
            '<table style="width:100%;font-size:13px;border-collapse:collapse">'
            "<tr><th align=left>limit</th><th align=right>now</th><th align=right>limit</th>"
            "<th></th><th>used</th></tr>" + "".join(body) + "</table>" + extra
        )
        self.rows = rows
        if out != self._rendered:
            self._rendered = out
            self.pane.object = out

    def __panel__(self) -> pn.viewable.Viewable:
        """The HTML gauge table."""
        return self.pane
