"""Dashboard components without a browser: model data after frames arrive."""

from __future__ import annotations

import gc
import threading

import pandas as pd
import pytest
from panel.models.tabulator import CellClickEvent

import alphaswarm as aw
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.runtime import engine_loop
from alphaswarm.ui import (
    EquityCurve,
    FillsTable,
    FramePump,
    FramesLog,
    KillSwitchWidget,
    Positions,
    RiskPanel,
    SessionCard,
    SessionView,
)
from alphaswarm.ui.app import Dashboard, RunsList, StartForm
from alphaswarm.ui.risk import level
from tests.ui.conftest import GOOD_BOT, wait_until


def _frame(session: aw.PaperSession, seq: int, stage: str, **extras) -> dict:
    return {
        "task_id": session.paper_run_id,
        "stage": stage,
        "message": f"{stage} {seq}",
        "timestamp": f"2026-11-24T10:00:{seq % 60:02d}.000Z",
        "ts": 1.0 * seq,
        "seq": seq,
        **extras,
    }


def _bar(session, seq, minute, close):
    ts = f"2024-01-02T15:{minute:02d}:00+00:00"
    bar = {"symbol": "DEMO", "ts": ts, "open": close, "high": close, "low": close, "close": close}
    return _frame(session, seq, "bar.received", bar=bar)


def _fill(session, seq, n, side="buy", price=100.0):
    fill = {
        "fill_id": f"f{n}",
        "order_id": f"o{n}",
        "symbol": "DEMO",
        "side": side,
        "qty": 10.0,
        "price": price,
        "commission": 0.0,
        "filled_at": f"2024-01-02T15:{n % 60:02d}:00+00:00",
    }
    positions = {"DEMO": {"qty": 10.0 * n, "avg_price": 100.0, "last_price": price,
                          "unrealized_pnl": 1.5 * n, "realized_pnl": 0.0}}  # fmt: skip
    return _frame(session, seq, "order.filled", fill=fill, positions=positions, equity=1e5)


@pytest.fixture
def idle_session(tmp_ledger) -> aw.PaperSession:
    """A session that is never started: frames are published to its bus by hand."""
    return aw.PaperSession(aw.Bot(GOOD_BOT))


# -- the pump -------------------------------------------------------------------------
def test_pump_one_subscription_per_session_and_cleanup(idle_session):
    pump = FramePump()
    fills = FillsTable(idle_session, pump=pump)
    log = FramesLog(idle_session, pump=pump)
    assert pump.subscriptions == 1
    assert idle_session.frames.has_subscribers
    idle_session.frames.publish(_fill(idle_session, 1, 1))
    pump.tick()
    assert len(fills.value) == 1
    assert list(log.value["stage"]) == ["order.filled"]
    fills.close()
    assert pump.subscriptions == 1  # the log still listens
    log.close()
    assert pump.subscriptions == 0
    assert not idle_session.frames.has_subscribers
    pump.close()
    assert pump.components == []


def test_pump_close_releases_everything(idle_session):
    pump = FramePump()
    SessionView(idle_session, pump=pump)
    KillSwitchWidget(pump=pump)
    assert pump.subscriptions == 1 and len(pump.components) == 8
    pump.close()
    assert pump.subscriptions == 0 and pump.components == []
    assert not idle_session.frames.has_subscribers


def test_pump_period_is_bounded():
    with pytest.raises(ValueError, match="250 to 1000"):
        FramePump(period=100)


def test_no_growth_over_100_open_close_cycles(idle_session):
    def cycle():
        pump = FramePump()
        SessionView(idle_session, pump=pump)
        KillSwitchWidget(pump=pump)
        pump.tick()
        pump.close()

    for _ in range(5):
        cycle()
    gc.collect()
    before = sum(issubclass(type(o), FramePump) for o in gc.get_objects())  # type(): no proxy deref
    for _ in range(100):
        cycle()
    gc.collect()
    after = sum(issubclass(type(o), FramePump) for o in gc.get_objects())  # type(): no proxy deref
    assert after <= before + 1
    assert not idle_session.frames.has_subscribers


