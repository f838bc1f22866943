"""FrameBus: fan-out, bounded buffers, lag reporting, asyncio subscribers."""

from __future__ import annotations

import asyncio
import threading

from alphaswarm.frames import LAGGED, FrameBus, make_frame


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
