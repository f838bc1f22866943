"""Checkpoint a SQLite ledger's write-ahead log on a background thread.

In WAL mode SQLite appends every commit to the ``-wal`` file and, by default, the
commit that takes the log past 1,000 pages copies it back into the database (a
checkpoint) before it returns: every few seconds one write, sometimes a kill
switch's, pays several milliseconds for everyone's. A ledger's connections raise
that threshold to :data:`SAFETY_NET_PAGES` and this thread checkpoints every
:data:`INTERVAL_SECONDS` instead, in ``PASSIVE`` mode (it never waits for, nor
blocks, a reader or a writer). Should the thread be missing (a forked worker, say)
the high threshold still bounds the log.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

__all__ = [
    "AUTOCHECKPOINT_PRAGMA",
    "INTERVAL_SECONDS",
    "SAFETY_NET_PAGES",
    "WalCheckpointer",
    "checkpoint",
]

#: Seconds between two background checkpoints.
INTERVAL_SECONDS = 0.25
#: ``PRAGMA wal_autocheckpoint`` of every ledger connection: a commit checkpoints
#: itself only past this many log pages (about 40 MB at 4 KiB pages).
SAFETY_NET_PAGES = 10_000
#: The statement that sets it on a connection.
AUTOCHECKPOINT_PRAGMA = "PRAGMA wal_autocheckpoint = 10000"


def checkpoint(engine: Engine) -> tuple[int, int, int] | None:
    """One ``PRAGMA wal_checkpoint(PASSIVE)`` on a pooled connection of ``engine``.

    Returns
    -------
    tuple of int or None
        ``(busy, log pages, pages checkpointed)`` as SQLite reports them; None if the
        database could not be reached.
    """
    try:
        raw = engine.raw_connection()
    except Exception:  # noqa: BLE001 - a closed or unreachable file: nothing to do
        return None
    try:
        row = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))
    except Exception:  # noqa: BLE001 - busy, or the file went away; the next round tries
        log.debug("WAL checkpoint skipped", exc_info=True)
        return None
    finally:
        raw.close()


class WalCheckpointer:
    """A daemon thread checkpointing one engine's SQLite database until stopped.

    It holds the engine weakly: an engine nobody uses any more ends the thread.

    Parameters
    ----------
    engine : Engine
        A SQLAlchemy engine on a SQLite file in WAL mode.
    interval : float
        Seconds between checkpoints.
    """

    def __init__(self, engine: Engine, interval: float = INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.rounds = 0
        self._engine = weakref.ref(engine)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="alphaswarm-wal-checkpoint", daemon=True
        )

    def start(self) -> WalCheckpointer:
        """Start the thread; returns ``self``."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (after its current checkpoint) and wait for it."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            engine = self._engine()
            if engine is None:
                return
            checkpoint(engine)
            self.rounds += 1
            del engine