def test_lagged_subscriber_is_reported_not_fatal(idle_session):
    pump = FramePump()
    log = FramesLog(idle_session, pump=pump, stages=["order.filled", "subscriber.lagged"])
    sub = pump._subs[id(idle_session)][1]
    sub.maxsize = 5
    for i in range(1, 21):
        idle_session.frames.publish(_fill(idle_session, i, i))
    pump.tick()
    assert "subscriber.lagged" in set(log.value["stage"])
    assert len(log.value[log.value["stage"] == "order.filled"]) == 5


# -- components fed by hand-published frames -------------------------------------------
def test_equity_curve_buffers_gain_points(idle_session):
    pump = FramePump()
    curve = EquityCurve(idle_session, pump=pump)
    assert curve.symbol == "DEMO"
    frames, seq = [], 0
    for minute, (close, equity) in enumerate([(100, 1e5), (101, 100_500), (99, 99_000)]):
        seq += 1
        frames.append(_bar(idle_session, seq, minute, close))
        seq += 1
        frames.append(_frame(idle_session, seq, "equity.update", equity=equity))
    frames.append(_fill(idle_session, seq + 1, 2, side="buy", price=99))
    frames.append(_fill(idle_session, seq + 2, 3, side="sell", price=99.5))
    for f in frames:
        idle_session.frames.publish(f)
    pump.tick()
    eq = curve.equity_buffer.data
    assert list(eq["equity"]) == [1e5, 100_500, 99_000]
    assert eq["drawdown"].iloc[-1] == pytest.approx((99_000 / 100_500 - 1) * 100)
    assert list(curve.price_buffer.data["close"]) == [100, 101, 99]
    assert list(curve.buys["price"]) == [99]
    assert list(curve.sells["price"]) == [99.5]
    assert str(eq["ts"].iloc[0]) == "2024-01-02 15:00:00"
    # a frame seen twice (history + subscription) is applied once
    idle_session.frames.publish(frames[-1])
    pump.tick()
    assert len(curve.sells) == 1


def test_fills_table_streams_with_bounded_rollover(idle_session):
    pump = FramePump()
    table = FillsTable(idle_session, pump=pump, max_rows=5)
    for i in range(1, 13):
        idle_session.frames.publish(_fill(idle_session, i, i))
        if i % 4 == 0:
            pump.tick()
    assert len(table.value) == 5
    assert list(table.value["fill_id"]) == [f"f{i}" for i in range(8, 13)]
    assert set(table.value.columns) >= {"filled_at", "symbol", "side", "qty", "price"}


def test_frames_log_filters_by_stage(idle_session):
    pump = FramePump()
    log = FramesLog(idle_session, pump=pump)
    idle_session.frames.publish(_bar(idle_session, 1, 0, 100))
    idle_session.frames.publish(_fill(idle_session, 2, 1))
    idle_session.frames.publish(_frame(idle_session, 3, "heartbeat"))
    pump.tick()
    assert list(log.value["stage"]) == ["order.filled"]  # per-bar stages hidden by default
    log.stage_filter.value = ["bar.received", "order.filled"]
    assert list(log.value["stage"]) == ["bar.received", "order.filled"]
    log.stage_filter.value = ["heartbeat"]
    assert list(log.value["seq"]) == [3]


def test_positions_follow_the_latest_frame(idle_session):
    pump = FramePump()
    pos = Positions(idle_session, pump=pump)
    assert pos.value.empty
    idle_session.frames.publish(_fill(idle_session, 1, 1))
    idle_session.frames.publish(_fill(idle_session, 2, 3, price=102))
    pump.tick()
    row = pos.value.iloc[0]
    assert (row["symbol"], row["qty"], row["last_price"]) == ("DEMO", 30.0, 102.0)
    assert row["market_value"] == pytest.approx(3060.0)
    assert row["unrealized_pnl"] == pytest.approx(4.5)


def test_a_fill_committed_while_the_table_loads_is_not_lost(idle_session):
    """The table reads the bus's frames, then the ledger: a fill committed in between
    (its frame already out of the bus's memory) is in the ledger by then.

    The ledger here stands for the commit's timing: its fill is committed at the
    moment the table reads the bus's recent frames.
    """

    class Ledger:
        committed = False

        def fills(self, run_id: str) -> pd.DataFrame:
            row = {**_fill(idle_session, 1, 1)["fill"], "id": "f1", "paper_run_id": run_id}
            return pd.DataFrame([row] if self.committed else [], columns=list(row))

    ledger = Ledger()
    bus = idle_session.frames
    bus.publish(_fill(idle_session, 1, 1))
    for seq in range(2, 2 + 250):  # more frames than the bus holds: f1's falls out
        bus.publish(_frame(idle_session, seq, "heartbeat"))
    real_recent = bus.recent

    def recent(since_seq=None):
        ledger.committed = True  # the fill's commit lands while the bus is read
        return real_recent(since_seq)

    bus.recent = recent
    pump = FramePump()
    table = FillsTable(idle_session, pump=pump, run_id="r1", ledger=ledger)
    assert list(table.value["fill_id"]) == ["f1"]
    pump.close()


