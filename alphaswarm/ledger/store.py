"""The :class:`Ledger`: every write of a bot, backtest and paper run, and pandas reads.

One ``Ledger`` wraps one SQLAlchemy engine. SQLite (a file in WAL mode) is the
embedded default; PostgreSQL is the same schema through a URL. All SQL is
parameterised; every write method is one transaction, so a bad row leaves nothing
half-written and raises :class:`LedgerError`.

Examples
--------
>>> from alphaswarm.ledger import Ledger
>>> with Ledger(url="sqlite:///:memory:") as ledger:
...     bot_id, version, created = ledger.register_bot("My SMA bot", {"k": 1}, "abc123")
>>> bot_id, version, created
('my-sma-bot', 1, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import re
import socket
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import pandas as pd
import param
from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from alphaswarm.ledger.bulk import execute_many, with_python_defaults
from alphaswarm.ledger.checkpoint import AUTOCHECKPOINT_PRAGMA, WalCheckpointer, checkpoint
from alphaswarm.ledger.schema import (
    UTCDateTime,
    audit_log,
    backtest_runs,
    bot_versions,
    bots,
    kill_switch,
    kill_switch_acks,
    metadata,
    paper_equity,
    paper_fills,
    paper_frames,
    paper_orders,
    paper_trading_runs,
    utcnow,
)
from alphaswarm.ledger.schema import risk_events as risk_events_table
from alphaswarm.model import OrderStatus

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, CursorResult, Engine
    from sqlalchemy.sql import Select

_log = logging.getLogger(__name__)

__all__ = [
    "KILL_SWITCH_CHANNEL",
    "KillSwitchRefusal",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "default_url",
    "owner_lock_key",
    "process_owner",
]

#: PostgreSQL ``NOTIFY`` channel on which :meth:`Ledger.set_kill_switch` announces changes.
KILL_SWITCH_CHANNEL = "alphaswarm_kill_switch"

# Key of the transaction-scoped advisory lock that serialises schema upgrades on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x616C7068  # "alph"

_WRITE_OPTION = "alphaswarm_write"

#: Values per ``IN (...)`` list: well under every database's limit on parameters.
_IN_LIST_CHUNK = 500

_TIMESTAMP_COLUMNS = frozenset(
    column.name
    for table in metadata.tables.values()
    for column in table.columns
    if isinstance(column.type, UTCDateTime)
)


class LedgerError(RuntimeError):
    """Raised when the ledger cannot do what was asked; nothing was written."""


class LedgerUnavailable(LedgerError):
    """The database could not be reached or stayed locked: nothing was written.

    A transient failure (a SQLite file whose write lock another writer held past the
    busy timeout, a PostgreSQL server that is down or dropped the connection): the
    same write may succeed later, unlike a bad row.
    """


def _unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database was out of reach, not that the data was bad."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout)


class KillSwitchRefusal(LedgerError):
    """A paper run was not created: the kill-switch row is engaged (or halts its bot).

    ``state`` is the row as :meth:`Ledger.kill_switch_state` returns it.
    """

    def __init__(self, message: str, state: dict) -> None:
        super().__init__(message)
        self.state = state


def default_url() -> str:
    """Return the ledger URL used when none is given.

    ``$ALPHASWARM_DB_URL`` when set, otherwise the SQLite file
    ``~/.alphaswarm/ledger.db`` (its directory is created).

    Returns
    -------
    str
        An SQLAlchemy database URL.
    """
    env = os.environ.get("ALPHASWARM_DB_URL", "").strip()
    if env:
        return as_database_url(env)
    path = Path.home() / ".alphaswarm" / "ledger.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def as_database_url(value: str) -> str:
    """A database URL as given, or a plain file path as the URL of that SQLite file.

    ``ledger.db`` and ``~/x/ledger.db`` become ``sqlite:///<absolute path>``, the
    way the CLI's ``--db`` takes them; anything with a scheme is left alone.

    Parameters
    ----------
    value : str
        A URL (``sqlite:///...``, ``postgresql+psycopg://...``) or a file path.
    """
    text = value.strip()
    if not text or "://" in text or text.startswith("sqlite:"):
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _parse_url(url: str) -> Any:
    """``make_url`` with a readable :class:`LedgerError` instead of SQLAlchemy's."""
    try:
        return make_url(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise LedgerError(
            f"not a database URL: {url!r} (expected sqlite:///path/to/ledger.db, "
            f"postgresql+psycopg://user@host/db or a file path): {exc}"
        ) from None


def process_owner() -> str:
    """Return ``"<host>:<pid>"``, the owner recorded on the paper runs this process starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_lock_key(owner: str) -> int:
    """The PostgreSQL advisory-lock key (a signed 64-bit int) of a run owner.

    A process holds the session-level lock of its owner while it may own running
    paper runs (:meth:`Ledger.hold_owner_lock`); when the process dies its
    connection drops and the lock with it, which is how a survivor tells a dead
    owner from a live one on another machine (:meth:`Ledger.owner_alive`).
    """
    digest = hashlib.blake2b(f"alphaswarm-owner:{owner}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# --------------------------------------------------------------------------- JSON


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return _finite(float(obj))
    if isinstance(obj, PurePath):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays
    if callable(tolist) and type(obj).__module__ == "numpy":
        return _sanitise(tolist())
    raise TypeError(f"values of type {type(obj).__name__} cannot be stored as JSON: {obj!r}")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _sanitise(obj: Any) -> Any:
    """Replace non-finite floats by ``None`` (JSON has no NaN) and tuples by lists."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k: _sanitise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_sanitise(v) for v in obj]
    return obj


#: One encoder for every JSON column value (``encode`` keeps no state between calls).
_JSON_ENCODER = json.JSONEncoder(default=_json_default, allow_nan=False)


def _json_dumps(obj: Any) -> str:
    try:  # the usual value holds no NaN: skip the sanitising walk
        return _JSON_ENCODER.encode(obj)
    except ValueError:
        return _JSON_ENCODER.encode(_sanitise(obj))


# --------------------------------------------------------------------------- rows


#: Column values stored as they are (checked by exact type, the common case).
_PLAIN_TYPES = frozenset({str, float, int, bool, type(None), datetime, dict, list})


def _plain(value: Any) -> Any:
    """Turn enums and numpy scalars into plain Python values for a column."""
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, Enum):
        return value.value
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return item()
    return value


def _as_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    to_dict = getattr(data, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return result
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return dataclasses.asdict(data)
    raise LedgerError(f"{what}: expected a mapping of column values, got {type(data).__name__}")


@functools.cache
def _column_names(table: Table) -> frozenset[str]:
    return frozenset(table.c.keys())


def _row(
    table: Table,
    data: Any,
    what: str,
    *,
    aliases: Mapping[str, str] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate one row for ``table``: known columns only, plain values."""
    names = _column_names(table)
    if (
        type(data) is dict
        and names.issuperset(data)
        and (aliases is None or aliases.keys().isdisjoint(data))
    ):  # the usual row: known columns, no aliases used
        out = {k: v if type(v) in _PLAIN_TYPES else _plain(v) for k, v in data.items()}
    else:
        out = _row_slow(table, names, data, what, aliases)
    if fixed:
        for key, value in fixed.items():
            if key in out and out[key] != value:
                raise LedgerError(f"{what}: {key}={out[key]!r} does not match {value!r}")
            out[key] = value
    return out


def _row_slow(
    table: Table,
    names: frozenset[str],
    data: Any,
    what: str,
    aliases: Mapping[str, str] | None,
) -> dict[str, Any]:
    """:func:`_row` for any mapping or record, with aliases and a message per bad key."""
    out: dict[str, Any] = {}
    for key, value in _as_mapping(data, what).items():
        column = aliases.get(key, key) if aliases else key
        if column not in names:
            allowed = ", ".join(c.name for c in table.columns)
            raise LedgerError(
                f"{what}: unknown column {key!r} for {table.name}; allowed: {allowed}"
            )
        if column in out:
            raise LedgerError(f"{what}: column {column!r} given twice (as {key!r})")
        out[column] = _plain(value)
    return out


def _fields(table: Table, fields: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Validate the columns of an UPDATE (the primary key cannot change)."""
    values = _row(table, fields, what)
    for key in table.primary_key.columns.keys():
        if key in values:
            raise LedgerError(f"{what}: the key column {key!r} cannot be updated")
    return values


def _upsert_statement(dialect: str, table: Table, keys: list[str], columns: list[str]) -> Any:
    """``INSERT .. ON CONFLICT (keys) DO UPDATE SET columns`` (nothing when no columns)."""
    stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
    if columns:
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in columns}
        )
    return stmt.on_conflict_do_nothing(index_elements=keys)


_sqlite_write_locks: dict[str, threading.RLock] = {}
_sqlite_write_locks_guard = threading.Lock()


def _sqlite_write_lock(database: str) -> threading.RLock:
    """The lock this process's writers of SQLite ``database`` share (one per file)."""
    with _sqlite_write_locks_guard:
        return _sqlite_write_locks.setdefault(database, threading.RLock())


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in consecutive lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _group_by_keys(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Split rows into runs of identical key sets (an executemany needs one shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    yield from groups.values()


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:96].strip("-")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StatementError) and exc.orig is not None:
        orig = exc.orig
        return f"{type(orig).__name__}: {str(orig).strip().splitlines()[0]}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"


_TRAILING_DIGITS = re.compile(r"(\d+)$")


def _fill_order(fill: Mapping[str, Any]) -> tuple[Any, int, str]:
    """Sort key of a fill: bar time, then the broker's fill sequence (``f10`` after ``f9``)."""
    found = _TRAILING_DIGITS.search(str(fill["id"]))
    return (fill["filled_at"], int(found.group(1)) if found else -1, str(fill["id"]))


def _position_pnl(fills: Iterable[Mapping[str, Any]]) -> tuple[float, float, float]:
    """Return (realized, unrealized at the last fill price, commission) of a fill sequence.

    Average-cost accounting per symbol; shorts and position flips are handled.
    """
    positions: dict[str, list[float]] = {}  # symbol -> [qty, avg_price, last_price]
    realized = commission = 0.0
    for fill in fills:
        qty, price = float(fill["qty"]), float(fill["price"])
        signed = qty if str(fill["side"]).lower() == "buy" else -qty
        commission += float(fill["commission"] or 0.0)
        pos = positions.setdefault(fill["symbol"], [0.0, 0.0, price])
        held, avg = pos[0], pos[1]
        pos[2] = price
        if held == 0 or (held > 0) == (signed > 0):
            total = abs(held) + qty
            pos[1] = (avg * abs(held) + price * qty) / total
            pos[0] = held + signed
            continue
        closing = min(qty, abs(held))
        realized += closing * (price - avg) * (1.0 if held > 0 else -1.0)
        pos[0] = held + signed
        if abs(pos[0]) < 1e-12:
            pos[0], pos[1] = 0.0, 0.0
        elif (pos[0] > 0) != (held > 0):  # flipped: the remainder opens at this price
            pos[1] = price
    unrealized = sum(q * (last - avg) for q, avg, last in positions.values())
    return realized, unrealized, commission


# --------------------------------------------------------------------------- Ledger


class Ledger(param.Parameterized):
    """The persistent record of bots, backtests and paper-trading runs.

    Parameters are set once, at construction; the engine is created, and the schema
    upgraded to the newest migration, on first use.

    Examples
    --------
    >>> ledger = Ledger()  # $ALPHASWARM_DB_URL or ~/.alphaswarm/ledger.db  # doctest: +SKIP
    >>> ledger.sql("SELECT id, status FROM paper_trading_runs")  # doctest: +SKIP
    """

    url = param.String(
        default=None,
        allow_None=True,
        constant=True,
        doc="""
        SQLAlchemy database URL, e.g. ``sqlite:////path/ledger.db`` or
        ``postgresql+psycopg://user@host/db``. ``None`` resolves to
        :func:`default_url`: ``$ALPHASWARM_DB_URL``, else ``~/.alphaswarm/ledger.db``.""",
    )

    echo = param.Boolean(
        default=False,
        constant=True,
        doc="Log every SQL statement (SQLAlchemy's ``echo``).",
    )

    upgrade = param.Boolean(
        default=True,
        constant=True,
        doc="""
        Upgrade the schema to the newest migration on first use. When False, a ledger
        that is not at the newest revision raises :class:`LedgerError` instead.""",
    )

    busy_timeout = param.Number(
        default=30.0,
        bounds=(0, None),
        constant=True,
        doc="SQLite only: seconds a writer waits for another writer's lock before failing.",
    )

    owner = param.String(
        default=None,
        allow_None=True,
        doc="""
        Owner recorded on paper runs created through this ledger (``"<host>:<pid>"`` by
        default); :meth:`mark_crashed` can skip the runs of a live owner.""",
    )

    engine_kwargs = param.Dict(
        default={},
        constant=True,
        doc="Extra keyword arguments for :func:`sqlalchemy.create_engine`.",
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.url is None:
            with param.edit_constant(self):
                self.url = default_url()
        elif self.url != as_database_url(self.url):
            with param.edit_constant(self):
                self.url = as_database_url(self.url)
        _parse_url(self.url)  # a bad URL fails here, readably
        if self.owner is None:
            self.owner = process_owner()
        self._engine: Engine | None = None
        self._checkpointer: WalCheckpointer | None = None
        # SQLite: the lock this process's writers of the same database file share.
        self._write_lock: threading.RLock | None = None
        self._schema_ready = False
        self._lock = threading.RLock()
        # PostgreSQL: a connection outside the pool holding this owner's advisory lock.
        self._owner_conn: Connection | None = None
        self._owner_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, with the schema upgraded to head."""
        self.ensure_schema()
        assert self._engine is not None
        return self._engine

    @property
    def dialect(self) -> str:
        """Name of the database dialect: ``"sqlite"`` or ``"postgresql"``."""
        return _parse_url(self.url).get_backend_name()

    def _get_engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        url = _parse_url(self.url)
        kwargs: dict[str, Any] = {
            "echo": self.echo,
            "json_serializer": _json_dumps,
            "json_deserializer": json.loads,
        }
        connect_args: dict[str, Any] = {}
        backend = url.get_backend_name()
        if backend == "sqlite":
            database = url.database or ""
            connect_args = {"check_same_thread": False, "timeout": self.busy_timeout}
            if database in ("", ":memory:") or url.query.get("mode") == "memory":
                kwargs["poolclass"] = StaticPool
            elif not database.startswith("file:"):
                folder = Path(database).expanduser().parent
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise LedgerError(f"cannot create the ledger folder {folder}: {exc}") from exc
        elif backend == "postgresql":
            if url.get_driver_name() in ("psycopg", "psycopg2"):
                connect_args = {"options": "-c timezone=UTC"}
            kwargs["pool_pre_ping"] = True
        extra = dict(self.engine_kwargs)
        connect_args.update(extra.pop("connect_args", {}))
        kwargs.update(extra)
        try:
            engine = create_engine(url, connect_args=connect_args, **kwargs)
        except (SQLAlchemyError, ImportError, TypeError) as exc:
            raise LedgerError(
                f"cannot open the ledger {url.render_as_string(hide_password=True)!r}: {exc} "
                "(expected sqlite:///path/to/ledger.db, postgresql+psycopg://user@host/db "
                "or a file path)"
            ) from None
        if backend == "sqlite":
            on_file = "poolclass" not in kwargs  # not an in-memory database
            database = url.database or ""
            self._write_lock = _sqlite_write_lock(
                (database if database.startswith("file:") else str(Path(database).resolve()))
                if on_file
                else f"memory:{id(self)}"
            )
            self._install_sqlite_hooks(engine, background_checkpoints=on_file)
            if on_file:
                self._checkpointer = WalCheckpointer(engine).start()
        return engine

    def _install_sqlite_hooks(self, engine: Engine, background_checkpoints: bool) -> None:
        timeout_ms = int(self.busy_timeout * 1000)

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
            immediate = conn.get_execution_options().get(_WRITE_OPTION)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def ensure_schema(self) -> str:
        """Create or upgrade the ledger schema to the newest migration.

        Called on first use. Safe when several processes open the same new ledger at
        once: the upgrade runs under the database's write lock (SQLite) or an advisory
        lock (PostgreSQL), and whoever comes second finds the schema current.

        Returns
        -------
        str
            The revision the ledger is at (the head revision).

        Raises
        ------
        LedgerError
            If the database cannot be reached, is newer than this code, or is not at
            head while :attr:`upgrade` is False.
        """
        from alphaswarm.ledger import migrate  # Alembic loads when a ledger first opens

        with self._lock:
            head = migrate.head_revision()
            if self._schema_ready:
                return head
            engine = self._get_engine()
            try:
                with engine.connect() as conn:
                    current = migrate.current_revision(conn)
                    if current != head and not self.upgrade:
                        self._check_upgradable(conn, current, head)
                    conn.rollback()
                    if current != head:
                        self._upgrade_under_lock(conn, head)
            except LedgerError:
                raise
            except Exception as exc:
                error = LedgerUnavailable if _unavailable(exc) else LedgerError
                raise error(
                    f"cannot prepare the ledger schema at {self._safe_url()}: {_describe(exc)}"
                ) from exc
            self._schema_ready = True
            return head

    def _upgrade_under_lock(self, conn: Connection, head: str) -> None:
        """Upgrade to ``head`` holding the migration lock, judging the schema anew.

        What was read before the lock may be stale: another process can have created
        the tables and stamped them in between, so the revision is read again here.
        """
        from alphaswarm.ledger import migrate

        conn.execution_options(**{_WRITE_OPTION: True})
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
                f"the ledger at {self._safe_url()} is at schema revision {current!r}, which "
                f"this version of alphaswarm does not know (newest: {head!r}); upgrade "
                "alphaswarm or point ALPHASWARM_DB_URL at another ledger"
            )
        if current is None and inspect(conn).has_table(paper_trading_runs.name):
            raise LedgerError(
                f"{self._safe_url()} has ledger tables but no alembic_version table, so "
                "its schema revision is unknown; stamp it with alembic or use a new ledger"
            )
        if not self.upgrade:
            raise LedgerError(
                f"the ledger at {self._safe_url()} is at schema revision {current!r}, not "
                f"{head!r}, and upgrade=False"
            )

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Dispose of the engine and its pooled connections; the next use reconnects."""
        self.release_owner_lock()
        with self._lock:
            checkpointer, self._checkpointer = self._checkpointer, None
            if checkpointer is not None:
                checkpointer.stop()
            if self._engine is not None:
                if checkpointer is not None:
                    checkpoint(self._engine)  # leave the log copied into the database file
                self._engine.dispose()
            self._engine = None
            self._schema_ready = False

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction; any failure rolls back and raises LedgerError.

        On SQLite the writers of this process take turns on a lock of their own
        first: SQLite's busy handler polls a locked database with growing sleeps
        (1, 2, 5, 10 ... 100 ms), so a writer that arrived while a 3 ms transaction
        ran used to wait 8 ms, and one behind several, seconds; a lock hands over
        at once. Other processes still meet the busy handler.
        """
        engine = self.engine
        try:
            with self._writer_turn(), engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except LedgerError:
            raise
        except (SQLAlchemyError, TypeError, ValueError, OverflowError) as exc:
            error = LedgerUnavailable if _unavailable(exc) else LedgerError
            raise error(f"ledger write failed, nothing was written: {_describe(exc)}") from exc

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Hold this process's write lock of the SQLite file (nothing on other databases)."""
        lock = self._write_lock
        if lock is None:
            yield
            return
        if not lock.acquire(timeout=self.busy_timeout):
            raise LedgerUnavailable(
                "ledger write failed, nothing was written: another writer of this process "
                f"held {self._safe_url()} for {self.busy_timeout:g} s"
            )
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        engine = self.engine
        try:
            with engine.connect() as conn:
                yield conn
        except LedgerError:
            raise
        except SQLAlchemyError as exc:
            error = LedgerUnavailable if _unavailable(exc) else LedgerError
            raise error(f"ledger read failed: {_describe(exc)}") from exc

    def _insert_many(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        for group in _group_by_keys(rows):
            group = with_python_defaults(table, group)
            keys = tuple(group[0])
            execute_many(
                conn, ("insert", table.name, keys), lambda: insert(table), group, column_keys=keys
            )

    def _upsert_many(
        self,
        conn: Connection,
        table: Table,
        rows: list[dict[str, Any]],
        *,
        keep: tuple[str, ...] = (),
    ) -> None:
        """Insert ``rows``, updating the existing row on a primary-key conflict.

        Columns in ``keep`` keep their stored value on update; columns a row does not
        mention are left alone. A row without the columns an insert needs (e.g.
        ``{"id": ..., "status": "filled"}``) is an update of an existing row.
        """
        keys = [c.name for c in table.primary_key.columns]
        required = {
            c.name
            for c in table.columns
            if not c.nullable and c.default is None and c.server_default is None
        }
        name = conn.dialect.name
        for group in _group_by_keys(rows):
            columns = [c for c in group[0] if c not in keys and c not in keep]
            if "updated_at" in table.c and "updated_at" not in columns:
                columns.append("updated_at")
            missing = required - set(group[0])
            if missing:
                self._update_existing(conn, table, group, keys, columns, sorted(missing))
                continue
            if name in ("sqlite", "postgresql"):
                values = with_python_defaults(table, group)
                given = tuple(values[0])
                execute_many(
                    conn,
                    ("upsert", table.name, given, tuple(columns)),
                    functools.partial(_upsert_statement, name, table, keys, columns),
                    values,
                    column_keys=given,
                )
                continue
            for row in group:  # other dialects: update, insert when nothing matched
                where = and_(*(table.c[k] == row[k] for k in keys))
                values = {c: row[c] for c in columns if c in row}
                if "updated_at" in columns and "updated_at" not in values:
                    values["updated_at"] = utcnow()
                if not values or conn.execute(update(table).where(where).values(values)).rowcount:
                    continue
                conn.execute(insert(table), row)

    @staticmethod
    def _update_existing(
        conn: Connection,
        table: Table,
        rows: list[dict[str, Any]],
        keys: list[str],
        columns: list[str],
        missing: list[str],
    ) -> None:
        for row in rows:
            values = {c: row[c] for c in columns if c in row}
            if "updated_at" in columns and "updated_at" not in values:
                values["updated_at"] = utcnow()
            where = and_(*(table.c[k] == row[k] for k in keys))
            if not conn.execute(update(table).where(where).values(values)).rowcount:
                ident = ", ".join(f"{k}={row[k]!r}" for k in keys)
                raise LedgerError(
                    f"{table.name} row {ident} does not exist yet, and a new row needs "
                    f"{', '.join(missing)}"
                )

    # ------------------------------------------------------------------ bots

    def register_bot(self, name: str, spec: dict, spec_hash: str) -> tuple[str, int, bool]:
        """Record a bot spec; a changed spec becomes the bot's next version.

        Parameters
        ----------
        name : str
            Display name; the bot id is its slug (lowercase ``[a-z0-9-]``), or
            ``bot-<hash8>`` when the name has no such characters.
        spec : dict
            The bot spec (JSON-serialisable).
        spec_hash : str
            Content hash of ``spec``; the same hash returns the existing version.

        Returns
        -------
        tuple of (str, int, bool)
            ``(bot_id, version, created_new_version)``.

        Raises
        ------
        LedgerError
            On an empty name or hash, or a spec that is not JSON-serialisable.
        """
        if not isinstance(name, str) or not name.strip():
            raise LedgerError(f"register_bot: name must be a non-empty string, got {name!r}")
        if not isinstance(spec_hash, str) or not spec_hash.strip():
            raise LedgerError(
                f"register_bot: spec_hash must be a non-empty string, got {spec_hash!r}"
            )
        if not isinstance(spec, Mapping):
            raise LedgerError(f"register_bot: spec must be a dict, got {type(spec).__name__}")
        name = name.strip()
        for attempt in range(5):
            try:
                with self._write() as conn:
                    return self._register_bot(conn, name, dict(spec), spec_hash)
            except LedgerError as exc:
                # Another process registered the same bot at the same moment: retry.
                if isinstance(exc.__cause__, IntegrityError) and attempt < 4:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _register_bot(
        self, conn: Connection, name: str, spec: dict, spec_hash: str
    ) -> tuple[str, int, bool]:
        bot_id = conn.execute(select(bots.c.id).where(bots.c.name == name)).scalar()
        if bot_id is None:
            base = _slug(name) or "bot-" + (_slug(spec_hash)[:8] or uuid.uuid4().hex[:8])
            bot_id, n = base, 1
            while conn.execute(select(bots.c.id).where(bots.c.id == bot_id)).first():
                n += 1
                bot_id = f"{base}-{n}"
            conn.execute(insert(bots).values(id=bot_id, name=name, created_at=utcnow()))
        existing = conn.execute(
            select(bot_versions.c.version).where(
                bot_versions.c.bot_id == bot_id, bot_versions.c.spec_hash == spec_hash
            )
        ).scalar()
        if existing is not None:
            return bot_id, int(existing), False
        latest = conn.execute(
            select(func.max(bot_versions.c.version)).where(bot_versions.c.bot_id == bot_id)
        ).scalar()
        version = int(latest or 0) + 1
        conn.execute(
            insert(bot_versions).values(
                bot_id=bot_id, version=version, spec_hash=spec_hash, spec=spec, created_at=utcnow()
            )
        )
        return bot_id, version, True

    def get_bot(self, bot_id: str) -> dict | None:
        """Return a bot with its latest version, spec and latest backtest reference.

        Parameters
        ----------
        bot_id : str
            The bot id (slug).

        Returns
        -------
        dict or None
            ``{id, name, created_at, latest_version, spec, spec_hash, backtest_runs,
            sharpe}`` where ``backtest_runs`` is ``{id, created_at, sharpe,
            max_drawdown, bot_version}`` of the newest backtest of the latest version
            (or ``None``) and ``sharpe`` its Sharpe ratio; ``None`` for an unknown bot.
        """
        with self._read() as conn:
            return self._bot(conn, bot_id)

    def _bot(self, conn: Connection, bot_id: str) -> dict | None:
        row = conn.execute(select(bots).where(bots.c.id == bot_id)).mappings().first()
        if row is None:
            return None
        bot = dict(row)
        latest = (
            conn.execute(
                select(bot_versions)
                .where(bot_versions.c.bot_id == bot_id)
                .order_by(bot_versions.c.version.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        bot["latest_version"] = latest["version"] if latest else None
        bot["spec"] = latest["spec"] if latest else None
        bot["spec_hash"] = latest["spec_hash"] if latest else None
        ref = None
        if latest is not None:
            bt = self._latest_backtest(conn, bot_id, latest["version"])
            if bt is not None:
                ref = {
                    k: bt[k] for k in ("id", "created_at", "sharpe", "max_drawdown", "bot_version")
                }
        bot["backtest_runs"] = ref
        bot["sharpe"] = ref["sharpe"] if ref else None
        return bot

    def list_bots(self) -> list[dict]:
        """Return every bot as :meth:`get_bot` describes it, oldest first."""
        with self._read() as conn:
            ids = conn.execute(select(bots.c.id).order_by(bots.c.created_at, bots.c.id)).scalars()
            return [bot for bot_id in list(ids) if (bot := self._bot(conn, bot_id)) is not None]

    def bot_versions(self, bot_id: str) -> list[dict]:
        """Return the versions of a bot, oldest first (empty for an unknown bot).

        Parameters
        ----------
        bot_id : str
            The bot id.

        Returns
        -------
        list of dict
            ``{id, bot_id, version, spec_hash, spec, created_at}`` per version.
        """
        with self._read() as conn:
            rows = conn.execute(
                select(bot_versions)
                .where(bot_versions.c.bot_id == bot_id)
                .order_by(bot_versions.c.version)
            ).mappings()
            return [dict(r) for r in rows]

    def bot_spec(self, bot_id: str, version: int | None = None) -> dict:
        """Return the spec of one version of a bot (the latest by default).

        Raises
        ------
        LedgerError
            If the bot or the version does not exist.
        """
        stmt = select(bot_versions.c.spec).where(bot_versions.c.bot_id == bot_id)
        if version is None:
            stmt = stmt.order_by(bot_versions.c.version.desc()).limit(1)
        else:
            stmt = stmt.where(bot_versions.c.version == int(version))
        with self._read() as conn:
            spec = conn.execute(stmt).scalar()
        if spec is None:
            which = "any version" if version is None else f"version {version}"
            raise LedgerError(f"bot {bot_id!r} has no {which} in the ledger")
        return spec

    # ------------------------------------------------------------------ backtests

    def record_backtest(self, row: dict) -> str:
        """Record a finished backtest.

        Parameters
        ----------
        row : dict
            Columns of ``backtest_runs``; ``bot_id`` is required. ``id`` defaults to
            a new ``bt_<hex>``, ``bot_version`` to the bot's latest version and
            ``created_at`` to now.

        Returns
        -------
        str
            The backtest id.
        """
        values = _row(backtest_runs, row, "record_backtest")
        if not values.get("bot_id"):
            raise LedgerError("record_backtest: 'bot_id' is required")
        values.setdefault("id", f"bt_{uuid.uuid4().hex[:16]}")
        values.setdefault("created_at", utcnow())
        with self._write() as conn:
            if values.get("bot_version") is None:
                values["bot_version"] = conn.execute(
                    select(func.max(bot_versions.c.version)).where(
                        bot_versions.c.bot_id == values["bot_id"]
                    )
                ).scalar()
            conn.execute(insert(backtest_runs), values)
        return values["id"]

    def latest_backtest(self, bot_id: str, bot_version: int | None = None) -> dict | None:
        """Return the newest backtest of a bot (of one version, when given), or ``None``."""
        with self._read() as conn:
            return self._latest_backtest(conn, bot_id, bot_version)

    def get_backtest(self, backtest_id: str) -> dict | None:
        """Return one ``backtest_runs`` row as a dict, or ``None``."""
        with self._read() as conn:
            row = (
                conn.execute(select(backtest_runs).where(backtest_runs.c.id == backtest_id))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def count_backtests(self, bot_id: str, bot_version: int | None = None) -> int:
        """How many backtests a bot (of one version, when given) has in the ledger."""
        stmt = select(func.count()).select_from(backtest_runs)
        stmt = stmt.where(backtest_runs.c.bot_id == bot_id)
        if bot_version is not None:
            stmt = stmt.where(backtest_runs.c.bot_version == int(bot_version))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    def _latest_backtest(
        self, conn: Connection, bot_id: str, bot_version: int | None
    ) -> dict | None:
        stmt = select(backtest_runs).where(backtest_runs.c.bot_id == bot_id)
        if bot_version is not None:
            stmt = stmt.where(backtest_runs.c.bot_version == int(bot_version))
        stmt = stmt.order_by(backtest_runs.c.created_at.desc(), backtest_runs.c.id.desc()).limit(1)
        row = conn.execute(stmt).mappings().first()
        return dict(row) if row else None

    # ------------------------------------------------------------------ paper runs

    def create_paper_run(self, row: dict, *, check_kill_switch: bool = False) -> None:
        """Record a new paper-trading run.

        Parameters
        ----------
        row : dict
            Columns of ``paper_trading_runs``; ``id`` and ``bot_id`` are required.
            Defaults: ``status="running"``, ``bot_version`` the bot's latest version,
            ``started_at`` and ``last_heartbeat_at`` now,
            ``task_id=id``, ``owner`` this ledger's :attr:`owner`, zero counters and
            P&L, ``final_equity=starting_cash``.
        check_kill_switch : bool
            Read the kill-switch row in the same transaction (``FOR SHARE`` on
            PostgreSQL) and refuse while it is engaged or halts this bot. An engagement
            updates that row ``FOR UPDATE``, so every start is ordered either before an
            engagement (and is then killed by it) or after it (and is refused), on
            every server process sharing the ledger.

        Raises
        ------
        KillSwitchRefusal
            With ``check_kill_switch``, while the kill switch is engaged.
        LedgerError
            On a missing id or bot id, an id that exists already, or bad values.
        """
        values = _row(paper_trading_runs, row, "create_paper_run")
        for key in ("id", "bot_id"):
            if not values.get(key):
                raise LedgerError(f"create_paper_run: {key!r} is required")
        now = utcnow()
        values.setdefault("status", "running")
        values.setdefault("started_at", now)
        values.setdefault("last_heartbeat_at", values["started_at"])
        values.setdefault("task_id", values["id"])
        values.setdefault("owner", self.owner)
        for key in ("num_fills", "bars_seen", "orders_submitted"):
            values.setdefault(key, 0)
        values.setdefault("total_pnl", 0.0)
        values.setdefault("realized_pnl", 0.0)
        values.setdefault("final_equity", values.get("starting_cash"))
        if self.dialect == "postgresql":
            # The owner's advisory lock tells survivors this process is alive.
            self.hold_owner_lock()
        with self._write() as conn:
            if check_kill_switch:
                self._refuse_when_killed(conn, values["bot_id"])
            if "bot_version" not in values:
                values["bot_version"] = conn.execute(
                    select(func.max(bot_versions.c.version)).where(
                        bot_versions.c.bot_id == values["bot_id"]
                    )
                ).scalar()
            conn.execute(insert(paper_trading_runs), values)

    def _refuse_when_killed(self, conn: Connection, bot_id: str) -> None:
        """Lock the kill-switch row for share (creating it first) and refuse when engaged."""
        state = self._kill_switch_row(conn, share=True)
        if state["updated_at"] is None and conn.dialect.name == "postgresql":
            # No row yet: create the released singleton so there is a row to lock.
            conn.execute(
                postgresql.insert(kill_switch)
                .values(id=1, engaged=False, epoch=0, updated_at=utcnow())
                .on_conflict_do_nothing()
            )
            state = self._kill_switch_row(conn, share=True)
        halted = (state.get("scope") or {}).get("halted_bots") or []
        if state["engaged"] and not state["expired"]:
            why = state.get("reason") or "no reason given"
            raise KillSwitchRefusal(
                f"kill switch engaged ({state.get('mode') or 'cancel'}): {why}", state
            )
        if bot_id in halted:
            raise KillSwitchRefusal(f"kill switch engaged (halted): bot {bot_id} halted", state)

    def write_batch(
        self,
        run_id: str,
        *,
        orders: Iterable[Any] = (),
        fills: Iterable[Any] = (),
        equity: Iterable[Any] = (),
        frames: Iterable[Any] = (),
        risk_events: Iterable[Any] = (),
        run_update: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one batch of a running session in ONE transaction.

        Parameters
        ----------
        run_id : str
            The paper run; it must exist.
        orders : iterable of dict
            Order snapshots, upserted by ``id`` (``order_id`` is accepted for ``id``,
            so ``Order.to_dict()`` works): a later snapshot updates status, fills and
            ``updated_at``; ``created_at`` keeps its first value.
        fills : iterable of dict
            New fills (``fill_id`` is accepted for ``id``).
        equity : iterable of dict
            ``{ts, equity, cash}`` points, upserted by ``ts``.
        frames : iterable of dict
            ``{seq, stage, frame}`` rows, or frame envelopes themselves (their
            ``seq`` and ``stage`` are used and the whole envelope is stored).
        risk_events : iterable of dict
            ``{at, order_id, limit, value, threshold, action, message}`` rows.
        run_update : dict, optional
            Columns of the run to update, e.g. counters and P&L. ``last_heartbeat_at``
            is set to now unless given.

        Raises
        ------
        LedgerError
            For an unknown run, an unknown column, a duplicate fill or frame, or a value
            that cannot be stored; then nothing of the batch is written.
        """
        batch = self._prepare_batch(
            run_id, orders, fills, equity, frames, risk_events, run_update, utcnow()
        )
        with self._write() as conn:
            self._apply_batch(conn, batch)

    def write_batches(self, batches: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Write the batches of several runs in ONE transaction.

        Used to stop many sessions at once (kill switch, stop-all) with one commit.

        Parameters
        ----------
        batches : iterable of (str, dict)
            ``(run_id, batch)`` pairs; ``batch`` holds the keyword arguments of
            :meth:`write_batch` (``orders``, ``fills``, ``equity``, ``frames``,
            ``risk_events``, ``run_update``).

        Raises
        ------
        LedgerError
            If any batch is bad; then nothing of any batch is written.
        """
        allowed = {"orders", "fills", "equity", "frames", "risk_events", "run_update"}
        now = utcnow()
        prepared = []
        for run_id, batch in batches:
            unknown = set(batch) - allowed
            if unknown:
                raise LedgerError(
                    f"write_batches: unknown keys {sorted(unknown)} for run {run_id!r}; "
                    f"allowed: {sorted(allowed)}"
                )
            prepared.append(
                self._prepare_batch(
                    run_id,
                    batch.get("orders", ()),
                    batch.get("fills", ()),
                    batch.get("equity", ()),
                    batch.get("frames", ()),
                    batch.get("risk_events", ()),
                    batch.get("run_update"),
                    now,
                )
            )
        if not prepared:
            return
        with self._write() as conn:
            self._apply_batches(conn, prepared)

    def _apply_batches(self, conn: Connection, prepared: list[dict[str, Any]]) -> None:
        """Apply several runs' batches with one statement per table (executemany)."""
        runs = paper_trading_runs
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for batch in prepared:
            values = batch["run_update"]
            by_keys.setdefault(tuple(sorted(values)), []).append(
                {"_run_id": batch["run_id"], **{f"_v_{k}": v for k, v in values.items()}}
            )
        for keys, params in by_keys.items():
            found = execute_many(
                conn,
                ("update runs", keys),
                lambda keys=keys: (
                    update(runs)
                    .where(runs.c.id == bindparam("_run_id"))
                    .values({k: bindparam(f"_v_{k}") for k in keys})
                ),
                params,
            )
            if found != len(params):
                missing = [p["_run_id"] for p in params]
                raise LedgerError(f"write_batches: unknown paper run among {missing}")
        merged = {key: [] for key in ("orders", "fills", "equity", "frames", "risk_events")}
        for batch in prepared:
            for key, rows in merged.items():
                rows.extend(batch[key])
        if merged["orders"]:
            self._upsert_many(conn, paper_orders, merged["orders"], keep=("created_at",))
        if merged["fills"]:
            self._insert_many(conn, paper_fills, merged["fills"])
        if merged["equity"]:
            self._upsert_many(conn, paper_equity, merged["equity"])
        if merged["frames"]:
            self._insert_many(conn, paper_frames, merged["frames"])
        if merged["risk_events"]:
            self._insert_many(conn, risk_events_table, merged["risk_events"])

    def _prepare_batch(
        self,
        run_id: str,
        orders: Iterable[Any],
        fills: Iterable[Any],
        equity: Iterable[Any],
        frames: Iterable[Any],
        risk_events: Iterable[Any],
        run_update: Mapping[str, Any] | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Validate one batch before any SQL runs."""
        fixed = {"paper_run_id": run_id}
        order_rows = [
            _row(paper_orders, o, "order", aliases={"order_id": "id"}, fixed=fixed) for o in orders
        ]
        fill_rows = [
            _row(paper_fills, f, "fill", aliases={"fill_id": "id"}, fixed=fixed) for f in fills
        ]
        for rows in (order_rows, fill_rows):
            for r in rows:
                if not r.get("id"):
                    raise LedgerError(f"write_batch: every order and fill needs an 'id': {r}")
        values = _fields(paper_trading_runs, run_update or {}, "run_update")
        values.setdefault("last_heartbeat_at", now)
        return {
            "run_id": run_id,
            "run_update": values,
            "orders": order_rows,
            "fills": fill_rows,
            "equity": [_row(paper_equity, e, "equity point", fixed=fixed) for e in equity],
            "frames": [self._frame_row(run_id, f) for f in frames],
            "risk_events": [
                _row(risk_events_table, r, "risk event", fixed=fixed) for r in risk_events
            ],
        }

    def _apply_batch(self, conn: Connection, batch: Mapping[str, Any]) -> None:
        self._update_run(conn, batch["run_id"], batch["run_update"])
        if batch["orders"]:
            self._upsert_many(conn, paper_orders, batch["orders"], keep=("created_at",))
        if batch["fills"]:
            self._insert_many(conn, paper_fills, batch["fills"])
        if batch["equity"]:
            self._upsert_many(conn, paper_equity, batch["equity"])
        if batch["frames"]:
            self._insert_many(conn, paper_frames, batch["frames"])
        if batch["risk_events"]:
            self._insert_many(conn, risk_events_table, batch["risk_events"])

    @staticmethod
    def _frame_row(run_id: str, data: Any) -> dict[str, Any]:
        frame = dict(_as_mapping(data, "frame"))
        if "frame" in frame and isinstance(frame["frame"], Mapping):
            row = _row(paper_frames, frame, "frame", fixed={"paper_run_id": run_id})
            row.setdefault("stage", row["frame"].get("stage"))
            row.setdefault("seq", row["frame"].get("seq"))
        else:  # a frame envelope
            row = {
                "paper_run_id": run_id,
                "seq": frame.get("seq"),
                "stage": frame.get("stage"),
                "frame": frame,
            }
        seq = row.get("seq")
        if isinstance(seq, bool) or not isinstance(_plain(seq), int):
            raise LedgerError(f"frame: 'seq' must be an integer, got {seq!r}")
        row["seq"] = int(_plain(seq))
        if not row.get("stage"):
            raise LedgerError(f"frame {row['seq']}: 'stage' is required")
        return row

    @staticmethod
    def _update_run(conn: Connection, run_id: str, values: Mapping[str, Any]) -> None:
        if not values:
            found = conn.execute(
                select(paper_trading_runs.c.id).where(paper_trading_runs.c.id == run_id)
            ).first()
        else:
            found = conn.execute(
                update(paper_trading_runs).where(paper_trading_runs.c.id == run_id).values(**values)
            ).rowcount
        if not found:
            raise LedgerError(f"unknown paper run {run_id!r}")

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Update columns of a paper run.

        Raises
        ------
        LedgerError
            For an unknown run or column.
        """
        values = _fields(paper_trading_runs, fields, "update_run")
        with self._write() as conn:
            self._update_run(conn, run_id, values)

    def stop_runs(
        self,
        run_ids: list[str],
        *,
        status: str,
        reason: str,
        at: datetime,
        cancel_orders: tuple[str, str] | None = None,
    ) -> int:
        """Set the final status of several paper runs, and cancel their open orders.

        One transaction with one statement per table, whatever the number of runs:
        the first, short write of a kill switch or a stop-all. The runs' closing
        batches (counters, state, frames) follow with :meth:`write_batches`.

        Parameters
        ----------
        run_ids : list of str
            The paper runs; every one must exist.
        status, reason : str
            The runs' final ``status`` and ``stop_reason``.
        at : datetime
            Their ``ended_at`` (and ``last_heartbeat_at``).
        cancel_orders : (str, str), optional
            ``(reason_code, reason)``: their ``new``, ``accepted`` and
            ``partially_filled`` orders become ``cancelled`` with these.

        Returns
        -------
        int
            The number of runs updated.

        Raises
        ------
        LedgerError
            For an unknown run or a bad value; then nothing is written.
        """
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return 0
        values = _fields(
            paper_trading_runs,
            {"status": status, "stop_reason": reason, "ended_at": at, "last_heartbeat_at": at},
            "stop_runs",
        )
        runs, orders = paper_trading_runs, paper_orders
        open_statuses = [s.value for s in OrderStatus if s.is_open]
        with self._write() as conn:
            found = 0
            for chunk in _chunks(ids, _IN_LIST_CHUNK):
                found += conn.execute(
                    update(runs).where(runs.c.id.in_(chunk)).values(values)
                ).rowcount
                if cancel_orders is not None:
                    code, why = cancel_orders
                    conn.execute(
                        update(orders)
                        .where(orders.c.paper_run_id.in_(chunk), orders.c.status.in_(open_statuses))
                        .values(status="cancelled", reason_code=code, reason=why, updated_at=at)
                    )
            if found != len(ids):
                raise LedgerError(f"stop_runs: unknown paper run among {ids}")
        return found

    def finalize_paper_run(self, run_id: str, *, recount: bool = False, **fields: Any) -> None:
        """Close a paper run: status (default ``"stopped"``), ``ended_at`` now, and ``fields``.

        When neither ``fields`` nor the row has a ``total_pnl``, it is computed from the
        run's fills and last equity point, as :meth:`mark_crashed` does. With
        ``recount``, ``num_fills`` and the P&L columns always are (in the same
        transaction): the row then counts exactly the fills the ledger holds.

        Raises
        ------
        LedgerError
            For an unknown run or column.
        """
        values = _fields(paper_trading_runs, fields, "finalize_paper_run")
        now = utcnow()
        values.setdefault("status", "stopped")
        values.setdefault("ended_at", now)
        values.setdefault("last_heartbeat_at", now)
        with self._write() as conn:
            row = (
                conn.execute(
                    select(paper_trading_runs.c.total_pnl, paper_trading_runs.c.starting_cash)
                    .where(paper_trading_runs.c.id == run_id)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if row is None:
                raise LedgerError(f"finalize_paper_run: unknown paper run {run_id!r}")
            if recount or ("total_pnl" not in values and row["total_pnl"] is None):
                summary = self._recompute(conn, run_id, row["starting_cash"])
                values = {**summary, **values}
            self._update_run(conn, run_id, values)

    def _recompute(self, conn: Connection, run_id: str, starting_cash: float | None) -> dict:
        """P&L and fill count of a run from what the ledger holds about it."""
        fills = (
            conn.execute(
                select(
                    paper_fills.c.symbol,
                    paper_fills.c.side,
                    paper_fills.c.qty,
                    paper_fills.c.price,
                    paper_fills.c.commission,
                    paper_fills.c.filled_at,
                    paper_fills.c.id,
                ).where(paper_fills.c.paper_run_id == run_id)
            )
            .mappings()
            .all()
        )
        fills = sorted(fills, key=_fill_order)
        realized, unrealized, commission = _position_pnl(fills)
        last_equity = conn.execute(
            select(paper_equity.c.equity)
            .where(paper_equity.c.paper_run_id == run_id)
            .order_by(paper_equity.c.ts.desc())
            .limit(1)
        ).scalar()
        if last_equity is not None and starting_cash is not None:
            total = float(last_equity) - float(starting_cash)
            final = float(last_equity)
        else:
            total = realized + unrealized - commission
            final = None if starting_cash is None else float(starting_cash) + total
            if last_equity is not None:
                final = float(last_equity)
        return {
            "total_pnl": total,
            "realized_pnl": realized - commission,
            "final_equity": final,
            "num_fills": len(fills),
        }

    def mark_crashed(
        self,
        older_than_seconds: float,
        exclude_owner: str | None = None,
        run_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Mark running runs whose heartbeat stopped as crashed.

        Runs with status ``running`` whose ``last_heartbeat_at`` (or ``started_at``
        when there is none) is older than ``older_than_seconds`` get status
        ``crashed``, ``ended_at`` now, ``stop_reason`` ``"crashed: process gone"``,
        ``num_fills`` recounted from ``paper_fills`` and ``total_pnl``,
        ``realized_pnl`` and ``final_equity`` recomputed from the fills and the last
        equity point.

        Parameters
        ----------
        older_than_seconds : float
            Heartbeat age, in seconds, after which a run counts as gone.
        exclude_owner : str, optional
            Skip the runs of this owner (e.g. this process, whose sessions are alive).
        run_ids : iterable of str, optional
            Only consider these runs.

        Returns
        -------
        list of str
            Ids of the runs marked crashed.
        """
        runs = paper_trading_runs
        cutoff = utcnow() - timedelta(seconds=float(older_than_seconds))
        stmt = select(runs.c.id, runs.c.starting_cash).where(
            runs.c.status == "running",
            func.coalesce(runs.c.last_heartbeat_at, runs.c.started_at) < cutoff,
        )
        if exclude_owner is not None:
            stmt = stmt.where(or_(runs.c.owner.is_(None), runs.c.owner != exclude_owner))
        if run_ids is not None:
            ids = list(run_ids)
            if not ids:
                return []
            stmt = stmt.where(runs.c.id.in_(ids))
        crashed: list[str] = []
        with self._write() as conn:
            for run_id, starting_cash in conn.execute(stmt.with_for_update()).all():
                values = self._recompute(conn, run_id, starting_cash)
                values.update(
                    status="crashed", ended_at=utcnow(), stop_reason="crashed: process gone"
                )
                done = conn.execute(
                    update(runs)
                    .where(runs.c.id == run_id, runs.c.status == "running")
                    .values(**values)
                ).rowcount
                if done:
                    crashed.append(run_id)
        return crashed

    def get_run(self, run_id: str) -> dict | None:
        """Return one paper run as a dict, or ``None``."""
        with self._read() as conn:
            row = (
                conn.execute(select(paper_trading_runs).where(paper_trading_runs.c.id == run_id))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def list_runs(
        self, status: str | None = None, bot_id: str | None = None, limit: int | None = None
    ) -> list[dict]:
        """Return paper runs, newest first.

        Parameters
        ----------
        status : str, optional
            Only runs with this status.
        bot_id : str, optional
            Only runs of this bot.
        limit : int, optional
            At most this many.
        """
        with self._read() as conn:
            return [
                dict(r) for r in conn.execute(self._runs_query(status, bot_id, limit)).mappings()
            ]

    @staticmethod
    def _runs_query(status: str | None, bot_id: str | None, limit: int | None) -> Select:
        runs = paper_trading_runs
        stmt = select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc())
        if status is not None:
            stmt = stmt.where(runs.c.status == status)
        if bot_id is not None:
            stmt = stmt.where(runs.c.bot_id == bot_id)
        if limit is not None:
            stmt = stmt.limit(int(limit))
        return stmt

    def running_runs(self) -> list[dict]:
        """Return the runs whose status is ``running``, newest first."""
        return self.list_runs(status="running")

    # ------------------------------------------------------------------ audit

    def audit(self, actor: str, action: str, detail: dict) -> None:
        """Append a row to the audit log (gate overrides, kill-switch changes, ...).

        Parameters
        ----------
        actor : str
            Who did it (user, ``"api"``, ``"session:<id>"``, ...).
        action : str
            What was done, e.g. ``"gate.override"``.
        detail : dict
            JSON-serialisable details.
        """
        with self._write() as conn:
            self._audit(conn, actor, action, detail)

    @staticmethod
    def _audit(conn: Connection, actor: str, action: str, detail: Any) -> None:
        if not actor or not action:
            raise LedgerError("audit: 'actor' and 'action' are required")
        conn.execute(
            insert(audit_log).values(at=utcnow(), actor=actor, action=action, detail=detail)
        )

    def audit_rows(self, action: str | None = None) -> pd.DataFrame:
        """Return the audit log (one action only, when given), oldest first."""
        stmt = select(audit_log).order_by(audit_log.c.id)
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        return self._frame(stmt, audit_log)

    # ------------------------------------------------------------------ kill switch

    _KILL_SWITCH_DEFAULT: dict[str, Any] = {
        "epoch": 0,
        "engaged": False,
        "mode": None,
        "reason": None,
        "engaged_at": None,
        "ttl_seconds": None,
        "scope": None,
        "updated_at": None,
    }

    def kill_switch_state(self) -> dict:
        """Return the kill-switch row.

        Returns
        -------
        dict
            ``{engaged, mode, reason, engaged_at, ttl_seconds, scope, updated_at,
            expires_at, expired}``; ``expired`` is True when a TTL has run out.
            Disengaged defaults when it was never set.
        """
        with self._read() as conn:
            return self._kill_switch_row(conn)

    def _kill_switch_row(
        self, conn: Connection, *, lock: bool = False, share: bool = False
    ) -> dict:
        stmt = select(kill_switch).where(kill_switch.c.id == 1)
        if lock:
            stmt = stmt.with_for_update()
        elif share:
            stmt = stmt.with_for_update(read=True)
        row = conn.execute(stmt).mappings().first()
        state = dict(self._KILL_SWITCH_DEFAULT)
        if row is not None:
            state.update({k: v for k, v in row.items() if k != "id"})
            state["engaged"] = bool(state["engaged"])
        expires = None
        if state["engaged"] and state["engaged_at"] and state["ttl_seconds"] is not None:
            expires = state["engaged_at"] + timedelta(seconds=state["ttl_seconds"])
        state["expires_at"] = expires
        state["expired"] = expires is not None and utcnow() >= expires
        return state

    def set_kill_switch(
        self,
        engaged: bool,
        mode: str,
        reason: str,
        ttl_seconds: float | None = None,
        scope: dict | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
        detail: dict | None = None,
    ) -> dict:
        """Set the kill-switch row (id 1) and return the new state.

        ``engaged_at`` is set when the switch goes from released to engaged and kept
        while it stays engaged; that transition also bumps ``epoch``. On PostgreSQL
        the timestamps come from the database clock (one clock for every process)
        and a ``NOTIFY`` on :data:`KILL_SWITCH_CHANNEL` tells the other processes,
        on commit, in the same transaction as the row: only kills (any engagement)
        and resets (released after engaged) are announced, with the payload
        ``{"action": "kill"|"reset", "epoch", "mode", "reason", "engaged_at"}``;
        per-bot halts and releases as ``{"action": "kill"|"reset", "epoch", "bots"}``
        (the bots whose halt changed; the processes then re-read the row).

        Parameters
        ----------
        engaged : bool
            Engage (True) or release (False).
        mode : str
            E.g. ``"halt"`` or ``"flatten"``.
        reason : str
            Why; shown to every client.
        ttl_seconds : float, optional
            Seconds after which an engagement lapses; ``None``: latched until reset.
        scope : dict, optional
            What it covers (e.g. ``{"bots": [...]}``); ``None``: everything.
        actor : str, optional
            When given, an audit row ``kill_switch.engage``/``kill_switch.reset`` is
            written in the same transaction.
        action : str, optional
            The audit row's action instead of ``kill_switch.engage``/``kill_switch.reset``.
        detail : dict, optional
            The audit row's detail instead of ``{mode, reason, ttl_seconds, scope}``.
        """
        if ttl_seconds is not None and not (ttl_seconds > 0 and math.isfinite(ttl_seconds)):
            raise LedgerError(
                f"set_kill_switch: ttl_seconds must be > 0 or None, got {ttl_seconds}"
            )
        now = utcnow()
        with self._write() as conn:
            before = self._kill_switch_row(conn, lock=True)
            postgres = conn.dialect.name == "postgresql"
            if postgres:  # the database clock, shared by every server process
                now = conn.execute(select(func.clock_timestamp())).scalar_one()
            engaged_at = None
            if engaged:
                engaged_at = before["engaged_at"] if before["engaged"] else now
            epoch = int(before.get("epoch") or 0)
            if engaged and not before["engaged"]:
                epoch += 1
            values = {
                "id": 1,
                "epoch": epoch,
                "engaged": bool(engaged),
                "mode": mode,
                "reason": reason,
                "engaged_at": engaged_at,
                "ttl_seconds": None if ttl_seconds is None else float(ttl_seconds),
                "scope": scope,
                "updated_at": now,
            }
            self._upsert_many(conn, kill_switch, [values])
            if actor is not None:
                default_action = "kill_switch.engage" if engaged else "kill_switch.reset"
                if detail is None:
                    detail = {
                        "mode": mode,
                        "reason": reason,
                        "ttl_seconds": ttl_seconds,
                        "scope": scope,
                    }
                self._audit(conn, actor, action or default_action, detail)
            state = self._kill_switch_row(conn)
            action = "kill" if engaged else "reset" if before["engaged"] else None
            if postgres and action is not None:
                payload = {
                    "action": action,
                    "epoch": epoch,
                    "mode": mode,
                    "reason": (reason or "")[:2000],
                    "engaged_at": engaged_at,
                }
                conn.execute(select(func.pg_notify(KILL_SWITCH_CHANNEL, _json_dumps(payload))))
            halted = set((scope or {}).get("halted_bots") or [])
            halted_before = set((before.get("scope") or {}).get("halted_bots") or [])
            if postgres and halted != halted_before:  # per-bot halts and releases
                payload = {
                    "action": "kill" if halted - halted_before else "reset",
                    "epoch": epoch,
                    "bots": sorted(halted ^ halted_before),
                }
                conn.execute(select(func.pg_notify(KILL_SWITCH_CHANNEL, _json_dumps(payload))))
        return state

    # ------------------------------------------------------------------ cluster

    def record_kill_ack(
        self, epoch: int, process: str, sessions: int, elapsed_ms: float, detail: dict
    ) -> None:
        """Acknowledge kill-switch ``epoch`` for ``process`` (upserted; one row per process).

        ``done_at`` is the database clock (``clock_timestamp()``) on PostgreSQL, so the
        acks of processes on several machines compare with ``engaged_at`` directly.
        """
        with self._write() as conn:
            done_at: Any = utcnow()
            if conn.dialect.name == "postgresql":
                done_at = conn.execute(select(func.clock_timestamp())).scalar_one()
            row = {
                "epoch": int(epoch),
                "process": process,
                "sessions": int(sessions),
                "elapsed_ms": float(elapsed_ms),
                "detail": detail,
                "done_at": done_at,
            }
            self._upsert_many(conn, kill_switch_acks, [row])

    def kill_acks(self, epoch: int) -> list[dict]:
        """The acknowledgements of kill-switch ``epoch``, earliest first."""
        acks = kill_switch_acks
        stmt = select(acks).where(acks.c.epoch == int(epoch)).order_by(acks.c.done_at)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def connected_applications(self, prefix: str) -> list[str]:
        """PostgreSQL: ``application_name`` of this database's sessions starting with ``prefix``.

        Server processes name their kill-switch listener connection
        ``alphaswarm-kill:<owner>``, so this lists the processes listening now.
        """
        if self.dialect != "postgresql":
            return []
        with self._read() as conn:
            rows = conn.execute(
                text(
                    "SELECT application_name FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name LIKE :p "
                    "ORDER BY application_name"
                ),
                {"p": prefix.replace("%", r"\%").replace("_", r"\_") + "%"},
            )
            return [r[0] for r in rows]

    def hold_owner_lock(self) -> bool:
        """PostgreSQL: hold this owner's advisory lock on a connection outside the pool.

        Idempotent and cheap when the lock is held (a ``SELECT 1`` on that connection
        checks it is still alive; a cut connection is replaced and the lock taken
        again). Returns True when the lock is held. SQLite: does nothing, returns False.
        """
        if self.dialect != "postgresql":
            return False
        with self._owner_lock:
            conn = self._owner_conn
            if conn is not None:
                try:
                    conn.exec_driver_sql("SELECT 1")
                    conn.commit()
                    return True
                except SQLAlchemyError:
                    _log.warning("owner lock connection of %s lost; reconnecting", self.owner)
                    with contextlib.suppress(Exception):
                        conn.close()
                    self._owner_conn = None
            try:
                conn = self.engine.connect()
                conn.detach()  # a session-level lock must live on a connection of its own
                conn.execute(
                    text("SELECT set_config('application_name', :n, false)"),
                    {"n": f"alphaswarm-owner:{self.owner}"[:63]},
                )
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": owner_lock_key(self.owner)}
                ).scalar()
                conn.commit()
            except SQLAlchemyError as exc:
                _log.warning("could not take the owner lock of %s: %s", self.owner, exc)
                return False
            if not got:
                _log.warning("the owner lock of %s is held by another connection", self.owner)
                conn.close()
                return False
            self._owner_conn = conn
            return True

    def release_owner_lock(self) -> None:
        """Close the owner-lock connection (the lock goes with it)."""
        with self._owner_lock:
            conn, self._owner_conn = self._owner_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def owner_alive(self, owner: str) -> bool | None:
        """PostgreSQL: whether a process holds ``owner``'s advisory lock; None on SQLite.

        Probes with ``pg_try_advisory_xact_lock`` (released at once by the rollback), so
        it never keeps the lock from its owner.
        """
        if self.dialect != "postgresql":
            return None
        with self._read() as conn:
            free = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": owner_lock_key(owner)}
            ).scalar()
            conn.rollback()
        return not free

    # ------------------------------------------------------------------ pandas reads

    def _frame(self, stmt: Select, table: Table) -> pd.DataFrame:
        with self._read() as conn:
            result = conn.execute(stmt)
            return _to_frame(result, table)

    def runs(self) -> pd.DataFrame:
        """Return all paper runs as a DataFrame, newest first."""
        return self._frame(self._runs_query(None, None, None), paper_trading_runs)

    def fills(self, run_id: str) -> pd.DataFrame:
        """Return the fills of a paper run in fill order."""
        stmt = (
            select(paper_fills)
            .where(paper_fills.c.paper_run_id == run_id)
            .order_by(paper_fills.c.filled_at, paper_fills.c.id)
        )
        return self._frame(stmt, paper_fills)

    def orders(self, run_id: str) -> pd.DataFrame:
        """Return the orders of a paper run (latest state of each) in creation order."""
        stmt = (
            select(paper_orders)
            .where(paper_orders.c.paper_run_id == run_id)
            .order_by(paper_orders.c.created_at, paper_orders.c.id)
        )
        return self._frame(stmt, paper_orders)

    def equity(self, run_id: str) -> pd.DataFrame:
        """Return the equity curve of a paper run: ``paper_run_id, ts, equity, cash``."""
        stmt = (
            select(paper_equity)
            .where(paper_equity.c.paper_run_id == run_id)
            .order_by(paper_equity.c.ts)
        )
        return self._frame(stmt, paper_equity)

    def frames(self, run_id: str, since_seq: int | None = None) -> pd.DataFrame:
        """Return the stored frames of a run in ``seq`` order.

        Parameters
        ----------
        run_id : str
            The paper run.
        since_seq : int, optional
            Only frames with ``seq > since_seq`` (the ones a client holding
            ``since_seq`` has not seen).
        """
        return self._frame(self._frames_query(run_id, since_seq), paper_frames)

    def frames_after(self, run_id: str, seq: int) -> list[dict]:
        """Return the frame envelopes of a run with ``seq`` greater than ``seq``, in order."""
        with self._read() as conn:
            stmt = self._frames_query(run_id, seq).with_only_columns(paper_frames.c.frame)
            return list(conn.execute(stmt).scalars())

    @staticmethod
    def _frames_query(run_id: str, since_seq: int | None) -> Select:
        stmt = (
            select(paper_frames)
            .where(paper_frames.c.paper_run_id == run_id)
            .order_by(paper_frames.c.seq)
        )
        if since_seq is not None:
            stmt = stmt.where(paper_frames.c.seq > int(since_seq))
        return stmt

    def backtests(self, bot_id: str | None = None) -> pd.DataFrame:
        """Return backtest runs (of one bot, when given), newest first."""
        stmt = select(backtest_runs).order_by(
            backtest_runs.c.created_at.desc(), backtest_runs.c.id.desc()
        )
        if bot_id is not None:
            stmt = stmt.where(backtest_runs.c.bot_id == bot_id)
        return self._frame(stmt, backtest_runs)

    def risk_events(self, run_id: str | None = None) -> pd.DataFrame:
        """Return risk denials and breaches (of one run, when given), oldest first."""
        stmt = select(risk_events_table).order_by(risk_events_table.c.id)
        if run_id is not None:
            stmt = stmt.where(risk_events_table.c.paper_run_id == run_id)
        return self._frame(stmt, risk_events_table)

    def sql(self, query: str, **params: Any) -> pd.DataFrame:
        """Run a SQL query with bound parameters and return the result as a DataFrame.

        Parameters
        ----------
        query : str
            SQL text; refer to parameters as ``:name``.
        **params
            Values bound to the ``:name`` parameters (never formatted into the text).

        Returns
        -------
        pandas.DataFrame
            Known timestamp columns (``started_at``, ``filled_at``, ``ts``, ...) are
            converted to timezone-aware UTC.

        Examples
        --------
        >>> ledger.sql(  # doctest: +SKIP
        ...     "SELECT order_id, qty, price FROM paper_fills WHERE paper_run_id = :run",
        ...     run="pr_123",
        ... )
        """
        with self._read() as conn:
            result = conn.execute(text(query), params)
            if not result.returns_rows:
                raise LedgerError("sql: the statement returns no rows; use it for queries only")
            return _to_frame(result, None)


def _to_frame(result: CursorResult, table: Table | None) -> pd.DataFrame:
    """Build a DataFrame with dtypes taken from the table (or column names, for raw SQL)."""
    keys = list(result.keys())
    df = pd.DataFrame.from_records(list(result.fetchall()), columns=keys)
    for name in keys:
        column = table.c.get(name) if table is not None else None
        kind = column.type if column is not None else None
        if isinstance(kind, UTCDateTime) or (kind is None and name in _TIMESTAMP_COLUMNS):
            try:
                df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601")
            except (ValueError, TypeError):
                pass  # not timestamps after all (an alias in raw SQL): leave as is
        elif isinstance(kind, Boolean):
            df[name] = df[name].astype("boolean" if column.nullable else bool)
        elif isinstance(kind, Integer):
            df[name] = df[name].astype("Int64" if column.nullable else "int64")
        elif isinstance(kind, Float):
            df[name] = df[name].astype("float64")
    return df
