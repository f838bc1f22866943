"""Where a request's blocking work runs: reserved, bounded and ordinary thread pools.

* the **kill path** (``POST /kill-switch``, its reset, the halt routes) has its own
  threads that nothing else may use, so no amount of other traffic can queue in
  front of an engagement;
* **heavy work** (backtests, reconciliations, parsing large bodies) runs in a
  bounded pool with a bounded queue; a request arriving when both are full is
  answered ``503`` with ``Retry-After`` instead of waiting;
* everything else (short ledger reads and writes) uses a third pool.

One :class:`Capacity` belongs to one server (``make_routes`` creates it).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alphaswarm.server.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Threads reserved for the kill path.
KILL_WORKERS = 2
#: Default threads for heavy work (backtests, big bodies).
HEAVY_WORKERS = max(1, min(4, (os.cpu_count() or 2) // 2))
#: Default heavy requests that may wait for a thread before new ones get 503.
HEAVY_QUEUE = 4
#: Default threads for ordinary (short) blocking work.
LIGHT_WORKERS = 8
#: Seconds a client is told to wait after a 503.
RETRY_AFTER_SECONDS = 5


class Busy(ApiError):
    """503: the bounded pool and its queue are full; ``Retry-After`` says when to retry."""

    def __init__(self, what: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(
            503,
            f"the server is busy with {what}: try again in {retry_after} s",
            "busy",
            retry_after_seconds=retry_after,
        )
        self.retry_after = retry_after


@dataclass
class Capacity:
    """The thread pools of one server.

    Parameters
    ----------
    heavy_workers : int
        Threads running heavy work at once.
    heavy_queue : int
        Heavy requests that may wait for a thread; more get 503.
    light_workers : int
        Threads for ordinary blocking work.
    """

    heavy_workers: int = HEAVY_WORKERS
    heavy_queue: int = HEAVY_QUEUE
    light_workers: int = LIGHT_WORKERS
    _pools: dict[str, ThreadPoolExecutor] = field(default_factory=dict, repr=False)
    _heavy_slots: threading.BoundedSemaphore | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.heavy_workers < 1 or self.heavy_queue < 0 or self.light_workers < 1:
            raise ValueError("heavy_workers and light_workers must be >= 1, heavy_queue >= 0")
        self._heavy_slots = threading.BoundedSemaphore(self.heavy_workers + self.heavy_queue)

    def _pool(self, name: str, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = ThreadPoolExecutor(workers, thread_name_prefix=f"alphaswarm-{name}")
                self._pools[name] = pool
            return pool

    @property
    def kill(self) -> ThreadPoolExecutor:
        """The kill path's reserved threads."""
        return self._pool("kill", KILL_WORKERS)

    @property
    def light(self) -> ThreadPoolExecutor:
        """Threads for short blocking work."""
        return self._pool("light", self.light_workers)

    @property
    def heavy(self) -> ThreadPoolExecutor:
        """Threads for heavy work (use :meth:`admit` first)."""
        return self._pool("heavy", self.heavy_workers)

    def admit(self, what: str) -> Callable[[], None]:
        """Take a heavy slot (running or queued) or raise :class:`Busy`.

        Returns
        -------
        callable
            Gives the slot back; call it exactly once when the work is done.
        """
        assert self._heavy_slots is not None
        if not self._heavy_slots.acquire(blocking=False):
            raise Busy(what)
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                assert self._heavy_slots is not None
                self._heavy_slots.release()

        return release

    @contextlib.contextmanager
    def slot(self, what: str) -> Iterator[None]:
        """Hold a heavy slot for the ``with`` block (:class:`Busy` when none is free)."""
        release = self.admit(what)
        try:
            yield
        finally:
            release()

    def shutdown(self) -> None:
        """Stop accepting work (running work finishes on its threads)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def __getstate__(self) -> dict[str, Any]:  # pragma: no cover - never pickled in practice
        raise TypeError("Capacity holds threads and cannot be pickled")
