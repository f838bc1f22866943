"""The ledger schema: SQLAlchemy Core tables, one per kind of record.

The tables are plain :class:`sqlalchemy.Table` objects on one :data:`metadata` (no
ORM). The same schema serves SQLite (the embedded default) and PostgreSQL. It is
created and upgraded by the Alembic migrations in ``alphaswarm/ledger/migrations``;
a test checks that those migrations and this module agree.

Times are stored as UTC. :class:`UTCDateTime` accepts timezone-aware datetimes
(naive ones are taken as UTC), pandas Timestamps, ISO-8601 strings and epoch seconds,
and always returns timezone-aware UTC datetimes. PostgreSQL stores a ``timestamptz``;
SQLite, which has no timezone-aware type, stores ISO-8601 text that names its zone
(``2024-01-02 15:04:00.000000+00:00``), so the file read with any tool says UTC.

Two clocks appear in the ledger and their columns say which one they hold:

- **bar time**, the time of the market bar an event belongs to:
  ``paper_fills.filled_at``, ``paper_orders.created_at``/``updated_at``,
  ``paper_equity.ts``, ``paper_trading_runs.last_bar_ts``, ``risk_events.at`` (for a
  limit checked on a bar), ``backtest_runs.start_ts``/``end_ts``;
- **recorded (wall) time**, when the kit wrote or did something: every other
  ``*_at`` column, and ``recorded_at`` beside the bar-time columns of
  ``paper_fills``, ``paper_orders`` and ``risk_events``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.engine import Dialect

__all__ = [
    "NAMING_CONVENTION",
    "SQLITE_UTC_FORMAT",
    "UTCDateTime",
    "audit_log",
    "backtest_runs",
    "bot_versions",
    "bots",
    "kill_switch",
    "kill_switch_acks",
    "metadata",
    "paper_equity",
    "paper_fills",
    "paper_frame_blocks",
    "paper_frames",
    "paper_orders",
    "paper_trading_runs",
    "risk_events",
    "sweep_trials",
    "sweeps",
    "to_utc",
    "utcnow",
]

#: Constraint names are deterministic so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def to_utc(value: Any) -> datetime | None:
    """Interpret ``value`` as a point in time and return it as an aware UTC datetime.

    Parameters
    ----------
    value
        ``None``, a datetime (naive values are taken as UTC), a pandas Timestamp, an
        ISO-8601 string (a trailing ``Z`` is allowed) or epoch seconds.

    Returns
    -------
    datetime or None
        The same instant in UTC, or ``None`` for ``None`` / NaT.

    Raises
    ------
    ValueError
        If ``value`` cannot be read as a timestamp.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        # pandas.NaT is a datetime subclass whose comparisons are all False.
        if value != value:
            return None
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, bool):
        raise ValueError(f"cannot interpret {value!r} as a timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"cannot interpret {value!r} as a timestamp")
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
        return to_utc(parsed)
    to_pydatetime = getattr(value, "to_pydatetime", None)
    if to_pydatetime is not None:
        return to_utc(to_pydatetime())
    raise ValueError(f"cannot interpret {value!r} ({type(value).__name__}) as a timestamp")


#: How SQLite stores a UTC time: fixed width ISO-8601 text ending in its zone, so the
#: text sorts in time order and reads as UTC in any tool.
SQLITE_UTC_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d+00:00"
)


#: Fewest values :func:`_sqlite_utc_texts` formats with numpy (fewer: one at a time).
_VECTOR_MIN = 64
#: Largest epoch seconds whose microseconds a float holds exactly (year 2255).
_EXACT_SECONDS = 2**53 / 1e6
_UTC_SUFFIX = np.frombuffer(b"+00:00", np.uint8)


def _sqlite_utc_texts(values: Sequence[Any], one: Callable[[Any], Any]) -> list[Any]:
    """``one`` of each value; many aware UTC datetimes are formatted by numpy at once.

    ``values`` may also be a ``datetime64[us]`` array of UTC instants. The text is
    :data:`SQLITE_UTC_FORMAT`'s (a test compares them), at less than half the cost
    of a call per value: a paper replay binds one time per bar.
    """
    if isinstance(values, np.ndarray) and values.dtype == np.dtype("M8[us]"):
        return _utc_texts(values)
    n = len(values)
    if n < _VECTOR_MIN or not all(type(v) is datetime and v.tzinfo is UTC for v in values):
        return list(map(one, values))
    seconds = np.fromiter(map(datetime.timestamp, values), np.float64, n)
    if np.abs(seconds).max() >= _EXACT_SECONDS:
        return list(map(one, values))
    return _utc_texts(np.rint(seconds * 1e6).astype(np.int64).astype("M8[us]"))


