"""HeapFreezer: long-lived objects leave the collector's sight; frozen garbage comes back.

The freezer is only used by a tuned process (:mod:`alphaswarm.paper.tuning`); these tests
drive it directly. Waits synchronise on the freezer's loop: a timer scheduled after
the freezer's own fires after them.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

import pytest

from alphaswarm.paper.gcfreeze import HeapFreezer


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


def drain(loop: asyncio.AbstractEventLoop, delay: float) -> None:
    """Return once the loop has run every timer due within ``delay`` from now."""
    done = threading.Event()
    loop.call_soon_threadsafe(loop.call_later, delay, done.set)
    assert done.wait(30), "the loop did not get there"


def wait_for(predicate, timeout: float = 30.0) -> bool:
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


class Sessions:
    """What ``is_idle`` sees: whether any session runs."""

    def __init__(self, running: bool) -> None:
        self.running = running

    def idle(self) -> bool:
        return not self.running


def test_starts_close_together_share_one_freeze(loop):
    freezer = HeapFreezer(loop, Sessions(True).idle, settle_s=0.2)
    for _ in range(5):
        freezer.session_started()
    assert freezer.stats.freezes == 0
    assert wait_for(lambda: freezer.stats.freezes == 1)
    drain(loop, 0.4)
    assert freezer.stats.freezes == 1
    assert freezer.stats.starts_since_refreeze == 5
    freezer.session_started()
    assert wait_for(lambda: freezer.stats.freezes == 2)


def test_every_refreeze_after_starts_the_start_refreezes(loop):
    freezer = HeapFreezer(loop, Sessions(True).idle, settle_s=0.05, refreeze_after=3)
    node, ref = cycle()
    for _ in range(2):
        freezer.session_started()
    assert wait_for(lambda: freezer.stats.freezes == 1)
    del node  # frozen garbage from here on
    freezer.session_started()
    assert freezer.stats.refreezes == 1, "in the starting thread, before it returns"
    assert ref() is None
    assert freezer.stats.starts_since_refreeze == 0
    drain(loop, 0.2)
    assert freezer.stats.freezes == 1


def test_the_last_session_ending_unfreezes_and_reclaims(loop):
    sessions = Sessions(True)
    freezer = HeapFreezer(loop, sessions.idle, settle_s=0.05, idle_s=0.1)
    node, ref = cycle()
    freezer.session_started()
    assert wait_for(lambda: freezer.frozen)
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert ref() is not None, "frozen while sessions run"
    sessions.running = False
    freezer.session_ended()
    assert wait_for(lambda: freezer.stats.releases == 1)
    assert not freezer.frozen and gc.get_freeze_count() == 0
    assert ref() is None, "nothing stays frozen once the sessions have ended"
    assert freezer.stats.refreezes == 0


def test_a_session_ending_while_others_run_keeps_the_freeze(loop):
    freezer = HeapFreezer(loop, Sessions(True).idle, settle_s=0.05, idle_s=0.1)
    freezer.session_started()
    assert wait_for(lambda: freezer.frozen)
    freezer.session_ended()
    drain(loop, 0.3)
    assert freezer.frozen and freezer.stats.releases == 0


def test_no_freeze_once_the_sessions_have_ended(loop):
    freezer = HeapFreezer(loop, Sessions(False).idle, settle_s=0.05)
    freezer.session_started()
    drain(loop, 0.2)
    assert freezer.stats.freezes == 0 and not freezer.frozen
    assert gc.get_freeze_count() == 0


def test_nothing_to_release_when_nothing_froze(loop):
    freezer = HeapFreezer(loop, Sessions(False).idle, idle_s=0.05)
    freezer.session_ended()
    drain(loop, 0.2)
    assert freezer.stats.releases == 0


@pytest.mark.parametrize(("refreeze_after", "kind"), [(1000, "freezes"), (1, "refreezes")])
def test_a_paused_collector_postpones_what_is_due(loop, refreeze_after, kind):
    freezer = HeapFreezer(loop, Sessions(True).idle, settle_s=0.05, refreeze_after=refreeze_after)
    gc.disable()
    try:
        freezer.session_started()
        drain(loop, 0.3)
        assert getattr(freezer.stats, kind) == 0
    finally:
        gc.enable()
    assert wait_for(lambda: getattr(freezer.stats, kind) == 1)
    other = "refreezes" if kind == "freezes" else "freezes"
    assert getattr(freezer.stats, other) == 0


def test_close_releases_and_stops_freezing(loop):
    freezer = HeapFreezer(loop, Sessions(True).idle, settle_s=0.05)
    freezer.session_started()
    assert wait_for(lambda: freezer.frozen)
    freezer.close()
    assert not freezer.frozen and gc.get_freeze_count() == 0
    freezer.session_started()
    drain(loop, 0.2)
    assert freezer.stats.freezes == 1 and gc.get_freeze_count() == 0


def test_a_closed_loop_is_ignored():
    loop = asyncio.new_event_loop()
    loop.close()
    freezer = HeapFreezer(loop, lambda: False)
    freezer.session_started()
    freezer.session_ended()
    assert freezer.stats.freezes == 0
    assert freezer.stats.starts_since_refreeze == 1


def test_refreeze_after_must_be_positive(loop):
    with pytest.raises(ValueError, match="refreeze_after"):
        HeapFreezer(loop, lambda: True, refreeze_after=0)


def test_settle_freezes_what_was_just_made_while_sessions_run(loop):
    """A dashboard built while sessions run: its objects are frozen soon, as after a start."""
    sessions = Sessions(True)
    freezer = HeapFreezer(loop, sessions.idle, settle_s=0.05)
    made = Node()
    freezer.settle()
    assert wait_for(lambda: freezer.stats.freezes == 1)
    assert not in_collector_sight(made)
    assert freezer.stats.starts_since_refreeze == 0  # no session start counted
    sessions.running = False
    freezer.settle()
    drain(loop, 0.2)
    assert freezer.stats.freezes == 1  # no session runs: nothing is frozen
