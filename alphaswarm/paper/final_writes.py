"""Final batches of paper sessions that the ledger could not take, retried until it does.

A session that ends while its ledger is out of reach (a SQLite file locked past the
busy timeout, a PostgreSQL server down) keeps everything its final batch holds: the
fills, orders, equity points and frames not committed yet, and the run row's final
status and counters. :class:`FinalWrites` retries those batches on one background
thread, with a growing delay (capped), until each commits; only then does the
session publish its last frames. The thread exists only while a batch is waiting.

If the process dies first, nothing of the batch was written: the run is still
``running`` in the ledger, and the next start marks it ``crashed`` with its
counters recomputed from the fills the ledger holds (:mod:`alphaswarm.paper.recovery`),
so ``num_fills`` always equals the number of ``paper_fills`` rows.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from alphaswarm.ledger.store import LedgerUnavailable

if TYPE_CHECKING:
    from alphaswarm.paper.session import PaperSession

log = logging.getLogger(__name__)

#: Seconds before the first retry; doubled after every failed round up to RETRY_MAX.
RETRY_FIRST = 0.2
RETRY_MAX = 5.0


class FinalWrites:
    """The process's queue of final batches waiting for their ledger."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[PaperSession, dict[str, Any]]] = []
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, session: PaperSession, prepared: dict[str, Any]) -> None:
        """Retry ``session``'s final batch until it commits (starts the thread if needed)."""
        with self._lock:
            self._items.append((session, prepared))
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="alphaswarm-final-writes", daemon=True
                )
                self._thread.start()

    def pending(self) -> list[str]:
        """Run ids whose final batch is still waiting."""
        with self._lock:
            return [s.paper_run_id for s, _ in self._items]

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no final batch waits (True) or ``timeout`` passed (False)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        delay = RETRY_FIRST
        while True:
            time.sleep(delay)
            with self._lock:
                items = list(self._items)
            done = []
            for session, prepared in items:
                if session._write_final(prepared, retry=True):
                    done.append(session)
            with self._lock:
                self._items = [(s, p) for s, p in self._items if all(s is not d for d in done)]
                if not self._items:
                    self._thread = None
                    self._idle.set()
                    return
            delay = RETRY_FIRST if done else min(delay * 2, RETRY_MAX)


def is_unavailable(exc: BaseException) -> bool:
    """True for a failure the same write may overcome later (the ledger was out of reach)."""
    return isinstance(exc, LedgerUnavailable)


_final_writes = FinalWrites()


def final_writes() -> FinalWrites:
    """The process-wide :class:`FinalWrites`."""
    return _final_writes
