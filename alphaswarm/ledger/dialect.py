"""Engine creation per dialect: SQLite (WAL, pragmas, one write lock per file) or PostgreSQL."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from alphaswarm.ledger.checkpoint import AUTOCHECKPOINT_PRAGMA, WalCheckpointer
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.jsoncodec import json_dumps
from alphaswarm.ledger.urls import parse_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["WRITE_OPTION", "OpenedEngine", "open_engine"]

#: Execution option that marks a write transaction (SQLite begins it ``IMMEDIATE``).
WRITE_OPTION = "alphaswarm_write"

_sqlite_write_locks: dict[str, threading.RLock] = {}
_sqlite_write_locks_guard = threading.Lock()


def _sqlite_write_lock(database: str) -> threading.RLock:
    """The lock this process's writers of SQLite ``database`` share (one per file)."""
    with _sqlite_write_locks_guard:
        return _sqlite_write_locks.setdefault(database, threading.RLock())


@dataclass
class OpenedEngine:
    """An engine with what its dialect needs beside it."""

    engine: Engine
    #: SQLite: the lock this process's writers of the same database file share.
    write_lock: threading.RLock | None = None
    #: SQLite file: the thread that checkpoints the write-ahead log.
    checkpointer: WalCheckpointer | None = None


def open_engine(
    url: str,
    *,
    echo: bool,
    busy_timeout: float,
    engine_kwargs: dict[str, Any],
    owner_id: int,
    checkpoints: bool = True,
) -> OpenedEngine:
    """Create the engine of ``url`` (SQLite pragmas and hooks installed, checkpointer started).

    ``owner_id`` names the write lock of an in-memory SQLite database (one per ledger).
    ``checkpoints`` False leaves the write-ahead log to the ledger's main engine (a
    second engine on the same file, e.g. the kill switch's own connection).
    """
    parsed = parse_url(url)
    kwargs: dict[str, Any] = {
        "echo": echo,
        "json_serializer": json_dumps,
        "json_deserializer": json.loads,
    }
    connect_args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    database = parsed.database or ""
    if backend == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": busy_timeout}
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            kwargs["poolclass"] = StaticPool
        elif not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"cannot create the ledger folder {folder}: {exc}") from exc
    elif backend == "postgresql":
        if parsed.get_driver_name() in ("psycopg", "psycopg2"):
            connect_args = {"options": "-c timezone=UTC"}
        kwargs["pool_pre_ping"] = True
    extra = dict(engine_kwargs)
    connect_args.update(extra.pop("connect_args", {}))
    kwargs.update(extra)
    try:
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    except (SQLAlchemyError, ImportError, TypeError) as exc:
        raise LedgerError(
            f"cannot open the ledger {parsed.render_as_string(hide_password=True)!r}: {exc} "
            "(expected sqlite:///path/to/ledger.db, postgresql+psycopg://user@host/db "
            "or a file path)"
        ) from None
    if backend != "sqlite":
        return OpenedEngine(engine)
    on_file = "poolclass" not in kwargs  # not an in-memory database
    lock_name = (
        (database if database.startswith("file:") else str(Path(database).resolve()))
        if on_file
        else f"memory:{owner_id}"
    )
    _install_sqlite_hooks(engine, busy_timeout, background_checkpoints=on_file)
    return OpenedEngine(
        engine,
        write_lock=_sqlite_write_lock(lock_name),
        checkpointer=WalCheckpointer(engine).start() if on_file and checkpoints else None,
    )


def _install_sqlite_hooks(
    engine: Engine, busy_timeout: float, background_checkpoints: bool
) -> None:
    timeout_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms:d}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if background_checkpoints:  # commits leave checkpoints to WalCheckpointer
                cursor.execute(AUTOCHECKPOINT_PRAGMA)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE): with WAL a deferred
        # transaction that reads and then writes can fail at once with SQLITE_BUSY,
        # while IMMEDIATE waits for busy_timeout. DDL is transactional this way too.
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
