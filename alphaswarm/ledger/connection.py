"""One ledger database: the engine opened on first use, the schema upgraded, transactions.

:class:`Database` is what every repository of the ledger writes and reads through:
:meth:`Database.write` is one transaction whose failure rolls back and raises
:class:`~alphaswarm.ledger.errors.LedgerError` (or
:class:`~alphaswarm.ledger.errors.LedgerUnavailable` when the database was out of
reach), :meth:`Database.read` one connection for queries.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from alphaswarm.ledger import revisions
from alphaswarm.ledger.checkpoint import checkpoint
from alphaswarm.ledger.dialect import WRITE_OPTION, OpenedEngine, open_engine
from alphaswarm.ledger.errors import LedgerError, LedgerUnavailable, describe, is_unavailable
from alphaswarm.ledger.schema import paper_trading_runs
from alphaswarm.ledger.urls import parse_url, safe_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine

__all__ = ["Database", "Repository", "bounded_writes"]

#: The longest wait for a lock of the writes made in this context (see bounded_writes).
_WRITE_WAIT: ContextVar[float | None] = ContextVar("alphaswarm_write_wait", default=None)


@contextmanager
def bounded_writes(seconds: float) -> Iterator[None]:
    """Writes made in this context wait at most ``seconds`` for a lock held elsewhere.

    A SQLite writer waits that long (instead of the ledger's busy timeout) for this
    process's other writers and for another process's write lock, then raises
    :class:`~alphaswarm.ledger.errors.LedgerUnavailable` with nothing written. Only
    the current thread (context) is affected. A halt writes its final rows this way:
    what the ledger does not take at once is retried in the background.

    Parameters
    ----------
    seconds : float
        The longest wait for a lock.
    """
    token = _WRITE_WAIT.set(seconds)
    try:
        yield
    finally:
        _WRITE_WAIT.reset(token)


# Key of the transaction-scoped advisory lock that serialises schema upgrades on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x616C7068  # "alph"


class Database:
    """The engine of one ledger URL, opened lazily, with write and read transactions.

    Parameters
    ----------
    url : str
        The SQLAlchemy URL.
    echo : bool
        Log every statement.
    upgrade : bool
        Upgrade the schema to the newest migration on first use.
    busy_timeout : float
        SQLite: seconds a writer waits for another writer's lock.
    engine_kwargs : dict
        Extra keyword arguments for :func:`sqlalchemy.create_engine`.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool,
        upgrade: bool,
        busy_timeout: float,
        engine_kwargs: dict[str, Any],
    ) -> None:
        self.url = url
        self.echo = echo
        self.upgrade = upgrade
        self.busy_timeout = busy_timeout
        self.engine_kwargs = engine_kwargs
        self.dialect: str = parse_url(url).get_backend_name()
        self._opened: OpenedEngine | None = None
        self._schema_ready = False
        self._lock = threading.RLock()

    @property
    def checkpointer(self) -> Any:
        """SQLite file: the running WAL checkpointer; ``None`` otherwise or when closed."""
        opened = self._opened
        return None if opened is None else opened.checkpointer

    @property
    def write_lock(self) -> Any:
        """SQLite: the lock this process's writers of the database share; ``None`` otherwise."""
        opened = self._opened
        return None if opened is None else opened.write_lock

    def safe_url(self) -> str:
        """The URL with its password hidden."""
        return safe_url(self.url)

    def engine(self) -> Engine:
        """The SQLAlchemy engine, opened and with the schema upgraded to head."""
        self.ensure_schema()
        assert self._opened is not None
        return self._opened.engine

    def _open(self) -> OpenedEngine:
        with self._lock:
            if self._opened is None:
                self._opened = open_engine(
                    self.url,
                    echo=self.echo,
                    busy_timeout=self.busy_timeout,
                    engine_kwargs=self.engine_kwargs,
                    owner_id=id(self),
                )
            return self._opened

    def ensure_schema(self) -> str:
        """Create or upgrade the schema to the newest migration; return the head revision.

        See :meth:`alphaswarm.ledger.Ledger.ensure_schema`.
        """
        with self._lock:
            head = revisions.head_revision()
            if self._schema_ready:
                return head
            engine = self._open().engine
            try:
                with engine.connect() as conn:
                    # a ledger at head opens without Alembic (see alphaswarm.ledger.revisions)
                    if revisions.stamped_revisions(conn) == [head]:
                        conn.rollback()
                        self._schema_ready = True
                        return head
                    from alphaswarm.ledger import migrate  # creating or upgrading: Alembic

                    current = migrate.current_revision(conn)
                    if current != head and not self.upgrade:
                        self._check_upgradable(conn, current, head)
                    conn.rollback()
                    if current != head:
                        self._upgrade_under_lock(conn, head)
            except LedgerError:
                raise
            except Exception as exc:
                error = LedgerUnavailable if is_unavailable(exc) else LedgerError
                raise error(
                    f"cannot prepare the ledger schema at {self.safe_url()}: {describe(exc)}"
                ) from exc
            self._schema_ready = True
            return head

    def _upgrade_under_lock(self, conn: Connection, head: str) -> None:
        """Upgrade to ``head`` holding the migration lock, judging the schema anew.

        What was read before the lock may be stale: another process can have created
        the tables and stamped them in between, so the revision is read again here.
        """
        from alphaswarm.ledger import migrate

        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            current = migrate.current_revision(conn)
            if current != head:
                self._check_upgradable(conn, current, head)
                migrate.upgrade(conn, "head")

    def _check_upgradable(self, conn: Connection, current: str | None, head: str) -> None:
        from alphaswarm.ledger import migrate

        if current is not None and current not in migrate.known_revisions():
            raise LedgerError(
                f"the ledger at {self.safe_url()} is at schema revision {current!r}, which "
                f"this version of alphaswarm does not know (newest: {head!r}); upgrade "
                "alphaswarm or point ALPHASWARM_DB_URL at another ledger"
            )
        if current is None and inspect(conn).has_table(paper_trading_runs.name):
            raise LedgerError(
                f"{self.safe_url()} has ledger tables but no alembic_version table, so "
                "its schema revision is unknown; stamp it with alembic or use a new ledger"
            )
        if not self.upgrade:
            raise LedgerError(
                f"the ledger at {self.safe_url()} is at schema revision {current!r}, not "
                f"{head!r}, and upgrade=False"
            )

    def close(self) -> None:
        """Dispose of the engine and its pooled connections; the next use reconnects."""
        with self._lock:
            opened, self._opened = self._opened, None
            self._schema_ready = False
            if opened is None:
                return
            if opened.checkpointer is not None:
                opened.checkpointer.stop()
                checkpoint(opened.engine)  # leave the log copied into the database file
            opened.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; any failure rolls back and raises LedgerError.

        On SQLite the writers of this process take turns on a lock of their own
        first: SQLite's busy handler polls a locked database with growing sleeps
        (1, 2, 5, 10 ... 100 ms), so a writer that arrived while a 3 ms transaction
        ran used to wait 8 ms, and one behind several, seconds; a lock hands over
        at once. Other processes still meet the busy handler.
        """
        engine = self.engine()
        wait = _WRITE_WAIT.get()
        try:
            with self._writer_turn(wait), engine.connect() as conn:
                bounded = wait is not None and self.dialect == "sqlite" and wait < self.busy_timeout
                if bounded:
                    _sqlite_busy_timeout(conn, wait)
                try:
                    conn.execution_options(**{WRITE_OPTION: True})
                    with conn.begin():
                        yield conn
                finally:
                    if bounded:  # the pooled connection waits as long as the others again
                        _sqlite_busy_timeout(conn, self.busy_timeout)
        except LedgerError:
            raise
        except (SQLAlchemyError, TypeError, ValueError, OverflowError) as exc:
            error = LedgerUnavailable if is_unavailable(exc) else LedgerError
            raise error(f"ledger write failed, nothing was written: {describe(exc)}") from exc

    @contextmanager
    def _writer_turn(self, wait: float | None = None) -> Iterator[None]:
        """Hold this process's write lock of the SQLite file (nothing on other databases)."""
        opened = self._opened
        lock = None if opened is None else opened.write_lock
        if lock is None:
            yield
            return
        timeout = self.busy_timeout if wait is None else min(wait, self.busy_timeout)
        if not lock.acquire(timeout=timeout):
            raise LedgerUnavailable(
                "ledger write failed, nothing was written: another writer of this process "
                f"held {self.safe_url()} for {timeout:g} s"
            )
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One connection for queries; a database error raises LedgerError."""
        engine = self.engine()
        try:
            with engine.connect() as conn:
                yield conn
        except LedgerError:
            raise
        except SQLAlchemyError as exc:
            error = LedgerUnavailable if is_unavailable(exc) else LedgerError
            raise error(f"ledger read failed: {describe(exc)}") from exc


def _sqlite_busy_timeout(conn: Connection, seconds: float) -> None:
    """Set the busy timeout of a pooled SQLite connection (outside a transaction)."""
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None:
        dbapi.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000)):d}")


class Repository:
    """One part of the ledger, writing and reading through one :class:`Database`.

    Parameters
    ----------
    db : Database
        The ledger database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def _by_id(self, table: Table, key: str) -> dict | None:
        """The row of ``table`` whose ``id`` is ``key``, as a dict, or ``None``."""
        with self.db.read() as conn:
            found = conn.execute(select(table).where(table.c.id == key)).mappings().first()
        return dict(found) if found else None
