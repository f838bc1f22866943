"""The multi-bot view without a browser: its stop buttons and runs table as sessions come and go."""

from __future__ import annotations

import alphaswarm as aw
from alphaswarm.ui import FramePump
from alphaswarm.ui.multibot import MultiBotView
from tests.ui.conftest import GOOD_BOT, wait_until


def _bot(name: str) -> aw.Bot:
    return aw.Bot({**GOOD_BOT, "name": name})


def test_a_run_keeps_its_stop_button_and_row_while_others_start_and_stop(run_session):
    first, second = (
        run_session(_bot(n), speed=600, max_bars=None, force=True, reason="test")
        for n in ("mb-a", "mb-b")
    )
    view = MultiBotView(pump=FramePump())
    view.refresh()
    buttons = {b.label.rsplit(" ", 1)[-1]: b for b in view.stops.objects}
    assert set(buttons) == {first.paper_run_id, second.paper_run_id}

    third = run_session(_bot("mb-c"), speed=600, max_bars=None, force=True, reason="test")
    view.refresh()
    now = {b.label.rsplit(" ", 1)[-1]: b for b in view.stops.objects}
    assert set(now) == {first.paper_run_id, second.paper_run_id, third.paper_run_id}
    # the buttons already shown are the same widgets: only the new run's is made
    assert all(now[k] is buttons[k] for k in buttons)

    # moving numbers patch the rows in place; the table's value is not replaced
    replaced: list[object] = []
    view.table.param.watch(replaced.append, "value")
    bars = third.bars_seen
    wait_until(lambda: third.bars_seen > bars + 2, timeout=60)
    view.refresh()
    assert replaced == []
    row = list(view.table.value["id"]).index(third.paper_run_id)
    assert view.table.value.loc[row, "num_fills"] == third.num_fills

    assert view.stop(first.paper_run_id)
    left = {b.label.rsplit(" ", 1)[-1]: b for b in view.stops.objects}
    assert set(left) == {second.paper_run_id, third.paper_run_id}
    assert left[second.paper_run_id] is buttons[second.paper_run_id]
    for s in (second, third):
        s.stop()
    view.refresh()
    assert [o.object for o in view.stops.objects] == ["*no session running*"]


def test_the_overviews_every_bot_tab_is_polled_only_while_shown(run_session):
    from alphaswarm.ui.app import Dashboard

    board = Dashboard()
    board._build_tabs()
    assert board.multibot is not None and not board.multibot.on_screen
    session = run_session(_bot("mb-tab"), speed=600, max_bars=None, force=True, reason="test")
    board.multibot.refresh()
    assert session.paper_run_id not in set(board.multibot.table.value["id"])  # hidden: idle
    board.tabs.active = 1  # the user opens "All bots": it catches up at once
    assert session.paper_run_id in set(board.multibot.table.value["id"])
    board.tabs.active = 0
    assert not board.multibot.on_screen
    session.stop()
    board.pump.close()  # built outside a served page: its pump ticks on this thread's loop
