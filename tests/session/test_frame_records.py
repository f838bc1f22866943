"""A session's per-bar frame records expand to the envelopes it used to build.

The reference is the listener path: the engine hands ``bar.received`` and
``equity.update`` to a listener that builds each envelope at once, as a paper
session did before it recorded them (equity and open positions read when the event
happens). The same strategy over the same bars, once with that listener and once
with the session's recorder, must give the same frames key for key, in order,
and the records must survive the ledger's block encoding unchanged. Bars in UTC,
in another zone and naive; two symbols; positions open and closed; a non-finite
number.
"""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from alphaswarm.engine.broker import SimulatedBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.frame_records import RECORD_STAGES, as_frames, json_ready_positions
from alphaswarm.frames import frame_envelope, iso_bar_time
from alphaswarm.ledger.frame_blocks import RECORDS_ENCODING, decode_block, encode_records
from alphaswarm.model import Bar
from alphaswarm.paper import frame_recorder
from alphaswarm.paper.frame_recorder import SessionRecorder
from alphaswarm.paper.session import PaperSession
from alphaswarm.strategies.base import Strategy

TASK = "run-1"


class _Trader(Strategy):
    """Buys, adds and goes flat on a schedule, so positions open, change and close."""

    name = "records-trader"
    defaults: ClassVar[dict[str, Any]] = {"qty": 7}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.n = 0

    def on_bar(self, bar: Bar, ctx: Any) -> str | None:
        self.n += 1
        return {3: "buy", 8: "buy", 13: "flat", 17: "sell"}.get(self.n % 20)

    def size(self, bar: Bar, ctx: Any) -> float:
        return float(self.params["qty"])


def bars(tz: Any, symbols: tuple[str, ...] = ("AAA", "BBB"), n: int = 60) -> list[list[Bar]]:
    start = datetime(2024, 3, 8, 14, 30, 15, 250_000)
    groups = []
    for i in range(n):
        ts = start + timedelta(minutes=i)
        ts = ts.replace(tzinfo=tz) if tz is not None else ts
        group = []
        for k, symbol in enumerate(symbols):
            price = 100.0 + 5 * k + math.sin(i / 3) * 4 + i * 0.01
            group.append(Bar(symbol, ts, price, price + 1.0, price - 1.0, price + 0.25, 1000 + i))
        groups.append(group)
    return groups


def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A wall clock that moves 1.25 ms per read, the same for both runs."""
    counter = itertools.count()

    def now() -> float:
        return 1_709_900_000.0 + next(counter) * 0.00125

    monkeypatch.setattr(frame_recorder.time, "time", now)
    return now


def listener_frames(groups: list[list[Bar]], now: Any) -> list[dict[str, Any]]:
    """The envelopes as the session's listener built them, event by event."""
    frames: list[dict[str, Any]] = []
    engine: Engine

    def listen(stage: str, message: str, extras: dict[str, Any]) -> None:
        if "equity" not in extras:
            extras["equity"] = engine.broker.equity
        # the session's own snapshot, as its listener takes it
        positions = PaperSession._positions_snapshot(SimpleNamespace(_engine=engine))
        bar_time = iso_bar_time(engine.last_ts)
        seq = len(frames) + 1
        frame = frame_envelope(TASK, stage, message, seq, extras, now=now(), bar_time=bar_time)
        frame["positions"] = json_ready_positions(positions)
        frames.append(frame)

    engine = Engine(_Trader(), SimulatedBroker(50_000.0), listener=listen, record_equity=False)
    for group in groups:
        engine.step(group)
    return frames


