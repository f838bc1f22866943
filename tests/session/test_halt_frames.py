"""A real session's frames agree with each other: causal halt order, one story of the end."""

from __future__ import annotations

import pytest

import alphaswarm as aw
from tests.session.conftest import DEMO_RISK


def halted_frames(make_bot, ledger, on_breach: str) -> tuple[aw.PaperSession, list[dict]]:
    """Run the demo bot until a 1.0 daily-loss limit halts it; return its stored frames."""
    bot = make_bot(risk={**DEMO_RISK, "max_daily_loss": 1.0, "on_breach": on_breach})
    aw.backtest(bot, ledger=ledger)
    session = aw.PaperSession(
        bot, speed=0, duration_minutes=None, max_bars=5000, force=True, reason="halt frames"
    ).start()
    assert session.wait(60), "the session did not finish"
    assert session.status == "halted"
    return session, ledger.frames_after(session.paper_run_id, -1)


def test_risk_halted_comes_before_the_flattening_fill_and_stopped_agrees(ledger, make_bot):
    session, frames = halted_frames(make_bot, ledger, "flatten")
    stages = [f["stage"] for f in frames]
    assert [f["seq"] for f in frames] == sorted(f["seq"] for f in frames)
    halt_at = stages.index("risk.halted")
    halt = frames[halt_at]
    flatten_fills = [
        i
        for i, f in enumerate(frames)
        if f["stage"] == "order.filled" and (f.get("order") or {}).get("tag") == "flatten"
    ]
    assert flatten_fills, "the halt flattened a position"
    assert all(i > halt_at for i in flatten_fills), (halt_at, flatten_fills)
    assert halt["mode"] == "flatten" and halt["action"]["mode"] == "flatten"
    flattened = halt["action"]["positions_flattened"]
    assert flattened == [frames[i]["fill"]["symbol"] for i in flatten_fills] == ["DEMO"]
    # the position still open in risk.halted's own snapshot, closed in the fill's
    assert halt["positions"]["DEMO"]["qty"] != 0
    assert frames[flatten_fills[-1]]["positions"].get("DEMO", {}).get("qty", 0) == 0
    [stopped] = [f for f in frames if f["stage"] == "session.stopped"]
    assert stopped["status"] == "halted"
    assert stopped["mode"] == halt["mode"]
    assert stopped["positions_flattened"] == flattened
    assert set(halt["action"]["orders_cancelled"]) <= set(stopped["orders_cancelled"])
    assert session.positions == {}


def test_a_hold_halt_says_cancel_in_both_frames(ledger, make_bot):
    session, frames = halted_frames(make_bot, ledger, "hold")
    [halt] = [f for f in frames if f["stage"] == "risk.halted"]
    [stopped] = [f for f in frames if f["stage"] == "session.stopped"]
    assert halt["mode"] == stopped["mode"] == "cancel"
    assert halt["action"]["positions_flattened"] == stopped["positions_flattened"] == []
    assert not [f for f in frames if (f.get("order") or {}).get("tag") == "flatten"]


@pytest.mark.parametrize("refused", [False, True])
def test_metadata_gate_frames_carry_equity_and_positions(ledger, make_bot, refused):
    bot = make_bot()
    if not refused:
        aw.backtest(bot, ledger=ledger)
    session = aw.PaperSession(bot, speed=0, max_bars=3, starting_cash=50_000)
    seen: list[dict] = []
    session.frames.subscribe(seen.append)
    if refused:
        with pytest.raises(aw.GateRefused):
            session.start()
    else:
        assert session.start().wait(60)
    gate = seen[0]
    assert gate["stage"] == "metadata_gate"
    assert gate["equity"] == 50_000 and gate["positions"] == {}
    assert all("equity" in f and "positions" in f for f in seen)
