"""The dashboard page: ``panel serve apps/dashboard.py``.

A FastListTemplate with a persistent "PAPER: simulated execution" banner and
the kill switch in the header; the list of every paper run (live ones from the
session registry, finished ones from the ledger, so a restarted server still
shows its history); the selected run's :class:`SessionView`; and a form that
starts a session for a registered bot through the paper gate.
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any

import pandas as pd
import panel as pn

# The table extension's model, registered before any page renders: a served page's
# main area is built after its HTML went out, and Panel lists the scripts of the
# extensions whose models it knows when it writes that HTML.
import panel.models.tabulator  # noqa: F401
import param
from bokeh.models.widgets.tables import NumberFormatter

from alphaswarm.bots import Bot
from alphaswarm.model import ModelError
from alphaswarm.paper.gate import GateRefused
from alphaswarm.paper.killswitch import KillSwitchEngaged
from alphaswarm.paper.registry import registry
from alphaswarm.paper.runtime import engine_loop, get_ledger
from alphaswarm.paper.session import PaperSession
from alphaswarm.ui.backtest_page import BacktestPage
from alphaswarm.ui.base import FramePump, LiveView, served_document
from alphaswarm.ui.choices import show_choices
from alphaswarm.ui.design import Fast
from alphaswarm.ui.killswitch import KillSwitchWidget
from alphaswarm.ui.multibot import MultiBotView
from alphaswarm.ui.pages.html import fmt_time
from alphaswarm.ui.routes import Route, page_path, parse
from alphaswarm.ui.row_press import RowPress
from alphaswarm.ui.run_toasts import RunToasts
from alphaswarm.ui.session_view import SessionView
from alphaswarm.ui.socket_writes import document_connections, watch_connections
from alphaswarm.ui.tables import InlineHTML, ReadOnlyTabulator, show_rows

log = logging.getLogger(__name__)

BANNER_TEXT = "PAPER: simulated execution"
#: Position of the "All bots" tab in the overview's tabs.
EVERY_BOT_TAB = 1

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
    first_rows = param.List(
        default=None,
        allow_None=True,
        doc="The ledger's runs, read already (off the server's loop): shown first instead "
        "of reading them again (None: read when built).",
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
        # A click is an event, never dropped: the synced selection can be, when the
        # browser's click crosses a refresh of a streaming run's row on the wire.
        self.table.on_click(self._on_click)
        # and a press and release that straddle a redraw of the rows make no click at all
        self._press = RowPress(on_row=self.select, table_class="alphaswarm-runs", field="id")
        self._layout = pn.Column(self.table, self._press, sizing_mode="stretch_width", margin=0)

    def _on_select(self, event: param.parameterized.Event) -> None:
        if self._selecting or not event.new:
            return
        self._select_row(event.new[0])

    def _on_click(self, event: Any) -> None:
        self._select_row(event.row)
        self._mark_selection()

    def _select_row(self, idx: int) -> None:
        value = self.table.value
        if 0 <= idx < len(value):
            self.selected = str(value.iloc[idx]["id"])

    def select(self, run_id: str) -> None:
        """Select ``run_id`` (refreshing the list first when it is not listed yet)."""
        value = self.table.value
        if not len(value) or run_id not in set(value["id"]):
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
        if self.first_rows is None:
            self.reload()
            return
        self._ledger_rows = list(self.first_rows)
        self.first_rows = None
        self._show()

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
            # newest first by the real start time, then shown in the browser's zone
            df["_start"] = pd.to_datetime(
                df["started_at"], utc=True, errors="coerce", format="mixed"
            )
            df = df.sort_values(["_start", "id"], ascending=False, na_position="first")
            df = df.drop(columns="_start").reset_index(drop=True)
            df["started_at"] = [fmt_time(v) for v in df["started_at"]]
            df["ended_at"] = [fmt_time(v) for v in df["ended_at"]]
            df["total_pnl"] = df["total_pnl"].astype(float)
            df["num_fills"] = df["num_fills"].fillna(0).astype(int)
            df["bars_seen"] = df["bars_seen"].fillna(0).astype(int)
        self._selecting = True
        try:
            replaced = show_rows(self.table, df)
        finally:
            self._selecting = False
        if replaced:
            self._mark_selection()

    @property
    def value(self) -> pd.DataFrame:
        """The rows shown."""
        return self.table.value

    def __panel__(self) -> pn.viewable.Viewable:
        """The runs table."""
        return self._layout


class StartForm(pn.viewable.Viewer):
    """Start a paper session for a registered bot, through the paper gate.

    Sessions run on :func:`alphaswarm.paper.runtime.engine_loop`, never on the web
    server's loop. A gate refusal lists every failing rule.
    """

    ledger = param.Parameter(default=None, doc="Ledger holding the bots; the default otherwise.")
    last_session = param.ClassSelector(
        class_=PaperSession, default=None, allow_None=True, doc="The session started last."
    )
    message = param.String(default="", doc="The outcome of the last attempt, as plain text.")
    read_bots = param.Boolean(
        default=True,
        doc="Read the registered bots when built (off: :meth:`show_bots` lists them later).",
    )

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
        if self.read_bots:
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
        self.show_bots(self.ledger_().list_bots())

    def show_bots(self, bots: list[dict[str, Any]]) -> None:
        """List ``bots`` (:meth:`Ledger.list_bots` rows) in the bot picker."""
        options = {self.bot_label(b): b["id"] for b in bots}
        show_choices(self.bot_select, options)

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
    """The whole page's parts, for tests and for embedding without the template.

    With ``deferred`` (a served page) only the shell is built with the page: the
    kill switch (header and confirmation), the start form and an empty main area.
    :meth:`load` fills the main area once the browser shows the page, reading the
    ledger on a worker thread, so the page's HTML never waits on the ledger and
    the kill switch works while the runs, plots and tables are still loading.
    """

    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")
    period = param.Integer(default=500, bounds=(250, 1000), doc="Milliseconds between ticks.")
    route = param.ClassSelector(
        class_=Route, default=Route("overview"), doc="The page the browser asked for."
    )
    landing = param.String(
        default="", doc="Run shown when the overview opens with no run asked for ('' for none)."
    )
    deferred = param.Boolean(
        default=False,
        doc="Build only the shell now; :meth:`load` builds the main area (a served page "
        "calls it once the browser shows the shell).",
    )
    loaded = param.Boolean(default=False, doc="True once the main area is built.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.pump = FramePump.current(period=self.period)
        self.kill_switch = KillSwitchWidget(pump=self.pump)
        self.form = StartForm(ledger=self.ledger, read_bots=not self.deferred)
        # toasts of the open run (risk halt, error, kill) go to this page's notification area
        from panel.io.notifications import NotificationArea

        self.notifications = NotificationArea()
        self.toasts: RunToasts | None = None
        self.view: SessionView | None = None
        self.history = HistoryFollower(path=self.route.path)
        self.form.on_started(self._on_started)
        # built by _build_content (at once, or by load() on a served page)
        self.runs: RunsList | None = None
        self.view_holder: pn.Column | None = None
        self.multibot: MultiBotView | None = None
        self.backtests: BacktestPage | None = None
        self.other: Any = None
        self.tabs: pn.Tabs | None = None
        self._tab_holders: list[pn.Column] = []
        self.body = pn.Column(
            sizing_mode="stretch_width", css_classes=["alphaswarm-main"], min_height=200
        )
        if self.deferred:
            self.body.objects = [
                pn.pane.HTML(
                    '<div class="alphaswarm-loading" style="padding:16px 10px;opacity:.7">'
                    "Loading…</div>",
                    margin=(0, 10),
                )
            ]
        else:
            self.body.objects = self._build_content(None)
            self._build_tabs()
            self.loaded = True

    # -- the main area --------------------------------------------------------------
    def _ledger(self) -> Any:
        return self.ledger or get_ledger()

    def _read_ledger(self) -> dict[str, Any]:
        """What the main area reads first: the runs, the bots, whether the asked run exists."""
        ledger = self._ledger()
        data: dict[str, Any] = {"bots": ledger.list_bots(), "runs": None, "known": False}
        if self.route.page in ("overview", "runs", "run"):
            data["runs"] = ledger.list_runs(limit=RunsList.param.limit.default)
            if self.route.page == "run":
                ident = self.route.ident
                data["known"] = registry().get(ident) is not None or any(
                    r.get("id") == ident for r in data["runs"]
                )
                if not data["known"]:
                    data["known"] = ledger.get_run(ident) is not None
        return data

    def _build_content(self, data: dict[str, Any] | None) -> list[Any]:
        """Build the main area's content (``data``: what :meth:`_read_ledger` read).

        The overview's other tabs start empty; :meth:`_build_tabs` fills them.
        """
        self.other = self.page()
        if self.other is not None:
            return [self.other]
        first_rows = data["runs"] if data is not None else None
        self.runs = RunsList(pump=self.pump, ledger=self.ledger, first_rows=first_rows)
        self.view_holder = pn.Column(
            pn.pane.Markdown("*Select a run above, or start one from the form.*"),
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-selected-run"],
        )
        self.runs.param.watch(self._on_selected, "selected")
        runs_page = pn.Column(
            pn.pane.Markdown("### Paper runs", margin=(0, 10)),
            self.runs,
            self.view_holder,
            sizing_mode="stretch_width",
        )
        if data is None:  # built at once: the run asked for too (load() opens it later)
            self._open_route()
        self._tab_holders = [pn.Column(sizing_mode="stretch_width") for _ in range(2)]
        self.tabs = pn.Tabs(
            ("Runs", runs_page),
            ("All bots", self._tab_holders[0]),
            ("Backtests", self._tab_holders[1]),
            # not dynamic: a tab built on opening dropped its buttons' clicks
            # (Run backtest did nothing); every tab is built with the page
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-pages"],
        )
        self.tabs.param.watch(self._tab_shown, "active")
        return [self.tabs]

    def _tab_shown(self, event: param.parameterized.Event) -> None:
        # a hidden tab's view is not polled: at hundreds of sessions the every-bot view
        # was most of the server loop's work on every tick, for a tab nobody looked at
        if self.multibot is not None:
            self.multibot.on_screen = event.new == EVERY_BOT_TAB

    def _build_tabs(self) -> None:
        """Fill the overview's other tabs (every bot at once; backtests)."""
        if self.other is not None or self.multibot is not None:
            return
        # the kill switch stays in the page header
        self.multibot = MultiBotView(
            pump=self.pump,
            ledger=self.ledger,
            show_kill_switch=False,
            on_screen=self.tabs is not None and self.tabs.active == EVERY_BOT_TAB,
        )
        self.backtests = BacktestPage(ledger=self.ledger)
        self._tab_holders[0].objects = [self.multibot]
        self._tab_holders[1].objects = [self.backtests]

    async def load(self) -> None:
        """Build the main area now (a served page: once the browser shows the shell).

        The ledger is read on a worker thread; meanwhile the server's loop serves the
        page's kill switch and every other browser. The open tab (the runs and the
        landing run's view) goes out first, the other tabs after it.
        """
        if self.loaded:
            return
        doc = served_document()
        if doc is not None:  # the browser is connected now: its writes of the build below
            watch_connections(document_connections(doc))  # retrieve a closed tab's failure
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, self._read_ledger)
            if self.pump.closed:  # the tab closed while the ledger was read
                return
            self.form.show_bots(data["bots"])
            self.body.objects = self._build_content(data)
            # one part at a time, the loop serving other pages in between: the runs table,
            # the run the address names (or the landing run), then the other tabs
            await asyncio.sleep(0)
            if not self.pump.closed:
                self._open_route(data["known"])
            await asyncio.sleep(0)
            if not self.pump.closed:
                self._build_tabs()
            self.loaded = True
        except Exception as exc:  # noqa: BLE001 - the shell (kill switch) stays usable
            log.exception("the dashboard's main area could not be built")
            self.body.objects = [
                pn.pane.Alert(
                    f"This page could not be loaded: {html.escape(str(exc))}",
                    alert_type="danger",
                    css_classes=["alphaswarm-load-error"],
                )
            ]

    def _open_route(self, known: bool | None = None) -> None:
        """Show what the address names: a run, or the landing run on the overview."""
        route = self.route
        if self.runs is None or self.view_holder is None:
            return
        if route.page == "run":
            if known is None:
                known = registry().get(route.ident) is not None
                known = known or self.runs.ledger_().get_run(route.ident) is not None
            if known:
                self.runs.select(route.ident)
            else:
                self.view_holder.objects = [
                    pn.pane.Alert(
                        f"No paper run <code>{html.escape(route.ident)}</code> in this ledger.",
                        alert_type="warning",
                        css_classes=["alphaswarm-missing-run"],
                    )
                ]
        elif route.page in ("overview", "runs") and self.landing:
            self.runs.select(self.landing)

    def _on_started(self, session: PaperSession) -> None:
        if self.runs is not None:
            self.runs.select(session.paper_run_id)

    def _on_selected(self, event: param.parameterized.Event) -> None:
        self.show(event.new)
        if event.new and not (self.route.page != "run" and event.new == self.landing):
            self._address(page_path("run", event.new))

    @staticmethod
    def _address(path: str) -> None:
        """Put ``path`` in the browser's address bar (a history entry; no reload)."""
        location = pn.state.location
        if location is not None and location.pathname != path:
            location.pathname = path

    def show(self, run_id: str) -> SessionView | None:
        """Show ``run_id``: live from the registry when it runs here, else from the ledger."""
        if self.view is not None:
            if self.view.run_id == run_id:
                return self.view
            self.view.close()
            self.view = None
        if self.toasts is not None:
            self.toasts.close()
            self.toasts = None
        if not run_id or self.view_holder is None:
            return None
        session = registry().get(run_id)
        target: PaperSession | str = session if session is not None else run_id
        self.view = SessionView(target, pump=self.pump, ledger=self.ledger)
        if session is not None:
            self.toasts = RunToasts(
                session, pump=self.pump, ledger=self.ledger, notifications=self.notifications
            )
        self.view_holder.objects = [self.view]
        return self.view

    def page(self) -> Any:
        """The content of a page other than the overview (``None`` on the overview)."""
        from alphaswarm.ui.pages.dispatch import page_content

        return page_content(self.route, self.ledger)

    def _follow_zone(self, nav: pn.pane.HTML, label: str) -> None:
        """Show times in the browser's zone once it reports it (after the page loads)."""
        from alphaswarm.ui.pages.html import nav_bar

        info = pn.state.browser_info
        if info is None:
            return

        def retime(*_events: Any) -> None:
            nav.object = nav_bar(label)
            if self.other is not None:
                self.other.retime()

        info.param.watch(retime, "timezone")

    def main(self) -> list[Any]:
        """The main area's objects: the kill switch's confirmation, the links, the page."""
        from alphaswarm.ui.pages.html import nav_bar

        current = {
            "bots": "Bots", "bot": "Bots", "backtest": "", "sweeps": "Sweeps", "sweep": "Sweeps",
        }  # fmt: skip
        label = current.get(self.route.page, "Overview")
        nav = pn.pane.HTML(nav_bar(label), margin=(0, 10))
        self._follow_zone(nav, label)
        # built at once (a notebook, a test): the content itself, as it always was
        content = [self.body] if self.deferred else list(self.body.objects)
        return [self.history, self.kill_switch.details, nav, *content]

    def __panel__(self) -> pn.viewable.Viewable:
        """Banner, kill switch, runs and the selected run in one column (no template)."""
        return pn.Column(
            pn.Row(banner(), self.kill_switch.header),
            *self.main(),
            sizing_mode="stretch_width",
        )


