"""Timezone-aware UTC timestamps everywhere, and ``recorded_at`` beside bar times.

- PostgreSQL: every timestamp column is a ``timestamptz``; a column found as a
  ``timestamp without time zone`` is converted, its values read as UTC.
- SQLite: timestamps are ISO-8601 text that ends in its zone (``+00:00``); text
  written without an offset is read as UTC and rewritten with it (text with another
  offset is converted to UTC), so every value sorts and compares in time order.
- ``recorded_at`` (wall time the row was written) on ``paper_orders``,
  ``paper_fills`` and ``risk_events``, whose other times are bar times. Rows written
  before this revision leave it NULL: when they were recorded is not known.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The timestamp columns of revision 0004, per table (a frozen copy).
TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {
    "bots": ("created_at",),
    "bot_versions": ("created_at",),
    "backtest_runs": ("started_at", "ended_at", "created_at", "start_ts", "end_ts"),
    "paper_trading_runs": ("started_at", "last_heartbeat_at", "ended_at", "last_bar_ts"),
    "paper_orders": ("created_at", "updated_at"),
    "paper_fills": ("filled_at",),
    "paper_equity": ("ts",),
    "risk_events": ("at",),
    "audit_log": ("at",),
    "kill_switch": ("engaged_at", "updated_at"),
    "kill_switch_acks": ("done_at",),
    "sweeps": ("created_at",),
    "sweep_trials": ("created_at",),
}
#: Tables whose times are bar times and that get a ``recorded_at`` wall time.
RECORDED_AT_TABLES = ("paper_orders", "paper_fills", "risk_events")
#: A frozen copy of schema.SQLITE_UTC_FORMAT, as a strftime pattern.
_SQLITE_UTC = "%Y-%m-%d %H:%M:%S.%f+00:00"
_UTC_SUFFIX = "+00:00"


def _TS() -> sa.DateTime:
    # A frozen copy of schema.UTCDateTime's DDL: migrations must not follow edits of schema.py.
    return sa.DateTime(timezone=True)


def _sqlite_utc_text(value: str) -> str | None:
    """``value`` rewritten in the stored UTC format; None when it is not a timestamp."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(_SQLITE_UTC)


#: The text SQLAlchemy wrote for a naive datetime before 0005 (``%Y-%m-%d %H:%M:%S.%f``).
_SQLITE_NAIVE_GLOB = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    ".[0-9][0-9][0-9][0-9][0-9][0-9]"
)


def _sqlite_to_utc_text(conn: Connection) -> None:
    for table, columns in TIMESTAMP_COLUMNS.items():
        for column in columns:
            # the common case in one statement: the format SQLAlchemy wrote, zone added
            conn.exec_driver_sql(
                f'UPDATE "{table}" SET "{column}" = "{column}" || ?'  # noqa: S608
                f' WHERE "{column}" GLOB ?',
                (_UTC_SUFFIX, _SQLITE_NAIVE_GLOB),
            )
            # any other text (written by another tool): parsed, converted to UTC
            rows = conn.exec_driver_sql(
                f'SELECT rowid, "{column}" FROM "{table}" '  # noqa: S608 - frozen names
                f"WHERE typeof(\"{column}\") = 'text' AND \"{column}\" NOT LIKE '%{_UTC_SUFFIX}'"
            ).fetchall()
            updates = []
            for rowid, value in rows:
                text = _sqlite_utc_text(value)
                if text is not None:
                    updates.append((text, rowid))
            if updates:
                conn.exec_driver_sql(
                    f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?',  # noqa: S608
                    updates,
                )


def _sqlite_strip_zone(conn: Connection) -> None:
    for table, columns in TIMESTAMP_COLUMNS.items():
        for column in columns:
            conn.exec_driver_sql(
                f'UPDATE "{table}" SET "{column}" = substr("{column}", 1, '  # noqa: S608
                f'length("{column}") - {len(_UTC_SUFFIX)}) '
                f"WHERE typeof(\"{column}\") = 'text' AND \"{column}\" LIKE '%{_UTC_SUFFIX}'"
            )


def _postgresql_to_timestamptz(conn: Connection) -> None:
    naive = conn.execute(
        sa.text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() "
            "AND data_type = 'timestamp without time zone'"
        )
    ).fetchall()
    for table, column in naive:
        if column not in TIMESTAMP_COLUMNS.get(table, ()):
            continue  # not one of ours
        conn.exec_driver_sql(
            f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE timestamptz '
            f"USING \"{column}\" AT TIME ZONE 'UTC'"
        )


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite_to_utc_text(conn)
    elif conn.dialect.name == "postgresql":
        _postgresql_to_timestamptz(conn)
    for table in RECORDED_AT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("recorded_at", _TS(), nullable=True))


def downgrade() -> None:
    for table in RECORDED_AT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("recorded_at")
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite_strip_zone(conn)
    # PostgreSQL keeps timestamptz: revision 0001 already created every column so.