def recorded_frames(groups: list[list[Bar]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The same run with the session's recorder: the pending items, and their envelopes."""
    session = SimpleNamespace(_seq=0, _pending=[])

    def listen(stage: str, message: str, extras: dict[str, Any]) -> None:
        # the session's other frames take a seq (and a clock reading) in turn
        time.time()
        session._seq += 1
        session._pending.append(("other", stage, session._seq))

    recorder = SessionRecorder(session)  # type: ignore[arg-type]
    engine = recorder.engine = Engine(
        _Trader(), SimulatedBroker(50_000.0), listener=listen, recorder=recorder,
        record_equity=False,
    )  # fmt: skip
    for group in groups:
        engine.step(group)
    return session._pending, as_frames(TASK, [p for p in session._pending if p[0] != "other"])


@pytest.mark.parametrize(
    "tz", [UTC, ZoneInfo("America/New_York"), None], ids=["utc", "new-york", "naive"]
)
def test_records_expand_to_the_listeners_envelopes(monkeypatch, tz):
    groups = bars(tz)
    now = fake_clock(monkeypatch)
    want = listener_frames(groups, now)
    fake_clock(monkeypatch)  # the same clock again, from the start
    pending, got = recorded_frames(groups)
    assert [p[2] if p[0] == "other" else p[1] for p in pending] == [f["seq"] for f in want]
    want_recorded = [f for f in want if f["stage"] in RECORD_STAGES]
    assert len(got) == len(want_recorded) == 2 * len(groups) + len(groups)
    for g, w in zip(got, want_recorded, strict=True):
        assert g == w, (w["seq"], w["stage"])
        assert list(g) == list(w)
    assert any(f["positions"] for f in got) and any(not f["positions"] for f in got)
    records = [p for p in pending if p[0] in RECORD_STAGES]
    stored = decode_block(encode_records(TASK, records), RECORDS_ENCODING, TASK)
    assert stored == got
    assert [list(f) for f in stored] == [list(f) for f in got]


def test_a_record_with_a_non_finite_number_is_stored_as_its_envelope():
    ts = datetime(2024, 1, 2, 14, 30, tzinfo=UTC).timestamp()
    nan_equity = ("equity.update", 4, 1.7e9, math.nan, 100.0, ts)
    inf_position = ("equity.update", 5, 1.7e9, 10.0, 100.0, ts, "A", 1.0, 2.0, math.inf, 0.0, 0.0)
    fine = ("equity.update", 6, 1.7e9, 10.0, 100.0, ts, "A", 1.0, 2.0, 3.0, 1.0, 0.0)
    records = [nan_equity, inf_position, fine]
    want = as_frames(TASK, records)
    assert want[0]["message"] == "equity nan" and want[0]["equity"] is None
    assert want[1]["positions"]["A"]["last_price"] is None
    stored = decode_block(encode_records(TASK, records), RECORDS_ENCODING, TASK)
    assert stored == want


def test_records_leave_the_collector_at_their_first_collection():
    """A record waiting for its batch is untracked by the first collection it meets.

    A tuple nested in a record kept it tracked one collection longer: the records
    of a fast replay were promoted to the oldest generation and set off full
    collections.
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()  # no collection before the one under test
    try:
        pending, _ = recorded_frames(bars(UTC))
        records = [p for p in pending if p[0] in RECORD_STAGES]
        held = [r for r in records if len(r) > 12]  # with an open position
        assert held, "the trader holds a position on some bars"
        assert all(gc.is_tracked(r) for r in records)
        gc.collect()
    finally:
        if enabled:
            gc.enable()
    assert not any(gc.is_tracked(r) for r in records)


def test_records_of_the_earlier_layout_still_expand():
    """Blocks written before positions moved to the tail hold them as a nested list."""
    ts = datetime(2024, 1, 2, 14, 30, tzinfo=UTC).timestamp()
    tail = ("A", 2.0, 100.0, 101.0, 2.0, 0.5)
    now_bar = ("bar.received", 1, 1.7e9, "A", ts, 1.0, 2.0, 0.5, 1.5, 10.0, 99.0, ts, *tail)
    old_bar = [*now_bar[:11], [list(tail)], ts]
    now_eq = ("equity.update", 2, 1.7e9, 99.0, 50.0, ts, *tail)
    old_eq = [*now_eq[:5], [list(tail)], ts]
    flat = ("equity.update", 3, 1.7e9, 99.0, 50.0, ts)
    old_flat = [*flat[:5], [], ts]
    assert as_frames(TASK, [old_bar, old_eq, old_flat]) == as_frames(TASK, [now_bar, now_eq, flat])
    assert as_frames(TASK, [now_eq])[0]["positions"] == {
        "A": {"qty": 2.0, "avg_price": 100.0, "last_price": 101.0, "unrealized_pnl": 2.0,
              "realized_pnl": 0.5}
    }  # fmt: skip
