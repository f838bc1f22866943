"""The dashboard page: ``panel serve apps/dashboard.py``.

A FastListTemplate with a persistent "PAPER: simulated execution" banner and
the kill switch in the header; the list of every paper run (live ones from the
session registry, finished ones from the ledger, so a restarted server still
shows its history); the selected run's :class:`SessionView`; and a form that
starts a session for a registered bot through the paper gate.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from alphaswarm.bots import Bot
from alphaswarm.killswitch import KillSwitchEngaged
from alphaswarm.model import ModelError
from alphaswarm.runtime import engine_loop, get_ledger
from alphaswarm.trading.gate import GateRefused
from alphaswarm.trading.registry import registry
from alphaswarm.trading.session import PaperSession
from alphaswarm.ui.base import FramePump, LiveView
from alphaswarm.ui.killswitch import KillSwitchWidget
from alphaswarm.ui.multibot import MultiBotView
from alphaswarm.ui.session_view import SessionView
from alphaswarm.ui.tables import InlineHTML, ReadOnlyTabulator

log = logging.getLogger(__name__)

BANNER_TEXT = "PAPER: simulated execution"
RUN_COLUMNS = [
    "id",
    "bot_id",
    "status",
    "total_pnl",
    "num_fills",
    "bars_seen",
    "started_at",
    "ended_at",
    "run_name",
]


def banner() -> pn.pane.HTML:
    """The banner shown on every page: nothing here is a real order."""
    return InlineHTML(
        f'<div class="alphaswarm-paper-banner" style="background:#fff59d;color:#4e342e;'
        f"font-weight:800;letter-spacing:.04em;padding:6px 14px;border-radius:6px;"
        f'border:2px solid #f9a825;white-space:nowrap">{BANNER_TEXT}</div>',
        margin=(6, 10),
    )


def _fmt_time(value: Any) -> str:
    if value is None or value is pd.NaT:
        return ""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if ts is pd.NaT:
        return ""
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M:%S")


class RunsList(LiveView):
    """Every paper run: live ones from :func:`registry`, finished ones from the ledger.

    Polled on the pump's tick: the registry's ``version`` tells when a session
    started or ended; the live rows' numbers are read from the sessions; the
    ledger is re-read every ``ledger_every`` ticks.
    """

    selected = param.String(default="", doc="Id of the selected run ('' when none).")
    limit = param.Integer(default=200, bounds=(1, None), doc="Newest runs listed.")
    ledger_every = param.Integer(
        default=4, bounds=(1, None), doc="Ticks between re-reads of the ledger."
    )

    def _build(self) -> None:
        self._version = -1
        self._ticks = 0
        self._ledger_rows: list[dict[str, Any]] = []
        self._selecting = False
        self.table = ReadOnlyTabulator(
            pd.DataFrame(columns=RUN_COLUMNS),
            show_index=False,
            disabled=True,
            selectable=1,
            sizing_mode="stretch_width",
            height=220,
            layout="fit_data_stretch",
            hidden_columns=["run_name"],
            formatters={"total_pnl": NumberFormatter(format="+0,0.00")},
            css_classes=["alphaswarm-runs"],
        )
        self.table.param.watch(self._on_select, "selection")

    def _on_select(self, event: param.parameterized.Event) -> None:
        if self._selecting or not event.new:
            return
        value = self.table.value
        idx = event.new[0]
        if 0 <= idx < len(value):
            self.selected = str(value.iloc[idx]["id"])

    def select(self, run_id: str) -> None:
        """Select ``run_id`` (and refresh the list so it is there)."""
        self.reload()
        self.selected = run_id
        self._mark_selection()

    def _mark_selection(self) -> None:
        value = self.table.value
        hits = [i for i, r in enumerate(value["id"]) if r == self.selected] if len(value) else []
        want = hits[:1]
        if list(self.table.selection) != want:
            self._selecting = True
            try:
                self.table.selection = want
            finally:
                self._selecting = False

    def reload(self) -> None:
        """Re-read the ledger and the registry now."""
        self._ledger_rows = self.ledger_().list_runs(limit=self.limit)
        self._show()

    def _load(self) -> None:
        self.reload()

    def _update(self, frames: list[dict[str, Any]]) -> None:
        self._ticks += 1
        version = registry().version
        if version != self._version:
            self._version = version
            self.reload()
        elif self._ticks % self.ledger_every == 0:
            # live numbers and other processes' runs: every few ticks is plenty here
            self.reload()

    def _show(self) -> None:
        rows: dict[str, dict[str, Any]] = {}
        for r in self._ledger_rows:
            rows[r["id"]] = {c: r.get(c) for c in RUN_COLUMNS}
        ledger = self.ledger_()
        for s in registry().sessions():
            if not s.paper_run_id or s.ledger_ is not ledger:
                continue  # a session of another ledger (tests, notebooks) is not ours
            row = rows.get(s.paper_run_id) or {"id": s.paper_run_id}
            if not s.finished:
                row.update(
                    bot_id=s.bot_id,
                    status=s.status,
                    total_pnl=s.total_pnl,
                    num_fills=s.num_fills,
                    bars_seen=s.bars_seen,
                    started_at=row.get("started_at") or s.started_at,
                    run_name=s.run_name,
                )
            rows[s.paper_run_id] = row
        df = pd.DataFrame(list(rows.values()), columns=RUN_COLUMNS)
        if len(df):
            df["started_at"] = [_fmt_time(v) for v in df["started_at"]]
            df["ended_at"] = [_fmt_time(v) for v in df["ended_at"]]
            df["total_pnl"] = df["total_pnl"].astype(float)
            df["num_fills"] = df["num_fills"].fillna(0).astype(int)
            df["bars_seen"] = df["bars_seen"].fillna(0).astype(int)
            df = df.sort_values(["started_at", "id"], ascending=False).reset_index(drop=True)
        current = self.table.value
        if len(current) != len(df) or not current.reset_index(drop=True).equals(df):
            self._selecting = True
            try:
                self.table.value = df
            finally:
                self._selecting = False
            self._mark_selection()

    @property
    def value(self) -> pd.DataFrame:
        """The rows shown."""
        return self.table.value

    def __panel__(self) -> pn.viewable.Viewable:
        """The runs table."""
        return self.table


class StartForm(pn.viewable.Viewer):
    """Start a paper session for a registered bot, through the paper gate.

    Sessions run on :func:`alphaswarm.runtime.engine_loop`, never on the web
    server's loop. A gate refusal lists every failing rule.
    """

    ledger = param.Parameter(default=None, doc="Ledger holding the bots; the default otherwise.")
    last_session = param.ClassSelector(
        class_=PaperSession, default=None, allow_None=True, doc="The session started last."
    )
    message = param.String(default="", doc="The outcome of the last attempt, as plain text.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.bot_select = pn.widgets.Select(
            label="Bot",
            options={},
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-bot-select"],
        )
        self.refresh_button = pn.widgets.Button(label="↻ bots", width=70)
        self.cash_input = pn.widgets.FloatInput(
            label="Starting cash", value=100_000.0, start=1.0, step=1000.0
        )
        self.duration_input = pn.widgets.FloatInput(
            label="Duration (session minutes, 0 = until stopped)", value=60.0, start=0.0
        )
        self.speed_input = pn.widgets.FloatInput(
            label="Speed (× real time, 0 = as fast as possible)", value=60.0, start=0.0
        )
        self.start_button = pn.widgets.Button(
            label="Start paper session", color="primary", css_classes=["alphaswarm-start"]
        )
        self.alert = pn.pane.Alert(
            "", alert_type="light", visible=False, css_classes=["alphaswarm-start-result"]
        )
        self.refresh_button.on_click(lambda _e: self.refresh_bots())
        self.start_button.on_click(lambda _e: self.start())
        self.refresh_bots()
        self._layout = pn.Column(
            pn.pane.Markdown("### Start a paper session"),
            pn.Row(self.bot_select, self.refresh_button, sizing_mode="stretch_width"),
            self.cash_input,
            self.duration_input,
            self.speed_input,
            self.start_button,
            self.alert,
            sizing_mode="stretch_width",
        )
        self._on_started: list[Any] = []

    def ledger_(self) -> Any:
        """The ledger in use."""
        return self.ledger or get_ledger()

    @staticmethod
    def bot_label(bot: dict[str, Any]) -> str:
        """How a bot (a :meth:`Ledger.get_bot` dict) is listed: name, version, Sharpe."""
        sharpe = bot.get("sharpe")
        tail = f", sharpe {sharpe:.2f}" if sharpe is not None else ", no backtest"
        return f"{bot['name']} (v{bot.get('latest_version')}{tail})"

    def refresh_bots(self) -> None:
        """Re-read the registered bots."""
        options = {self.bot_label(b): b["id"] for b in self.ledger_().list_bots()}
        value = self.bot_select.value
        self.bot_select.options = options
        if value in options.values():
            self.bot_select.value = value
        elif options:
            self.bot_select.value = next(iter(options.values()))

    def on_started(self, callback: Any) -> None:
        """Call ``callback(session)`` after a successful start."""
        self._on_started.append(callback)

    def _say(self, text_html: str, kind: str, plain: str) -> None:
        self.alert.object = text_html
        self.alert.alert_type = kind
        self.alert.visible = True
        self.message = plain

    def start(self) -> PaperSession | None:
        """Start a session with the form's values; show the outcome."""
        bot_id = self.bot_select.value
        if not bot_id:
            self._say("Pick a bot first (register one with `POST /bots`).", "warning", "no bot")
            return None
        duration = self.duration_input.value
        try:
            bot = Bot(self.ledger_().bot_spec(bot_id))
            session = PaperSession(
                bot,
                starting_cash=float(self.cash_input.value or 0) or 100_000.0,
                duration_minutes=float(duration) if duration else None,
                speed=float(self.speed_input.value or 0.0),
                ledger=self.ledger,
            )
            session.start(loop=engine_loop())
        except GateRefused as exc:
            errors = exc.result.errors
            items = "".join(f"<li>{html.escape(e)}</li>" for e in errors)
            self._say(
                f"<b>The paper gate refused {html.escape(bot_id)}:</b>"
                f'<ul class="gate-errors">{items}</ul>',
                "danger",
                "paper gate refused: " + "; ".join(errors),
            )
            return None
        except KillSwitchEngaged as exc:
            self._say(f"<b>Not started:</b> {html.escape(str(exc))}", "danger", str(exc))
            return None
        except (ModelError, ValueError) as exc:
            self._say(f"<b>Not started:</b> {html.escape(str(exc))}", "danger", str(exc))
            return None
        self.last_session = session
        self._say(
            f"Started <code>{html.escape(session.paper_run_id)}</code> for "
            f"{html.escape(bot.name)}.",
            "success",
            f"started {session.paper_run_id}",
        )
        for callback in self._on_started:
            callback(session)
        return session

    def __panel__(self) -> pn.viewable.Viewable:
        """The form."""
        return self._layout