def dashboard(
    ledger: Any = None, period: int = 500, *, path: str | None = None, landing: str = ""
) -> pn.template.FastListTemplate:
    """Build the dashboard page for the current browser session.

    Parameters
    ----------
    ledger : Ledger, optional
        The ledger to read and write; the process default otherwise.
    period : int
        Milliseconds between the page's updates (250 to 1000).
    path : str, optional
        The page's address (see :mod:`alphaswarm.ui.routes`); the browser's own
        address in a served session.
    landing : str
        Run to open when the overview is asked for (``alphaswarm serve --demo``
        opens the demo's run).

    Returns
    -------
    FastListTemplate
        Call ``.servable()`` on it (``apps/dashboard.py`` does).

    Notes
    -----
    Served, the page goes out as a shell (header with the kill switch, the start
    form, the links) and its main area is built once the browser shows it
    (:meth:`Dashboard.load`): the first paint waits on neither the ledger nor the
    plots and tables. Built outside a server (a notebook, a test) it is whole at once.
    """
    if path is None and pn.state.location is not None:
        path = pn.state.location.pathname
    served = served_document() is not None
    board = Dashboard(
        ledger=ledger, period=period, route=parse(path), landing=landing or "", deferred=served
    )
    if served:
        pn.state.onload(board.load)
    template = pn.template.FastListTemplate(
        design=Fast,
        title="AlphaSwarm",
        header=[banner(), board.kill_switch.header],
        # the start form belongs to the run pages; the other pages carry their own actions
        sidebar=[board.form] if board.route.page in ("overview", "runs", "run") else [],
        main=board.main(),
        notifications=board.notifications,
        header_background="#263238",
        accent_base_color="#1565c0",
        # the installed system fonts: the page asks nothing of the network (no web font)
        font=SYSTEM_FONTS,
        font_url="",
        sidebar_width=330,
        main_layout=None,
        raw_css=[NARROW_SCREEN_CSS],
    )
    template.dashboard = board  # handle for tests and embedding
    return template


