"""MultiBotView: every running and recent paper session of this process on one page.

Combined equity and P&L, exposure per symbol across bots, which bots are near
a risk limit (``RiskLimits.utilisation``), and a stop button per running bot
beside the global kill switch. Like every dashboard component it is polled on
its :class:`~alphaswarm.ui.base.FramePump`'s tick and never watches an
engine-side object; in a notebook cell it keeps polling until the cell's view
is gone (``refresh()`` ticks by hand where no event loop runs).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from alphaswarm.paper.registry import registry
from alphaswarm.ui.base import LiveView
from alphaswarm.ui.killswitch import KillSwitchWidget
from alphaswarm.ui.tables import InlineHTML, ReadOnlyTabulator, show_rows

if TYPE_CHECKING:
    from alphaswarm.paper.session import PaperSession

RUN_COLUMNS = ["id", "bot_id", "status", "equity", "total_pnl", "num_fills", "near_limit"]
EXPOSURE_COLUMNS = ["symbol", "net_qty", "gross_value", "long_value", "short_value", "bots"]


def near_limits(session: PaperSession, near: float) -> list[dict[str, Any]]:
    """The limits ``session`` uses at least ``near`` of (its engine's utilisation)."""
    engine = session.engine
    if engine is None:
        return []
    for _ in range(3):  # the engine thread may resize a dict while we read it
        try:
            rows = engine.risk.utilisation(engine.state)
            break
        except RuntimeError:
            continue
    else:
        return []
    out = []
    for r in rows:
        used = r.get("used")
        if used is not None and not (isinstance(used, float) and math.isnan(used)) and used >= near:
            out.append(r)
    return sorted(out, key=lambda r: -r["used"])


class MultiBotView(LiveView):
    """All running and recent sessions together, with per-bot stops and the kill switch.

    Parameters
    ----------
    recent : int
        Finished runs (newest first, from the ledger) listed after the running ones.
    near : float
        Share of a risk limit from which a bot is flagged as near it.
    """

    recent = param.Integer(default=10, bounds=(0, None), doc="Finished runs listed too.")
    near = param.Number(
        default=0.8, bounds=(0, 1), doc="Share of a limit from which a bot counts as near it."
    )
    ledger_every = param.Integer(
        default=4, bounds=(1, None), doc="Ticks between re-reads of the finished runs."
    )
    show_kill_switch = param.Boolean(
        default=True,
        doc="Show the kill switch in this view (off where the page header already has it).",
    )
    on_screen = param.Boolean(
        default=True,
        doc="Poll on the pump's ticks; a page sets it False while the view's tab is hidden "
        "(it catches up when shown again).",
    )
    combined_equity = param.Number(default=0.0, doc="Sum of the running sessions' equity.")
    combined_pnl = param.Number(default=0.0, doc="Sum of the P&L of every run listed.")
    running_pnl = param.Number(default=0.0, doc="Sum of the running sessions' P&L.")
    running_count = param.Integer(default=0, doc="Running sessions.")

    def __init__(self, **params: Any) -> None:
        own_pump = params.get("pump") is None
        super().__init__(**params)
        if own_pump:
            # a notebook pump stops once its sessions end; this view watches the registry
            self.pump.stop_when_idle = False
        self.kill_switch = KillSwitchWidget(pump=self.pump) if self.show_kill_switch else None
        top = [self.kill_switch.header] if self.kill_switch else []
        self._layout = pn.Column(
            pn.Row(*top, self.totals, sizing_mode="stretch_width"),
            *([self.kill_switch.details] if self.kill_switch else []),
            pn.pane.Markdown(
                f"**Sessions** (running first; near a limit when ≥ {self.near:.0%} of it is used)",
                margin=(0, 10),
            ),  # fmt: skip
            self.table,
            pn.Row(
                pn.Column(
                    pn.pane.Markdown("**Exposure per symbol, all running bots**", margin=(0, 10)),
                    self.exposure,
                    sizing_mode="stretch_width",
                ),
                pn.Column(
                    pn.pane.Markdown("**Stop one bot**", margin=(0, 10)), self.stops, width=360
                ),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-multibot"],
        )

    # -- building -------------------------------------------------------------------
    def _build(self) -> None:
        money = NumberFormatter(format="0,0.00")
        self._version = -1
        self._ticks = 0
        self._finished_rows: list[dict[str, Any]] = []
        self._stop_ids: tuple[str, ...] = ()
        self._stop_buttons: dict[str, pn.widgets.Button] = {}
        self._nothing_running = pn.pane.Markdown("*no session running*")
        self.totals = InlineHTML("", css_classes=["alphaswarm-multibot-totals"], margin=(8, 10))
        self.table = ReadOnlyTabulator(
            pd.DataFrame(columns=RUN_COLUMNS),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=220,
            layout="fit_data_stretch",
            formatters={"equity": money, "total_pnl": NumberFormatter(format="+0,0.00")},
            css_classes=["alphaswarm-multibot-runs"],
        )
        self.exposure = ReadOnlyTabulator(
            pd.DataFrame(columns=EXPOSURE_COLUMNS),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            height=160,
            formatters={c: money for c in ("gross_value", "long_value", "short_value")},
            css_classes=["alphaswarm-multibot-exposure"],
        )
        self.stops = pn.Column(css_classes=["alphaswarm-multibot-stops"])

    def _load(self) -> None:
        self._update([])

    # -- data -----------------------------------------------------------------------
    def sessions(self) -> list[PaperSession]:
        """Sessions of this process on this view's ledger, oldest first."""
        ledger = self.ledger_()
        return [s for s in registry().sessions() if s.paper_run_id and s.ledger_ is ledger]

    def _reload_finished(self, exclude: set[str]) -> None:
        if not self.recent:
            self._finished_rows = []
            return
        rows = self.ledger_().list_runs(limit=self.recent + len(exclude))
        self._finished_rows = [r for r in rows if r["id"] not in exclude][: self.recent]

    def _update(self, frames: list[dict[str, Any]]) -> None:
        self._ticks += 1
        sessions = self.sessions()
        running = [s for s in sessions if not s.finished]
        live_ids = {s.paper_run_id for s in running}
        version = registry().version
        if version != self._version or self._ticks % self.ledger_every == 0:
            self._version = version
            self._reload_finished(live_ids)
        rows = []
        exposure: dict[str, dict[str, Any]] = {}
        for s in running:
            near = near_limits(s, self.near)
            rows.append(
                {
                    "id": s.paper_run_id,
                    "bot_id": s.bot_id,
                    "status": s.status,
                    "equity": float(s.equity),
                    "total_pnl": float(s.total_pnl),
                    "num_fills": int(s.num_fills),
                    "near_limit": ", ".join(f"{r['limit']} {r['used']:.0%}" for r in near),
                }
            )
            for symbol, p in (s.positions or {}).items():
                qty = float(p.get("qty") or 0.0)
                value = qty * float(p.get("last_price") or 0.0)
                e = exposure.setdefault(
                    symbol, {"symbol": symbol, "net_qty": 0.0, "gross_value": 0.0,
                             "long_value": 0.0, "short_value": 0.0, "bots": set()},
                )  # fmt: skip
                e["net_qty"] += qty
                e["gross_value"] += abs(value)
                e["long_value" if value >= 0 else "short_value"] += abs(value)
                e["bots"].add(s.bot_id)
        for r in self._finished_rows:
            if r["id"] in live_ids:
                continue
            rows.append(
                {
                    "id": r["id"],
                    "bot_id": r.get("bot_id"),
                    "status": r.get("status"),
                    "equity": float(r.get("final_equity") or 0.0),
                    "total_pnl": float(r.get("total_pnl") or 0.0),
                    "num_fills": int(r.get("num_fills") or 0),
                    "near_limit": "",
                }
            )
        self._show(rows, running, exposure)

    # -- rendering ------------------------------------------------------------------
    def _show(
        self,
        rows: list[dict[str, Any]],
        running: list[PaperSession],
        exposure: dict[str, dict[str, Any]],
    ) -> None:
        equity = sum(r["equity"] for r in rows[: len(running)])
        pnl = sum(r["total_pnl"] for r in rows)
        running_pnl = sum(r["total_pnl"] for r in rows[: len(running)])
        self.combined_equity, self.combined_pnl, self.running_count = equity, pnl, len(running)
        self.running_pnl = running_pnl
        near = sum(1 for r in rows if r["near_limit"])
        html = (
            f'<div style="display:flex;gap:24px;font-size:15px">'
            f'<span><b class="running-count">{len(running)}</b> running: equity '
            f'<b class="combined-equity">{equity:,.2f}</b>, P&amp;L '
            f'<b class="running-pnl">{running_pnl:+,.2f}</b></span>'
            f'<span>P&amp;L of every run listed <b class="combined-pnl">{pnl:+,.2f}</b></span>'
            f'<span style="color:{"#c62828" if near else "#2e7d32"}">{near} near a limit</span>'
            "</div>"
        )
        if self.totals.object != html:
            self.totals.object = html
        show_rows(self.table, pd.DataFrame(rows, columns=RUN_COLUMNS))
        ex = pd.DataFrame(
            [{**e, "bots": ", ".join(sorted(e["bots"]))} for e in exposure.values()],
            columns=EXPOSURE_COLUMNS,
        )
        if not self.exposure.value.reset_index(drop=True).equals(ex):
            self.exposure.value = ex
        ids = tuple(s.paper_run_id for s in running)
        if ids != self._stop_ids:
            self._stop_ids = ids
            # a button is made once per run: rebuilding every button (and its model)
            # on each start or stop held the server's loop for seconds at 200 sessions
            kept = self._stop_buttons
            self._stop_buttons = {
                s.paper_run_id: kept.get(s.paper_run_id) or self._stop_button(s) for s in running
            }
            self.stops.objects = list(self._stop_buttons.values()) or [self._nothing_running]

    def _stop_button(self, session: PaperSession) -> pn.widgets.Button:
        label = (
            f"Stop {session.bot.name if session.bot else session.bot_id} · {session.paper_run_id}"
        )
        button = pn.widgets.Button(
            label=label,
            color="warning",
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-multibot-stop"],
        )

        def stop(_event: Any) -> None:
            session.stop("stopped from the multi-bot view")
            self._update([])

        button.on_click(stop)
        return button

    def stop(self, run_id: str) -> bool:
        """Stop one running session of this view (what its button does)."""
        for s in self.sessions():
            if s.paper_run_id == run_id and not s.finished:
                done = s.stop("stopped from the multi-bot view")
                self._update([])
                return done
        return False

    def refresh(self, frames: list[dict[str, Any]] | None = None) -> None:
        """Poll now (the pump's tick; call it by hand where no event loop runs)."""
        if self.on_screen:
            super().refresh(frames or [])

    @param.depends("on_screen", watch=True)
    def _shown_again(self) -> None:
        if self.on_screen:
            self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        return self._layout
