"""Every frame a session published is read back from the ledger exactly as published.

Bar and equity frames are stored in blocks (``paper_frame_blocks``), the others as
``paper_frames`` rows; the ledger's reads merge them. Checked field by field (and
key order) for a run with fills and a risk halt, and for runs killed mid-way, paced
(group commit) and at speed 0 (batches of many bars).
"""

from __future__ import annotations

import time

import pytest

import alphaswarm as aw
from alphaswarm.ledger.frame_blocks import BLOCK_STAGES


def start(bot: aw.Bot, **kwargs) -> tuple[aw.PaperSession, list[dict]]:
    published: list[dict] = []
    session = aw.PaperSession(bot, **kwargs)
    session.frames.subscribe(published.append)
    session.start()
    return session, published


def assert_replays_exactly(ledger, run_id: str, published: list[dict]) -> None:
    assert published and published[-1]["stage"] == "done"
    stored = ledger.frames_after(run_id, 0)
    assert len(stored) == len(published)
    for got, want in zip(stored, published, strict=True):
        assert got == want, (got.get("seq"), got.get("stage"))
        assert list(got) == list(want), want["stage"]
    df = ledger.frames(run_id)
    assert df["seq"].tolist() == [f["seq"] for f in published]
    assert df["stage"].tolist() == [f["stage"] for f in published]
    assert list(df["frame"]) == published
    mid = published[len(published) // 2]["seq"]
    assert ledger.frames_after(run_id, mid) == [f for f in published if f["seq"] > mid]
    # the high-volume frames went to blocks, none to paper_frames rows
    n_rows = ledger.sql(
        "SELECT COUNT(*) AS n FROM paper_frames WHERE paper_run_id = :r "
        "AND stage IN ('bar.received', 'equity.update')",
        r=run_id,
    )["n"][0]
    in_blocks = ledger.sql(
        "SELECT COALESCE(SUM(frames), 0) AS n FROM paper_frame_blocks WHERE paper_run_id = :r",
        r=run_id,
    )["n"][0]
    assert n_rows == 0
    assert in_blocks == sum(f["stage"] in BLOCK_STAGES for f in published) > 0


def test_halted_run_with_fills_replays_exactly(ledger, make_bot):
    bot = make_bot(risk={"max_daily_loss": 1.0, "kill_switch_attached": True})
    session, published = start(
        bot, speed=0, duration_minutes=None, max_bars=5000, force=True, reason="test"
    )
    assert session.wait(60)
    assert session.status == "halted"
    stages = {f["stage"] for f in published}
    assert {"order.filled", "risk.halted", "bar.received", "equity.update"} <= stages
    assert_replays_exactly(ledger, session.paper_run_id, published)


@pytest.mark.parametrize("speed", [0, 3000], ids=["speed-0", "paced"])
def test_killed_run_replays_exactly(ledger, bot, speed):
    # an open-ended feed: only the kill ends the run
    session, published = start(bot, speed=speed, duration_minutes=None)
    deadline = time.monotonic() + 60
    while session.bars_seen < 150 and not session.finished:
        assert time.monotonic() < deadline, session.status
        time.sleep(0.01)
    assert session.kill("test kill")
    assert session.wait(30)
    assert session.status == "killed"
    assert session.final_row_written
    assert_replays_exactly(ledger, session.paper_run_id, published)
    run = ledger.get_run(session.paper_run_id)
    bars = ledger.frames_after(session.paper_run_id, 0, stages=("bar.received",))
    assert run["bars_seen"] == len(bars) == len(ledger.equity(session.paper_run_id))


def test_positions_of_frames_are_made_json_safe_as_before():
    """The snapshot a frame carries: as is when every number is finite, else json_safe's."""
    import copy
    import math

    from alphaswarm.frame_records import json_ready_positions as _json_ready
    from alphaswarm.frames import json_safe

    finite = {"A": {"qty": 3.0, "avg_price": 10.5, "unrealized_pnl": -0.25}, "B": {"qty": 2}}
    assert _json_ready(copy.deepcopy(finite)) == json_safe(finite) == finite
    for bad in (math.nan, math.inf, -math.inf, "text"):
        odd = {"A": {"qty": 3.0, "avg_price": bad}, "B": {"qty": 1.0, "last_price": 2.0}}
        got = _json_ready(copy.deepcopy(odd))
        assert got == json_safe(odd)
        assert got["A"]["avg_price"] == (None if isinstance(bad, float) else bad)
    assert _json_ready({}) == {}