#: The dashboard's type: fonts every desktop and phone has, so no web font is fetched.
SYSTEM_FONTS = (
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', 'Noto Sans', "
    "'Liberation Sans', Arial, sans-serif"
)

#: Narrow windows (and an engaged switch's wider header): the header's items (banner, kill
#: switch) move to a second line so the
#: kill switch stays on screen and uncovered; on a phone the banner and title shrink too,
#: the sidebar starts closed (see :class:`HistoryFollower`) and opens over the page.
NARROW_SCREEN_CSS = """
/* any width: header items that do not fit beside the title and the theme toggle (an engaged
   kill switch with its reason and reset button) wrap onto a second line, never under the toggle;
   one line stays 64 px high, the height the page's main area is sized for */
#header { flex-wrap: wrap; height: auto !important; min-height: 50px; row-gap: 4px;
          padding-top: 7px; padding-bottom: 7px; }
#header-items { width: auto; flex: 1 1 auto; min-width: 0; }
.pn-toggle-theme { margin-left: auto; }
@media (max-width: 1280px) {
  #header { flex-wrap: wrap; height: auto !important; row-gap: 4px; padding-bottom: 6px; }
  #header-items { flex-wrap: wrap; width: 100%; order: 5; justify-content: flex-start; }
  .pn-toggle-theme { margin-left: auto; }
}
@media (max-width: 760px) {
  /* the sidebar opens over the page: the main area keeps the window's width whether the
     sidebar is open, closing, or not yet closed while the page loads */
  #content { position: relative; }
  #sidebar { position: absolute; top: 0; left: 0; z-index: 10;
             background: var(--background-color, #fff); }
  #header .title { font-size: 1.1em; }
  .alphaswarm-ks { flex-wrap: wrap !important; max-width: 100%; }
  .alphaswarm-paper-banner { font-size: 11px; padding: 3px 8px !important; }
}
"""
#: Below this width (px) the sidebar starts closed.
NARROW_SCREEN_PX = 760


