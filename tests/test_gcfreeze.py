"""HeapFreezer: long-lived objects leave the collector's sight; frozen garbage comes back."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

import pytest

from alphaswarm import runtime
from alphaswarm.gcfreeze import HeapFreezer


class Node:
    """An object in a reference cycle (only the cyclic collector frees it)."""

    def __init__(self) -> None:
        self.me = self


def cycle() -> tuple[Node, weakref.ref]:
    node = Node()
    return node, weakref.ref(node)


def in_collector_sight(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


@pytest.fixture(autouse=True)
def _unfreeze_after():
    yield
    gc.unfreeze()


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_freeze_young_hides_live_objects_and_reclaims_young_garbage(loop):
    freezer = HeapFreezer(loop, lambda: True)
    alive, _ = cycle()
    dead, dead_ref = cycle()
    del dead
    assert in_collector_sight(alive)
    assert dead_ref() is not None  # only the cyclic collector frees it
    freezer.freeze_young()
    assert not in_collector_sight(alive)
    assert gc.is_tracked(alive)
    assert dead_ref() is None, "young garbage is collected, not frozen"
    assert freezer.stats.freezes == 1


def test_frozen_garbage_waits_for_a_refreeze(loop):
    freezer = HeapFreezer(loop, lambda: True)
    node, ref = cycle()
    freezer.freeze_young()
    del node
    gc.collect()
    assert ref() is not None, "a frozen cycle outlives a full collection"
    kept, kept_ref = cycle()
    freezer.refreeze()
    assert ref() is None
    assert kept_ref() is kept and not in_collector_sight(kept)
    assert freezer.stats.refreezes == 1
    assert freezer.stats.starts_since_refreeze == 0


def test_starts_close_together_share_one_freeze(loop):
    freezer = HeapFreezer(loop, lambda: False, settle_s=0.2)
    for _ in range(5):
        freezer.session_started()
    assert freezer.stats.freezes == 0
    assert wait_for(lambda: freezer.stats.freezes == 1)
    time.sleep(0.3)
    assert freezer.stats.freezes == 1
    assert freezer.stats.starts_since_refreeze == 5
    freezer.session_started()
    assert wait_for(lambda: freezer.stats.freezes == 2)


def test_every_refreeze_after_starts_the_start_refreezes(loop):
    freezer = HeapFreezer(loop, lambda: False, settle_s=0.05, refreeze_after=3)
    node, ref = cycle()
    for _ in range(2):
        freezer.session_started()
    assert wait_for(lambda: freezer.stats.freezes == 1)
    del node  # frozen garbage from here on
    freezer.session_started()
    assert freezer.stats.refreezes == 1, "in the starting thread, before it returns"
    assert ref() is None
    assert freezer.stats.starts_since_refreeze == 0
    time.sleep(0.2)
    assert freezer.stats.freezes == 1


@pytest.mark.parametrize("idle", [True, False])
def test_refreeze_when_the_last_session_has_ended(loop, idle):
    freezer = HeapFreezer(loop, lambda: idle, settle_s=0.05, idle_s=0.1)
    freezer.session_started()
    assert wait_for(lambda: freezer.stats.freezes == 1)
    freezer.session_ended()
    if idle:
        assert wait_for(lambda: freezer.stats.refreezes == 1)
    else:
        time.sleep(0.3)
        assert freezer.stats.refreezes == 0


def test_nothing_to_reclaim_when_nothing_started(loop):
    freezer = HeapFreezer(loop, lambda: True, idle_s=0.05)
    freezer.session_ended()
    time.sleep(0.25)
    assert freezer.stats.refreezes == 0


@pytest.mark.parametrize(("refreeze_after", "kind"), [(1000, "freezes"), (1, "refreezes")])
def test_a_paused_collector_postpones_what_is_due(loop, refreeze_after, kind):
    freezer = HeapFreezer(loop, lambda: False, settle_s=0.05, refreeze_after=refreeze_after)
    gc.disable()
    try:
        freezer.session_started()
        time.sleep(0.3)
        assert getattr(freezer.stats, kind) == 0
    finally:
        gc.enable()
    assert wait_for(lambda: getattr(freezer.stats, kind) == 1)
    other = "refreezes" if kind == "freezes" else "freezes"
    assert getattr(freezer.stats, other) == 0


def test_a_closed_loop_is_ignored():
    loop = asyncio.new_event_loop()
    loop.close()
    freezer = HeapFreezer(loop, lambda: True)
    freezer.session_started()
    freezer.session_ended()
    assert freezer.stats.freezes == 0
    assert freezer.stats.starts_since_refreeze == 1


def test_refreeze_after_must_be_positive(loop):
    with pytest.raises(ValueError, match="refreeze_after"):
        HeapFreezer(loop, lambda: True, refreeze_after=0)


def test_the_engine_loop_freezes_after_sessions_start_and_end(tmp_path):
    import alphaswarm as aw
    from alphaswarm.data import SyntheticFeed

    runtime.engine_loop()
    freezer = runtime.heap_freezer()
    assert freezer is not None
    before = freezer.stats
    ledger = aw.Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    bot = aw.Bot(name="freezer", strategy="sma_cross", universe=["DEMO"])
    feed = SyntheticFeed(["DEMO"], seed=3, bars=50)
    sessions = [
        aw.PaperSession(bot, feed=feed, ledger=ledger, speed=0, force=True, reason="test")
        for _ in range(3)
    ]
    try:
        for s in sessions:
            s.start(loop=runtime.engine_loop())
        for s in sessions:
            assert s.wait(30)
        assert wait_for(lambda: freezer.stats.freezes > before.freezes)
        assert wait_for(lambda: freezer.stats.refreezes > before.refreezes)
    finally:
        ledger.close()