def test_risk_levels():
    assert [level(u) for u in (0.1, 0.6, 0.9, 1.0, None)] == [
        "ok",
        "warn",
        "near",
        "breach",
        "unknown",
    ]


# -- a real session at speed 0 ----------------------------------------------------------
def test_session_view_after_a_real_session(good_bot, run_session):
    pump = FramePump()
    session = run_session(good_bot, max_bars=300)
    view = SessionView(session, pump=pump)
    assert session.wait(20)
    view.refresh()
    view.refresh()
    fills = session.fills
    assert len(fills) > 0
    assert list(view.fills.value["fill_id"]) == list(fills["id"])
    assert view.equity.points >= 1
    assert len(view.equity.price_buffer.data) >= 1
    assert "order.filled" in set(view.frames.value["stage"])
    assert "done" in set(view.frames.value["stage"])
    assert view.card.status == "completed"
    assert view.card.equity_indicator.value == pytest.approx(session.equity)
    assert view.card.fills_indicator.value == session.num_fills
    assert view.card.pnl_indicator.value == pytest.approx(session.total_pnl)
    assert view.card.stop_button.disabled
    held = {s: p["qty"] for s, p in session.positions.items()}
    assert (
        dict(zip(view.positions.value["symbol"], view.positions.value["qty"], strict=True)) == held
    )
    limits = {r["limit"]: r for r in view.risk.rows}
    assert set(limits) == {"max_position_qty", "max_drawdown_pct"}
    assert limits["max_position_qty"]["value"] == pytest.approx(max(held.values(), default=0))
    assert pump.subscriptions == 0  # the finished session's bus was released


def test_finished_run_is_read_back_from_the_ledger(good_bot, run_session):
    session = run_session(good_bot, max_bars=300)
    assert session.wait(20)
    view = SessionView(session.paper_run_id, pump=FramePump())
    assert view.session is None
    assert len(view.fills.value) == session.num_fills
    assert view.equity.points == session.bars_seen  # replayed from the stored frames
    assert view.card.status == "completed"
    assert view.card.equity_indicator.value == pytest.approx(session.equity)
    assert "done" in set(view.frames.value["stage"])
    assert {r["limit"] for r in view.risk.rows} == {"max_position_qty", "max_drawdown_pct"}
    assert len(view.positions.value) == len(session.positions)


def test_risk_panel_colours_a_limit_it_nears(tmp_ledger, run_session):
    bot = aw.Bot({**GOOD_BOT, "risk": {**GOOD_BOT["risk"], "max_position_qty": 210}})
    aw.backtest(bot, bars=2000)
    session = run_session(bot, max_bars=120)
    assert session.wait(20)
    panel = RiskPanel(session, pump=FramePump())
    row = next(r for r in panel.rows if r["limit"] == "max_position_qty")
    assert row["used"] == pytest.approx(200 / 210)
    assert row["level"] == "near"
    assert RiskPanel.COLORS["near"] in panel.pane.object


def test_session_card_stop_button_stops_a_paced_session(good_bot, run_session):
    pump = FramePump()
    session = run_session(good_bot, speed=60, max_bars=None)
    card = SessionCard(session, pump=pump)
    pump.tick()
    assert card.status == "running" and not card.stop_button.disabled
    card.stop_button.clicks += 1
    assert session.wait(5)
    pump.tick()
    assert session.status == "stopped"
    assert card.status == "stopped" and card.stop_button.disabled
    assert card.remaining == "ended"  # stopped before its end: not "complete"
    assert not card.stop_button.visible  # a finished run has nothing to stop