class HistoryFollower(pn.custom.JSComponent):
    """Reloads the page when the browser's back or forward buttons change its address.

    The dashboard puts each run it opens in the address bar (a history entry);
    going back to an earlier address shows that page again by loading it, and so
    does a page the browser restores from its back-forward cache.
    """

    path = param.String(default="", doc="The address the page was built for.")

    _esm = """
    const NARROW = NARROW_PX
    export function render({ model, el }) {
      el.style.display = "none"
      const norm = (p) => decodeURIComponent(p).replace(/[/]+$/, "") || "/"
      if (model.path && norm(window.location.pathname) !== norm(model.path)) {
        // the address moved (back or forward) before this page could listen: follow it
        window.location.reload()
        return
      }
      if (!window.__alphaswarmHistory) {
        window.__alphaswarmHistory = true
        if (!document.querySelector("base")) {
          // the dashboard changes the address without a reload (a run's /runs/<id>):
          // pin relative addresses (the stylesheets views add later) to the page's root
          const depth = norm(model.path || "/").split("/").filter(Boolean).length
          const base = document.createElement("base")
          base.href = new URL(depth > 1 ? "../".repeat(depth - 1) : "./", window.location.href).href
          document.head.prepend(base)
        }
        // a phone opens with the sidebar closed (the menu button opens it)
        const sidebar = document.getElementById("sidebar")
        if (sidebar && window.innerWidth < NARROW && typeof window.closeNav === "function") {
          window.closeNav()
        }
        window.addEventListener("popstate", () => window.location.reload())
        // a page restored from the back-forward cache shows its old state: load it anew
        window.addEventListener("pageshow", (e) => { if (e.persisted) window.location.reload() })
      }
    }
    """.replace("NARROW_PX", str(NARROW_SCREEN_PX))

    def __init__(self, **params: Any) -> None:
        super().__init__(height=0, width=0, margin=0, **params)
