"""Toasts of the open run: a risk halt, an error or a kill raises one; history does not."""

from __future__ import annotations

import alphaswarm as aw
from alphaswarm.paper.runtime import engine_loop
from alphaswarm.ui.base import FramePump
from alphaswarm.ui.run_toasts import RunToasts, toast_for
from tests.ui.conftest import GOOD_BOT, wait_until


def test_which_frames_raise_a_toast():
    assert toast_for({"stage": "risk.halted", "task_id": "p1", "message": "dd"}) == (
        "error",
        "Risk halt in p1: dd",
    )
    assert toast_for({"stage": "error", "task_id": "p1", "message": "boom"})[0] == "error"
    killed = {"stage": "session.stopped", "task_id": "p1", "status": "killed", "reason": "drill"}
    assert toast_for(killed) == ("warning", "p1 killed: drill")
    assert toast_for({**killed, "status": "stopped"}) is None
    assert toast_for({"stage": "order.filled", "task_id": "p1"}) is None


def test_a_risk_halt_of_the_open_run_raises_a_toast(good_bot, tmp_ledger):
    tight = aw.Bot(
        {**GOOD_BOT, "name": "ui-tight", "risk": {**GOOD_BOT["risk"], "max_drawdown_pct": 0.00001}}
    )
    aw.backtest(tight, bars=2000)
    session = aw.PaperSession(
        tight, speed=0, duration_minutes=None, max_bars=2000, force=True, reason="test a halt"
    )
    pump = FramePump(period=500)
    toasts = RunToasts(session, pump=pump, ledger=tmp_ledger)
    session.start(loop=engine_loop())
    session.wait(60)
    assert session.status == "halted"

    def halted() -> bool:
        pump.tick()
        return any(t.startswith("Risk halt in") for t in toasts.shown)

    wait_until(halted, timeout=20)
    assert len([t for t in toasts.shown if t.startswith("Risk halt")]) == 1


def test_frames_from_before_the_run_was_opened_raise_none(good_bot, tmp_ledger, run_session):
    session = run_session(good_bot, max_bars=None, speed=1)
    wait_until(lambda: session.status == "running", timeout=20)
    session.kill("drill")
    session.wait(20)
    pump = FramePump(period=500)
    toasts = RunToasts(session, pump=pump, ledger=tmp_ledger)  # opened after the kill
    for _ in range(3):
        pump.tick()
    assert toasts.shown == []
