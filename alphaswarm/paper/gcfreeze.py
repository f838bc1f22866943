"""Keep full garbage collections short in a process that runs many paper sessions.

A paper session lives for minutes to days, and so do the few hundred objects it is
made of. Python's cyclic collector promotes them to its oldest generation, and every
full collection walks all of them while it holds the GIL: with 200 sessions in a
server that was 25-110 ms each, every few seconds, during which no session
processed a bar and a kill-switch request waited.

:class:`HeapFreezer` takes what has lived through a round of session starts out of
the collector's sight (:func:`gc.freeze`): a young collection first, so short-lived
cycles are reclaimed rather than kept, then a freeze. A full collection then walks
only what was made since the last freeze.

The price of a freeze: a reference cycle that was alive then and becomes garbage
later is not reclaimed until the next unfreeze (reference counting still frees
everything else at once). While sessions run, :meth:`HeapFreezer.refreeze` (a full
collection of everything, then a freeze of the survivors) runs with every
``refreeze_after``-th session start, in the starting thread: at 1,000 starts the
pause is 0.2-0.6 s, charged to a start rather than to whatever runs later. When no
session runs any more, :meth:`HeapFreezer.release` unfreezes everything and
collects: nothing stays frozen once the sessions have ended, an object of the host
process included.

Only a tuned process uses it (:mod:`alphaswarm.paper.tuning`, ``alphaswarm serve
--tune-interpreter``); library calls never freeze anything.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable


@dataclass(frozen=True, slots=True)
class FreezeStats:
    """What a :class:`HeapFreezer` has done so far.

    Attributes
    ----------
    freezes : int
        Young collections followed by a freeze.
    refreezes : int
        Full collections of everything followed by a freeze.
    releases : int
        Unfreezes followed by a full collection (no session running, or closed).
    starts_since_refreeze : int
        Session starts since the last refreeze.
    """

    freezes: int
    refreezes: int
    starts_since_refreeze: int
    releases: int = 0


class HeapFreezer:
    """Freeze long-lived objects shortly after sessions start; unfreeze when idle.

    Every method may be called from any thread; the collections run on ``loop``.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The loop the collections run on (the engine loop).
    is_idle : callable
        True when no session is running (a refreeze pauses no one then).
    settle_s : float
        Delay between a session start and the freeze it asks for; starts within it
        share one freeze.
    idle_s : float
        Delay between the last session ending and the release (unfreeze, collect).
    refreeze_after : int
        Session starts after which the next freeze is a refreeze, so frozen garbage
        stays bounded in a process whose sessions never all stop.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        is_idle: Callable[[], bool],
        *,
        settle_s: float = 0.25,
        idle_s: float = 1.0,
        refreeze_after: int = 1000,
    ) -> None:
        if refreeze_after < 1:
            raise ValueError(f"refreeze_after must be at least 1, got {refreeze_after}")
        self._loop = loop
        self._is_idle = is_idle
        self._settle_s = settle_s
        self._idle_s = idle_s
        self._refreeze_after = refreeze_after
        self._lock = threading.Lock()
        self._starts = 0
        self._freezes = 0
        self._refreezes = 0
        self._releases = 0
        self._frozen = False
        self._closed = False
        self._freeze_due: asyncio.TimerHandle | None = None  # touched on the loop only
        self._idle_due: asyncio.TimerHandle | None = None

    @property
    def stats(self) -> FreezeStats:
        """Counts of what was done so far."""
        with self._lock:
            return FreezeStats(self._freezes, self._refreezes, self._starts, self._releases)

    @property
    def frozen(self) -> bool:
        """True while this freezer holds objects frozen."""
        return self._frozen

    def session_started(self) -> None:
        """A session has started: freeze what has settled ``settle_s`` from now.

        Every ``refreeze_after`` starts, refreeze at once instead, in the thread that
        starts the session: reclaiming takes a pause (0.2-0.6 s at 1,000 starts), and
        starting a session is where one costs least; a pause due later would land on
        whatever runs then, a kill-switch request included.
        """
        with self._lock:
            if self._closed:
                return
            self._starts += 1
            due = self._starts >= self._refreeze_after
        if due and gc.isenabled():
            self.refreeze()
        else:
            self._on_loop(self._plan_freeze)

    def settle(self) -> None:
        """Many long-lived objects were just made (a dashboard built): freeze them soon.

        As after a session start, ``settle_s`` from now, and only if a session runs then;
        it counts as no start.
        """
        self._on_loop(self._plan_freeze)

    def session_ended(self) -> None:
        """A session has ended: release ``idle_s`` from now if none runs then."""
        self._on_loop(self._plan_idle_check)

    def refreeze(self) -> None:
        """Unfreeze, collect everything, freeze the survivors (one full pause)."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        with self._lock:
            self._starts = 0
            self._refreezes += 1
            self._frozen = True

    def release(self) -> None:
        """Unfreeze everything and collect it: what became garbage is reclaimed."""
        gc.unfreeze()
        gc.collect()
        with self._lock:
            self._starts = 0
            self._frozen = False
            self._releases += 1

    def close(self) -> None:
        """Stop freezing (pending freezes are dropped) and release what is frozen."""
        with self._lock:
            self._closed = True
            frozen = self._frozen
        self._on_loop(self._cancel_timers)
        if frozen:
            self.release()

    def freeze_young(self) -> None:
        """Collect the young generations, then freeze every object left."""
        gc.collect(1)
        gc.freeze()
        with self._lock:
            self._freezes += 1
            self._frozen = True

    # -- on the loop -------------------------------------------------------------------
    def _on_loop(self, fn: Callable[[], None]) -> None:
        if not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(fn)
            except RuntimeError:  # closed in between
                pass

    def _plan_freeze(self) -> None:
        if self._freeze_due is None:
            self._freeze_due = self._loop.call_later(self._settle_s, self._freeze_now)

    def _plan_idle_check(self) -> None:
        if self._idle_due is not None:
            self._idle_due.cancel()
        self._idle_due = self._loop.call_later(self._idle_s, self._idle_check)

    def _cancel_timers(self) -> None:
        for handle in (self._freeze_due, self._idle_due):
            if handle is not None:
                handle.cancel()
        self._freeze_due = self._idle_due = None

    def _freeze_now(self) -> None:
        self._freeze_due = None
        if self._closed or self._is_idle():  # closed, or the sessions ended already
            return
        if not gc.isenabled():  # latency-bound work holds the collector off: later
            self._plan_freeze()
            return
        with self._lock:
            due = self._starts >= self._refreeze_after  # it was postponed at the start
        if due:
            self.refreeze()
        else:
            self.freeze_young()

    def _idle_check(self) -> None:
        self._idle_due = None
        with self._lock:
            anything_frozen = self._frozen and not self._closed
        if not anything_frozen or not self._is_idle():
            return
        if not gc.isenabled():
            self._plan_idle_check()
            return
        self.release()
