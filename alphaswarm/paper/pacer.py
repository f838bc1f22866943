"""One timer per moment for every paced session of a loop.

A paced session waits between its bars. With ``asyncio.timeout_at`` around an
``Event.wait()``, each wait made about ten objects the garbage collector tracks
(a coroutine, a future and its iterator, the timeout, its timer handle, a
context, bound methods) that lived for the whole wait, about a second: long
enough to outlive the young collections. At a thousand sessions those objects
were most of what reached the oldest generation, and they set off a full
collection (a stop-the-world walk of every object of the process) every few
seconds.

Paced schedules start on a tick of the loop's clock, so sessions at one pace are
due at the same moments. :class:`Pacer` keeps one timer per moment (to the
millisecond, never early) and a plain future per waiting session, which a stop
or kill resolves at once.
"""

from __future__ import annotations

import contextvars
import math
from typing import TYPE_CHECKING

from alphaswarm.paper.per_loop import _PerLoop

if TYPE_CHECKING:
    import asyncio


class Pacer(_PerLoop):
    """Wakes every waiter due at one moment with one timer (one pacer per event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._due: dict[int, list[asyncio.Future[None]]] = {}
        # the timers need no context of the code that happened to schedule them first
        self._context = contextvars.Context()

    def wait_until(self, when: float) -> asyncio.Future[None]:
        """A future resolved at loop time ``when`` (or by :func:`wake`, whichever is first).

        Parameters
        ----------
        when : float
            Loop time (``loop.time()``), rounded up to the millisecond.
        """
        key = math.ceil(when * 1000)
        future = self._loop.create_future()
        waiters = self._due.get(key)
        if waiters is None:
            waiters = self._due[key] = []
            self._loop.call_at(key / 1000, self._fire, key, context=self._context)
        waiters.append(future)
        return future

    def time(self) -> float:
        """The loop's time."""
        return self._loop.time()

    def _fire(self, key: int) -> None:
        for future in self._due.pop(key, ()):
            if not future.done():
                future.set_result(None)

    @property
    def moments(self) -> int:
        """Moments with a timer set (for tests)."""
        return len(self._due)


def wake(future: asyncio.Future[None] | None) -> None:
    """End the wait of ``future`` now (on its loop's thread); nothing if it is over."""
    if future is not None and not future.done():
        future.set_result(None)