def test_a_session_displayed_before_it_starts(good_bot):
    session = aw.PaperSession(good_bot, speed=0, max_bars=100)
    view = session.__panel__()
    assert isinstance(view, SessionView) and view.run_id == ""
    pump = FramePump()
    view = SessionView(session, pump=pump)
    session.start(loop=engine_loop())
    assert session.wait(20)
    view.refresh()
    assert view.card.run_id == session.paper_run_id
    assert len(view.fills.value) == session.num_fills
    assert "done" in set(view.frames.value["stage"])
    with pytest.raises(ValueError, match="needs a session or a run_id"):
        SessionView()


# -- the kill switch --------------------------------------------------------------------
def test_kill_switch_widget_sees_an_engagement_from_another_thread(
    tmp_ledger, good_bot, run_session
):
    pump = FramePump()
    widget = KillSwitchWidget(pump=pump)
    assert not widget.engaged and 'data-state="armed"' in widget.badge.object
    session = run_session(good_bot, speed=60, max_bars=None)
    t = threading.Thread(target=lambda: kill_switch().engage("from a notebook", actor="python"))
    t.start()
    t.join()
    pump.tick()
    assert widget.engaged
    assert 'data-state="engaged"' in widget.badge.object
    assert widget.engage_button.disabled and widget.reset_button.visible
    assert 'data-target="paper"' in widget.last_pane.object
    assert "ms</b>" in widget.last_pane.object
    assert session.wait(5) and session.status == "killed"
    widget.reset_button.clicks += 1
    assert not kill_switch().engaged
    assert not widget.engaged and 'data-state="armed"' in widget.badge.object


def test_kill_switch_needs_halt_typed_and_lists_targets(tmp_ledger, good_bot, run_session):
    widget = KillSwitchWidget(pump=FramePump())
    session = run_session(good_bot, speed=60, max_bars=None)
    widget.engage_button.clicks += 1
    assert widget.confirm_box.visible
    for name in kill_switch().targets:
        assert f"<b>{name}</b>" in widget.targets_pane.object
    assert session.paper_run_id in widget.targets_pane.object
    assert widget.confirm_button.disabled
    widget.confirm_input.value_input = "halt"
    assert widget.confirm_button.disabled
    assert widget._engage() is None and not kill_switch().engaged
    widget.confirm_input.value_input = "HALT"
    assert not widget.confirm_button.disabled
    widget.confirm_button.clicks += 1
    assert kill_switch().engaged
    assert kill_switch().last["targets"]["paper"]["halted"] == 1
    assert not widget.confirm_box.visible and widget.engaged
    assert tmp_ledger.get_run(session.paper_run_id)["status"] == "killed"


# -- the dashboard ----------------------------------------------------------------------
def test_start_form_shows_gate_refusal_plainly(tmp_ledger):
    bot = aw.Bot({**GOOD_BOT, "name": "never-backtested"})
    tmp_ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    form = StartForm()
    form.bot_select.value = "never-backtested"
    assert form.start() is None
    assert form.alert.alert_type == "danger" and form.alert.visible
    assert "no backtest_runs row" in form.alert.object
    assert "<li>" in form.alert.object
    assert form.message.startswith("paper gate refused")


def test_start_form_starts_on_the_engine_loop(good_bot):
    form = StartForm()
    form.bot_select.value = "ui-sma"
    form.speed_input.value = 0
    form.duration_input.value = 30
    session = form.start()
    assert session is not None and form.alert.alert_type == "success"
    assert session._loop is engine_loop()
    assert session.wait(20) and session.status == "completed"
    assert session.duration_minutes == 30


def test_start_form_refuses_while_kill_switch_engaged(good_bot):
    kill_switch().engage("test", actor="test")
    form = StartForm()
    form.bot_select.value = "ui-sma"
    assert form.start() is None
    assert "kill switch engaged" in form.message


def test_runs_list_shows_live_and_ledger_history(good_bot, run_session, tmp_path):
    finished = run_session(good_bot, max_bars=60)
    assert finished.wait(20)
    live = run_session(good_bot, speed=60, max_bars=None)
    pump = FramePump()
    runs = RunsList(pump=pump)
    pump.tick()
    by_id = dict(zip(runs.value["id"], runs.value["status"], strict=True))
    assert by_id == {finished.paper_run_id: "completed", live.paper_run_id: "running"}
    live.stop()
    pump.tick()
    by_id = dict(zip(runs.value["id"], runs.value["status"], strict=True))
    assert by_id[live.paper_run_id] == "stopped"
    # a restarted server (a new Ledger object on the same file, empty registry view)
    other = aw.Ledger(url=f"sqlite:///{tmp_path}/l.db")
    restarted = RunsList(pump=FramePump(), ledger=other)
    assert set(restarted.value["id"]) == {finished.paper_run_id, live.paper_run_id}
    other.close()


