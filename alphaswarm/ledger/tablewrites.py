"""Many rows into one table per statement: inserts, and upserts by primary key."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, update
from sqlalchemy.dialects import postgresql, sqlite

from alphaswarm.ledger.bulk import (
    column_rows,
    execute_columns,
    execute_many,
    with_python_defaults,
)
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.rows import group_by_keys
from alphaswarm.ledger.schema import utcnow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

__all__ = ["insert_many", "upsert_columns", "upsert_many"]


def insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table``, one executemany per set of columns."""
    for group in group_by_keys(rows):
        group = with_python_defaults(table, group)
        keys = tuple(group[0])
        execute_many(
            conn, ("insert", table.name, keys), lambda: insert(table), group, column_keys=keys
        )


def upsert_many(
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
    for group in group_by_keys(rows):
        columns = [c for c in group[0] if c not in keys and c not in keep]
        if "updated_at" in table.c and "updated_at" not in columns:
            columns.append("updated_at")
        missing = required - set(group[0])
        if missing:
            _update_existing(conn, table, group, keys, columns, sorted(missing))
        elif name in ("sqlite", "postgresql"):
            values = with_python_defaults(table, group)
            given = tuple(values[0])
            execute_many(
                conn,
                ("upsert", table.name, given, tuple(columns)),
                functools.partial(_upsert_statement, name, table, keys, columns),
                values,
                column_keys=given,
            )
        else:  # other dialects: update, insert when nothing matched
            for one in group:
                if not _update_row(conn, table, one, keys, columns):
                    conn.execute(insert(table), one)


def upsert_columns(conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]]) -> None:
    """:func:`upsert_many` for rows given column by column (equal lengths).

    Every row gives every column of ``columns`` (a conflict updates them all); the
    rows need no Python-side defaults.
    """
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql"):
        upsert_many(conn, table, column_rows(columns))
        return
    keys = [c.name for c in table.primary_key.columns]
    updated = [c for c in columns if c not in keys]
    execute_columns(
        conn,
        ("upsert columns", table.name, tuple(updated)),
        functools.partial(_upsert_statement, name, table, keys, updated),
        columns,
    )


def _upsert_statement(dialect: str, table: Table, keys: list[str], columns: list[str]) -> Any:
    """``INSERT .. ON CONFLICT (keys) DO UPDATE SET columns`` (nothing when no columns)."""
    stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
    if columns:
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in columns}
        )
    return stmt.on_conflict_do_nothing(index_elements=keys)


def _update_row(
    conn: Connection, table: Table, one: dict[str, Any], keys: list[str], columns: list[str]
) -> bool:
    """Update the row keyed like ``one``; True when it exists (or there was nothing to set)."""
    values = {c: one[c] for c in columns if c in one}
    if "updated_at" in columns and "updated_at" not in values:
        values["updated_at"] = utcnow()
    if not values:
        return True
    where = and_(*(table.c[k] == one[k] for k in keys))
    return bool(conn.execute(update(table).where(where).values(values)).rowcount)


def _update_existing(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    columns: list[str],
    missing: list[str],
) -> None:
    for one in rows:
        if not _update_row(conn, table, one, keys, columns):
            ident = ", ".join(f"{k}={one[k]!r}" for k in keys)
            raise LedgerError(
                f"{table.name} row {ident} does not exist yet, and a new row needs "
                f"{', '.join(missing)}"
            )