def _utc_texts(micros: np.ndarray) -> list[str]:
    """:data:`SQLITE_UTC_FORMAT` text of each ``datetime64[us]`` UTC instant."""
    n = len(micros)
    text = np.datetime_as_string(micros, unit="us").astype("S26")  # 2024-01-02T14:30:00.000000
    if text.dtype.itemsize != 26:  # pragma: no cover - a five-digit year: not this layout
        return [SQLITE_UTC_FORMAT % _fields(m) for m in micros.astype(object)]
    chars = np.empty((n, 32), np.uint8)
    chars[:, :26] = text.view(np.uint8).reshape(n, 26)
    chars[:, 10] = ord(" ")
    chars[:, 26:] = _UTC_SUFFIX
    return chars.view("S32").ravel().astype("U32").tolist()


def _fields(when: datetime) -> dict[str, int]:
    names = ("year", "month", "day", "hour", "minute", "second", "microsecond")
    return {name: getattr(when, name) for name in names}


class UTCDateTime(TypeDecorator):
    """A ``DateTime(timezone=True)`` that stores UTC and always returns aware UTC values.

    PostgreSQL gets a ``timestamptz``. SQLite keeps datetimes as text: values are
    converted to UTC and written as :data:`SQLITE_UTC_FORMAT` (``...+00:00``); text
    without an offset (rows written before the zone was stored) is read as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        """SQLite: text with the ``+00:00`` zone; elsewhere a timezone-aware type."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(
                sqlite.DATETIME(timezone=True, storage_format=SQLITE_UTC_FORMAT)
            )
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        """Convert ``value`` to UTC (naive UTC for SQLite)."""
        if type(value) is datetime and value.tzinfo is UTC:  # the usual value, at once
            return value.replace(tzinfo=None) if dialect.name == "sqlite" else value
        ts = to_utc(value)
        if ts is not None and dialect.name == "sqlite":
            return ts.replace(tzinfo=None)
        return ts

    def bind_processor(self, dialect: Dialect) -> Any:
        """SQLite: an aware UTC datetime becomes its text in one C call.

        ``isoformat(" ", "microseconds")`` of a UTC datetime is exactly
        :data:`SQLITE_UTC_FORMAT`; any other value takes the general path
        (:meth:`process_bind_param`, then SQLite's own formatting).
        """
        general = super().bind_processor(dialect)
        if dialect.name != "sqlite" or general is None:
            return general

        def process(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is UTC:
                return value.isoformat(" ", "microseconds")
            return general(value)

        process.many = lambda values: _sqlite_utc_texts(values, process)  # type: ignore[attr-defined]
        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return ``value`` as an aware UTC datetime."""
        return to_utc(value)


def _ts(name: str, **kwargs: Any) -> Column:
    return Column(name, UTCDateTime(), **kwargs)


def _json() -> JSON:
    # Python None is stored as SQL NULL, not as the JSON text "null".
    return JSON(none_as_null=True)


bots = Table(
    "bots",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    _ts("created_at", nullable=False, default=utcnow),
)

bot_versions = Table(
    "bot_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bot_id", String(128), ForeignKey("bots.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec_hash", String(128), nullable=False),
    Column("spec", _json(), nullable=False),
    _ts("created_at", nullable=False, default=utcnow),
    UniqueConstraint("bot_id", "version"),
    UniqueConstraint("bot_id", "spec_hash"),
)

backtest_runs = Table(
    "backtest_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("bot_id", String(128), nullable=False, index=True),
    Column("bot_version", Integer),
    _ts("started_at"),
    _ts("ended_at"),
    _ts("created_at", nullable=False, default=utcnow),
    Column("bars", Integer),
    _ts("start_ts"),
    _ts("end_ts"),
    Column("sharpe", Float),
    Column("sortino", Float),
    Column("max_drawdown", Float),
    Column("total_return", Float),
    Column("num_trades", Integer),
    Column("win_rate", Float),
    Column("exposure", Float),
    Column("final_equity", Float),
    Column("starting_cash", Float),
    Column("fill_rule", String(64)),
    Column("config", _json()),
)

paper_trading_runs = Table(
    "paper_trading_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("bot_id", String(128), nullable=False, index=True),
    Column("bot_version", Integer),
    Column("task_id", String(64)),
    Column("run_name", String(256)),
    Column("status", String(32), nullable=False, default="running", index=True),
    Column("starting_cash", Float),
    Column("total_pnl", Float),
    Column("realized_pnl", Float),
    Column("final_equity", Float),
    Column("max_drawdown", Float),
    Column("num_fills", Integer, nullable=False, default=0),
    Column("bars_seen", Integer, nullable=False, default=0),
    Column("orders_submitted", Integer, nullable=False, default=0),
    _ts("started_at", nullable=False, default=utcnow),
    _ts("last_heartbeat_at"),
    _ts("ended_at"),
    Column("stop_reason", Text),
    Column("error", Text),
    Column("config", _json()),
    Column("state", _json()),
    Column("owner", String(256)),
    _ts("last_bar_ts"),
    Index("ix_paper_trading_runs_started_at", "started_at"),
)

_RUN_FK = "paper_trading_runs.id"

paper_orders = Table(
    "paper_orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "paper_run_id",
        String(64),
        ForeignKey(_RUN_FK, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("symbol", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("type", String(32), nullable=False, default="market"),
    Column("qty", Float, nullable=False),
    Column("limit_price", Float),
    Column("stop_price", Float),
    Column("trail_pct", Float),
    Column("time_in_force", String(16)),
    Column("status", String(32), nullable=False, default="new"),
    Column("filled_qty", Float, nullable=False, default=0.0),
    Column("avg_fill_price", Float),
    Column("reason_code", String(64)),
    Column("reason", Text),
    Column("parent_id", String(64)),
    Column("tag", String(256)),
    _ts("created_at", nullable=False, default=utcnow),
    _ts("updated_at", nullable=False, default=utcnow),
    # the broker's id of the order (a real broker only; NULL for the simulator)
    Column("broker_order_id", String(64)),
    # wall time the order was first written (created_at/updated_at are bar times)
    _ts("recorded_at", default=utcnow),
)

paper_fills = Table(
    "paper_fills",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "paper_run_id",
        String(64),
        ForeignKey(_RUN_FK, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("order_id", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("qty", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("commission", Float, nullable=False, default=0.0),
    Column("slippage", Float, nullable=False, default=0.0),
    _ts("filled_at", nullable=False),  # bar time of the fill
    _ts("recorded_at", default=utcnow),  # wall time the fill was written
    Index("ix_paper_fills_paper_run_id_filled_at", "paper_run_id", "filled_at"),
)

paper_equity = Table(
    "paper_equity",
    metadata,
    Column("paper_run_id", String(64), ForeignKey(_RUN_FK, ondelete="CASCADE"), nullable=False),
    _ts("ts", nullable=False),
    Column("equity", Float, nullable=False),
    Column("cash", Float),
    PrimaryKeyConstraint("paper_run_id", "ts"),
)

paper_frames = Table(
    "paper_frames",
    metadata,
    Column("paper_run_id", String(64), ForeignKey(_RUN_FK, ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False, autoincrement=False),
    Column("stage", String(64), nullable=False),
    Column("frame", _json(), nullable=False),
    PrimaryKeyConstraint("paper_run_id", "seq"),
)

#: The high-volume frames of a run (``bar.received``, ``equity.update``), one row per
#: written batch: ``data`` holds the batch's frame envelopes column by column
#: (:mod:`alphaswarm.ledger.frame_blocks`); every other frame is a ``paper_frames`` row.
paper_frame_blocks = Table(
    "paper_frame_blocks",
    metadata,
    Column("paper_run_id", String(64), ForeignKey(_RUN_FK, ondelete="CASCADE"), nullable=False),
    Column("first_seq", Integer, nullable=False, autoincrement=False),
    Column("last_seq", Integer, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("encoding", String(32), nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("paper_run_id", "first_seq"),
    Index("ix_paper_frame_blocks_paper_run_id_last_seq", "paper_run_id", "last_seq"),
)

risk_events = Table(
    "risk_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "paper_run_id",
        String(64),
        ForeignKey(_RUN_FK, ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    _ts("at", nullable=False, default=utcnow),
    Column("order_id", String(64)),
    Column("limit", String(64), nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("action", String(32), nullable=False),
    Column("message", Text),
    _ts("recorded_at", default=utcnow),  # wall time; ``at`` is the bar's time on a bar
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _ts("at", nullable=False, default=utcnow),
    Column("actor", String(256), nullable=False),
    Column("action", String(128), nullable=False, index=True),
    Column("detail", _json()),
)

kill_switch = Table(
    "kill_switch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("engaged", Boolean(create_constraint=False), nullable=False, default=False),
    Column("mode", String(32)),
    Column("reason", Text),
    _ts("engaged_at"),
    Column("ttl_seconds", Float, nullable=True),
    Column("scope", _json()),
    _ts("updated_at", nullable=False, default=utcnow),
    # Bumped by every engagement (released -> engaged); server processes sharing one
    # PostgreSQL ledger apply each epoch once and acknowledge it in kill_switch_acks.
    Column("epoch", Integer, nullable=False, default=0, server_default="0"),
)

kill_switch_acks = Table(
    "kill_switch_acks",
    metadata,
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("process", String(256), primary_key=True),
    Column("sessions", Integer, nullable=False, default=0),
    Column("elapsed_ms", Float),
    Column("detail", _json()),
    # The database clock (clock_timestamp()) on PostgreSQL, after the final rows committed.
    _ts("done_at", nullable=False, default=utcnow),
)

sweeps = Table(
    "sweeps",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("bot_id", String(128)),
    _ts("created_at", nullable=False, default=utcnow),
    Column("config", _json()),
    Column("status", String(32), nullable=False, default="running"),
)

sweep_trials = Table(
    "sweep_trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sweep_id", String(64), ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
    Column("trial_key", String(128), nullable=False),
    Column("params", _json()),
    Column("metrics", _json()),
    Column("status", String(32), nullable=False, default="done"),
    Column("error", Text),
    _ts("created_at", nullable=False, default=utcnow),
    UniqueConstraint("sweep_id", "trial_key"),
)
