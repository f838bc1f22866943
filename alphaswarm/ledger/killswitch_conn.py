"""The kill switch's own connection to the ledger, with a short wait for locks.

The ledger's writers share one engine, and on SQLite one write lock per file in
this process (:mod:`alphaswarm.ledger.dialect`): behind a writer that waits for
another process's lock, a kill-switch write would wait as long. The kill switch
writes its row through :class:`KillSwitchConnection` instead: an engine of its own
(one pooled connection, no checkpointer), which takes no turn on this process's
write lock and waits for a lock held elsewhere only ``wait_seconds`` (the SQLite
busy timeout of its connection; ``lock_timeout`` and ``statement_timeout`` on
PostgreSQL). A write that finds the ledger locked fails quickly with
:class:`~alphaswarm.ledger.errors.LedgerUnavailable`; the kill switch retries it in
the background (:mod:`alphaswarm.paper.killswitch_writer`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from alphaswarm.ledger.dialect import WRITE_OPTION, OpenedEngine, open_engine
from alphaswarm.ledger.errors import LedgerError, LedgerUnavailable, describe, is_unavailable
from alphaswarm.ledger.urls import parse_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

    from alphaswarm.ledger.connection import Database

__all__ = ["CONNECT_TIMEOUT_SECONDS", "KillSwitchConnection"]

#: PostgreSQL: seconds to wait for a connection (libpq's ``connect_timeout``, at least 2).
CONNECT_TIMEOUT_SECONDS = 2


class KillSwitchConnection:
    """A write path to one ledger database reserved for the kill-switch row.

    Parameters
    ----------
    db : Database
        The ledger database (its schema is prepared through it first).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._opened: OpenedEngine | None = None
        self._wait_ms: int | None = None
        self._lock = threading.Lock()
        parsed = parse_url(db.url)
        database = parsed.database or ""
        #: An in-memory SQLite database has one connection: it is shared, not duplicated.
        self.shared = parsed.get_backend_name() == "sqlite" and (
            database in ("", ":memory:") or parsed.query.get("mode") == "memory"
        )

    def _engine(self) -> OpenedEngine:
        with self._lock:
            if self._opened is None:
                kwargs: dict[str, Any] = {}
                if "poolclass" not in self.db.engine_kwargs:
                    kwargs.update(pool_size=1, max_overflow=1)
                if self.db.dialect == "postgresql" and "connect_timeout" not in str(self.db.url):
                    kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
                self._opened = open_engine(
                    self.db.url,
                    echo=self.db.echo,
                    busy_timeout=self.db.busy_timeout,
                    engine_kwargs={**self.db.engine_kwargs, **kwargs},
                    owner_id=id(self),
                    checkpoints=False,
                )
            return self._opened

    @contextmanager
    def write(self, wait_seconds: float) -> Iterator[Connection]:
        """One write transaction that waits at most ``wait_seconds`` for a lock.

        Raises
        ------
        LedgerUnavailable
            The ledger was locked (or out of reach): nothing was written.
        LedgerError
            Any other failure: nothing was written.
        """
        if self.shared:  # one connection in all: take turns with the other writers
            with self.db.write() as conn:
                yield conn
            return
        self.db.ensure_schema()
        engine = self._engine().engine
        wait_ms = max(1, int(wait_seconds * 1000))
        try:
            with engine.connect() as conn:
                if self.db.dialect == "sqlite":
                    self._sqlite_wait(conn, wait_ms)
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    if self.db.dialect == "postgresql":
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms:d}")
                        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {wait_ms + 1000:d}")
                    yield conn
        except LedgerError:
            raise
        except (SQLAlchemyError, TypeError, ValueError, OverflowError) as exc:
            locked = "lock" in str(exc).lower() or "timeout" in str(exc).lower()
            error = LedgerUnavailable if locked or is_unavailable(exc) else LedgerError
            raise error(f"kill-switch write failed, nothing was written: {describe(exc)}") from exc

    @staticmethod
    def _sqlite_wait(conn: Connection, wait_ms: int) -> None:
        """Set the busy timeout of the pooled SQLite connection (outside a transaction)."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.execute(f"PRAGMA busy_timeout = {wait_ms:d}")

    def close(self) -> None:
        """Dispose of the engine (the next write opens it again)."""
        with self._lock:
            opened, self._opened = self._opened, None
        if opened is not None:
            opened.engine.dispose()