class Dashboard(pn.viewable.Viewer):
    """The whole page's parts, for tests and for embedding without the template."""

    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")
    period = param.Integer(default=500, bounds=(250, 1000), doc="Milliseconds between ticks.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.pump = FramePump.current(period=self.period)
        self.kill_switch = KillSwitchWidget(pump=self.pump)
        self.runs = RunsList(pump=self.pump, ledger=self.ledger)
        self.form = StartForm(ledger=self.ledger)
        self.view_holder = pn.Column(
            pn.pane.Markdown("*Select a run above, or start one from the form.*"),
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-selected-run"],
        )
        self.view: SessionView | None = None
        # every bot at once; the kill switch stays in the page header
        self.multibot = MultiBotView(pump=self.pump, ledger=self.ledger, show_kill_switch=False)
        self.runs.param.watch(self._on_selected, "selected")
        self.form.on_started(self._on_started)

    def _on_started(self, session: PaperSession) -> None:
        self.runs.select(session.paper_run_id)

    def _on_selected(self, event: param.parameterized.Event) -> None:
        self.show(event.new)

    def show(self, run_id: str) -> SessionView | None:
        """Show ``run_id``: live from the registry when it runs here, else from the ledger."""
        if self.view is not None:
            if self.view.run_id == run_id:
                return self.view
            self.view.close()
            self.view = None
        if not run_id:
            return None
        session = registry().get(run_id)
        target: PaperSession | str = session if session is not None else run_id
        self.view = SessionView(target, pump=self.pump, ledger=self.ledger)
        self.view_holder.objects = [self.view]
        return self.view

    def main(self) -> list[Any]:
        """The main area's objects."""
        runs_page = pn.Column(
            pn.pane.Markdown("### Paper runs", margin=(0, 10)),
            self.runs,
            self.view_holder,
            sizing_mode="stretch_width",
        )
        return [
            self.kill_switch.details,
            pn.Tabs(
                ("Runs", runs_page),
                ("All bots", self.multibot),
                sizing_mode="stretch_width",
                css_classes=["alphaswarm-pages"],
            ),
        ]

    def __panel__(self) -> pn.viewable.Viewable:
        """Banner, kill switch, runs and the selected run in one column (no template)."""
        return pn.Column(
            pn.Row(banner(), self.kill_switch.header),
            *self.main(),
            sizing_mode="stretch_width",
        )


def dashboard(ledger: Any = None, period: int = 500) -> pn.template.FastListTemplate:
    """Build the dashboard page for the current browser session.

    Parameters
    ----------
    ledger : Ledger, optional
        The ledger to read and write; the process default otherwise.
    period : int
        Milliseconds between the page's updates (250 to 1000).

    Returns
    -------
    FastListTemplate
        Call ``.servable()`` on it (``apps/dashboard.py`` does).
    """
    board = Dashboard(ledger=ledger, period=period)
    template = pn.template.FastListTemplate(
        title="AlphaSwarm",
        header=[banner(), board.kill_switch.header],
        sidebar=[board.form],
        main=board.main(),
        header_background="#263238",
        accent_base_color="#1565c0",
        sidebar_width=330,
        main_layout=None,
    )
    template.dashboard = board  # handle for tests and embedding
    return template