def test_dashboard_selects_started_session(good_bot):
    board = Dashboard()
    board.form.bot_select.value = "ui-sma"
    board.form.speed_input.value = 60
    board.form.duration_input.value = 0
    session = board.form.start()
    assert session is not None and session.duration_minutes is None
    assert board.runs.selected == session.paper_run_id
    assert board.view is not None and board.view.session is session
    assert list(board.runs.table.selection) == [
        list(board.runs.value["id"]).index(session.paper_run_id)
    ]
    first_view = board.view
    board.runs.table.selection = []
    board.show("")
    assert board.view is None
    assert all(c._closed for c in first_view.components)
    session.stop()


def test_dashboard_template_has_banner_and_kill_switch(tmp_ledger):
    from alphaswarm.ui.app import BANNER_TEXT, dashboard

    template = dashboard()
    header = [getattr(o, "object", "") for o in template.header]
    assert any(BANNER_TEXT in str(h) for h in header)
    assert template.dashboard.kill_switch.header in list(template.header)
    assert isinstance(template.dashboard.runs.value, pd.DataFrame)
    template.dashboard.pump.close()


def test_session_tables_name_the_zone_of_their_times(idle_session):
    """Frames log: wall time in the viewer's zone with the zone; fills: bar time in UTC."""
    pump = FramePump()
    log = FramesLog(idle_session, pump=pump)
    fills = FillsTable(idle_session, pump=pump)
    frame = _fill(idle_session, 1, 4)
    frame["ts"] = 1_795_516_260.123  # 2026-11-24 10:31:00.123 UTC
    idle_session.frames.publish(frame)
    pump.tick()
    assert list(log.value["time"]) == ["10:31:00.123 UTC"]  # no browser: UTC, named
    assert list(fills.value["filled_at"]) == ["2024-01-02 15:04:00 UTC"]  # the bar's clock
    from alphaswarm.ui.frames_log import _row
    from alphaswarm.ui.pages.html import fmt_clock

    assert _row(frame, "America/New_York")["time"] == "05:31:00.123 EST"
    assert fmt_clock(frame["ts"], "Europe/Berlin") == "11:31:00.123 CET"
    assert fmt_clock(frame["ts"], "Not/AZone") == "10:31:00.123 UTC"


def test_a_click_on_a_run_row_selects_it_even_when_the_synced_selection_is_lost(
    good_bot, run_session
):
    first = run_session(good_bot, max_bars=30)
    second = run_session(good_bot, max_bars=30)
    assert first.wait(20) and second.wait(20)
    runs = RunsList(pump=FramePump())
    ids = list(runs.value["id"])
    row = ids.index(first.paper_run_id)
    # the browser's click arrives as a cell-click event; its selection change did not
    runs.table._process_event(CellClickEvent(model=None, column="bot_id", row=row))
    assert runs.selected == first.paper_run_id
    assert list(runs.table.selection) == [row]


def test_a_live_runs_moving_numbers_patch_its_row_and_keep_the_selection(good_bot, run_session):
    done = run_session(good_bot, max_bars=30)
    assert done.wait(20)
    live = run_session(good_bot, speed=600, max_bars=None)
    runs = RunsList(pump=FramePump())
    runs.select(live.paper_run_id)
    row = list(runs.value["id"]).index(live.paper_run_id)
    replaced: list[object] = []
    runs.table.param.watch(replaced.append, "value")
    seen = runs.value.loc[row, "bars_seen"]
    wait_until(lambda: live.bars_seen > seen + 2, timeout=60)
    runs.reload()
    assert runs.value.loc[row, "bars_seen"] > seen
    assert runs.value.loc[row, "id"] == live.paper_run_id
    assert replaced == []  # patched in place: the browser keeps its rows and selection
    assert list(runs.table.selection) == [row] and runs.selected == live.paper_run_id
    live.stop()
