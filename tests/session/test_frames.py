"""FrameBus: fan-out, bounded buffers, lag reporting, asyncio subscribers."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaswarm.frames import LAGGED, FrameBus, iso_timestamp, json_safe, make_frame


def frame(seq):
    return make_frame("run-1", "bar.received", f"bar {seq}", seq)


def test_callbacks_and_subscriptions_get_every_frame():
    bus = FrameBus("run-1")
    seen = []
    bus.subscribe(seen.append)
    sub = bus.subscribe()
    for i in range(1, 6):
        bus.publish(frame(i))
    assert [f["seq"] for f in seen] == [1, 2, 3, 4, 5]
    assert [f["seq"] for f in sub.drain()] == [1, 2, 3, 4, 5]
    assert sub.drain() == []


def test_slow_subscriber_loses_oldest_and_is_told():
    bus = FrameBus("run-1")
    sub = bus.subscribe(maxsize=3)
    for i in range(1, 11):
        bus.publish(frame(i))
    out = sub.drain()
    assert out[0]["stage"] == LAGGED and out[0]["dropped"] == 7
    assert [f["seq"] for f in out[1:]] == [8, 9, 10]
    assert sub.dropped == 7


def test_failing_callback_never_breaks_publisher(caplog):
    bus = FrameBus("run-1")

    def bad(_):
        raise ValueError("boom")

    ok = []
    bus.subscribe(bad)
    bus.subscribe(ok.append)
    bus.publish(frame(1))
    assert len(ok) == 1 and "boom" in caplog.text


def test_async_subscriber_wakes_on_publish_from_another_thread():
    bus = FrameBus("run-1")

    async def consume():
        sub = bus.subscribe()
        threading.Timer(0.05, lambda: bus.publish(frame(1))).start()
        got = await sub.get(timeout=2)
        return got

    got = asyncio.run(consume())
    assert [f["seq"] for f in got] == [1]


def test_close_wakes_waiters_with_empty_list():
    bus = FrameBus("run-1")

    async def consume():
        sub = bus.subscribe()
        threading.Timer(0.05, bus.close).start()
        return await sub.get(timeout=2)

    assert asyncio.run(consume()) == []


def test_non_finite_extras_become_null():
    f = make_frame("r", "equity.update", "x", 1, equity=float("nan"), nested={"a": float("inf")})
    assert f["equity"] is None and f["nested"]["a"] is None


def _iso_reference(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-2e9, max_value=4e9, allow_nan=False),
        st.integers(min_value=-2 * 10**9, max_value=4 * 10**9).map(lambda s: s + 0.9999996),
        st.integers(min_value=0, max_value=4 * 10**12).map(lambda ms: ms / 1000),
    )
)
def test_iso_timestamp_matches_datetime_formatting(epoch):
    """Its per-second cache and rounding agree with datetime's, at every instant."""
    assert iso_timestamp(epoch) == _iso_reference(epoch)
    assert iso_timestamp(epoch + 1.0) == _iso_reference(epoch + 1.0)  # the cache moves on


def test_json_safe_cleans_nested_leaves_and_keeps_plain_ones():
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {
        "a": 1,
        "b": math.nan,
        "c": {"d": [math.inf, 2.0, stamp], "e": (1, -math.inf), "f": True, "g": None},
        "h": "text",
        "i": np.float64("nan"),
    }
    assert json_safe(value) == {
        "a": 1,
        "b": None,
        "c": {"d": [None, 2.0, stamp.isoformat()], "e": [1, None], "f": True, "g": None},
        "h": "text",
        "i": None,
    }
    assert json_safe(math.nan) is None and json_safe(7) == 7


def test_publish_many_delivers_what_publish_of_each_does():
    """Same frames to callbacks, buffered subscribers (with lag reports) and history."""
    batches = [[frame(i) for i in range(1, 4)], [frame(i) for i in range(4, 30)], []]

    def deliver(many: bool) -> tuple[list, list, list, list, int]:
        bus = FrameBus("run-1", history=10)
        seen: list[dict] = []
        bus.subscribe(seen.append)
        small, big = bus.subscribe(maxsize=5), bus.subscribe(maxsize=100)
        drained = []
        for batch in batches:
            if many:
                bus.publish_many(batch)
            else:
                for f in batch:
                    bus.publish(f)
            drained.append(big.drain())
        return seen, small.drain(), drained, bus.recent(), bus.published

    one, many = deliver(False), deliver(True)
    assert many == one
    seen, small, drained, recent, published = many
    assert [f["seq"] for f in seen] == list(range(1, 30)) and published == 29
    assert small[0]["stage"] == LAGGED and small[0]["dropped"] == 24
    assert [f["seq"] for f in small[1:]] == list(range(25, 30))
    assert [f["seq"] for f in recent] == list(range(20, 30))


def test_records_become_envelopes_only_when_someone_listens():
    """Records are held as they are while nobody listens; a listener gets envelopes."""
    from alphaswarm.frame_records import as_frames

    ts = datetime(2024, 1, 2, 14, 30, tzinfo=UTC).timestamp()
    records = [("equity.update", seq, 1.7e9 + seq, 1000.0 + seq, 50.0, (), ts) for seq in (1, 2)]
    bus = FrameBus("run-1", history=10)
    bus.publish_many(records)
    assert all(type(held) is tuple for held in bus._recent)  # nothing built yet
    assert bus.recent() == as_frames("run-1", records)
    assert bus.recent()[0]["message"] == "equity 1,001.00" and bus.recent()[1]["seq"] == 2
    seen: list[dict] = []
    bus.subscribe(seen.append)
    more = [("equity.update", 3, 1.7e9 + 3, 1003.0, 50.0, (), ts), frame(4)]
    bus.publish_many(more)
    assert seen == as_frames("run-1", more) and all(type(f) is dict for f in seen)
    assert [f["seq"] for f in bus.recent()] == [1, 2, 3, 4]
    assert bus.published == 4
