"""Many rows through one compiled statement, handed to the database driver directly.

SQLAlchemy's ``conn.execute(stmt, rows)`` compiles the statement (from its cache)
and then builds and type-processes a parameter dict per row in Python. For the
hundreds of rows a group commit or a kill switch writes at once, that per-row
work costs more than the database does. Here a statement is compiled once per
dialect and shape, each bind keeps its type's processor (JSON serialiser, UTC
datetimes, ...), and the rows go to the driver's ``executemany`` as plain tuples
(or dicts, for drivers with named parameters). The SQL and the stored values are
the ones SQLAlchemy itself would produce.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping, Sequence

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import Executable

__all__ = ["column_rows", "execute_columns", "execute_many", "with_python_defaults"]

#: Compiled statements kept per process; shapes are few, the cap only guards misuse.
_CACHE_LIMIT = 512


@dataclass(frozen=True)
class _Compiled:
    """One statement compiled for one dialect, with how to bind a row to it."""

    sql: str
    #: (row key, driver parameter name, processor or None), in parameter order.
    binds: tuple[tuple[str, str, Callable[[Any], Any] | None], ...]
    positional: bool


_cache: dict[Hashable, _Compiled | None] = {}
_cache_lock = threading.Lock()


def _compile(
    conn: Connection, stmt: Executable, column_keys: Sequence[str] | None
) -> _Compiled | None:
    """Compile ``stmt`` for ``conn``'s dialect; None when it needs SQLAlchemy at run time."""
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, column_keys=list(column_keys or ()) or None)
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        return None  # Python-side defaults SQLAlchemy would compute per row
    if getattr(compiled, "literal_execute_params", None) or getattr(
        compiled, "post_compile_params", None
    ):
        return None  # expanded at execution time (IN lists and the like)
    escaped = getattr(compiled, "escaped_bind_names", None) or {}
    names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
    binds = []
    for name in names:
        bind = compiled.binds[name]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        binds.append((bind.key, escaped.get(name, name), processor))
    return _Compiled(compiled.string, tuple(binds), bool(compiled.positional))


def _compiled_for(
    conn: Connection,
    key: Hashable,
    build: Callable[[], Executable],
    column_keys: Sequence[str] | None,
) -> _Compiled | None:
    dialect = conn.dialect
    full_key = (dialect.name, dialect.driver, dialect.paramstyle, key)
    with _cache_lock:
        if full_key in _cache:
            return _cache[full_key]
    compiled = _compile(conn, build(), column_keys)
    with _cache_lock:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[full_key] = compiled
    return compiled


def execute_many(
    conn: Connection,
    key: Hashable,
    build: Callable[[], Executable],
    rows: Sequence[dict[str, Any]],
    *,
    column_keys: Sequence[str] | None = None,
) -> int:
    """Execute ``build()`` once per row of ``rows``; return the rows the database counted.

    Parameters
    ----------
    conn : Connection
        An open connection, inside the caller's transaction.
    key : hashable
        Names the statement's shape (table, operation, column keys): the compiled
        form is cached under it, per dialect.
    build : callable
        Returns the statement; called only when ``key`` is not cached yet.
    rows : sequence of dict
        One parameter dict per execution, every one with the same keys.
    column_keys : sequence of str, optional
        For an ``INSERT`` built without explicit values: the columns the rows give.

    Returns
    -------
    int
        The driver's row count (rows inserted or matched by an ``UPDATE``); -1 where
        the driver does not count (an ``INSERT`` of many rows on some drivers).
    """
    if not rows:
        return 0
    compiled = _compiled_for(conn, key, build, column_keys)
    if compiled is None:  # not expressible as one driver statement: SQLAlchemy runs it
        return conn.execute(build(), list(rows)).rowcount
    binds = compiled.binds
    if compiled.positional:
        params: list[Any] = [
            tuple(row[k] if p is None else p(row[k]) for k, _, p in binds) for row in rows
        ]
    else:
        params = [{n: row[k] if p is None else p(row[k]) for k, n, p in binds} for row in rows]
    if len(params) == 1:
        return conn.exec_driver_sql(compiled.sql, params[0]).rowcount
    return conn.exec_driver_sql(compiled.sql, params).rowcount


def execute_columns(
    conn: Connection,
    key: Hashable,
    build: Callable[[], Executable],
    columns: Mapping[str, Sequence[Any]],
) -> int:
    """Like :func:`execute_many`, for rows given column by column.

    No dict is made per row: each column's processor binds the whole column (a
    processor with a ``many`` attribute does it at once), and a positional driver
    takes the rows as tuples. ``build()`` is an ``INSERT`` built without explicit
    values, for the keys of ``columns``; every column has the same length.
    """
    keys = tuple(columns)
    n = len(columns[keys[0]]) if keys else 0
    if not n:
        return 0
    if any(len(column) != n for column in columns.values()):
        raise ValueError("execute_columns: columns of different lengths")
    compiled = _compiled_for(conn, (key, keys), build, keys)
    if compiled is None or {k for k, _, _ in compiled.binds} != set(keys):
        return execute_many(conn, key, build, column_rows(columns), column_keys=keys)
    bound = []
    for k, _, processor in compiled.binds:  # in the statement's parameter order
        values = columns[k]
        if processor is not None:
            many = getattr(processor, "many", None)
            values = many(values) if many is not None else map(processor, values)
        bound.append(values)
    if compiled.positional:
        params: list[Any] = list(zip(*bound, strict=True))
    else:
        names = [n for _, n, _ in compiled.binds]
        params = [dict(zip(names, r, strict=True)) for r in zip(*bound, strict=True)]
    if len(params) == 1:
        return conn.exec_driver_sql(compiled.sql, params[0]).rowcount
    return conn.exec_driver_sql(compiled.sql, params).rowcount


def column_rows(columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The rows (one dict each) of equal-length ``columns``."""
    keys = list(columns)
    return [dict(zip(keys, r, strict=True)) for r in zip(*columns.values(), strict=True)]


def with_python_defaults(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (one key set) with the table's Python-side defaults filled in where absent.

    SQLAlchemy computes these per execution; the driver path needs them in the row.
    Callable defaults are evaluated once for the whole group (e.g. one ``now``).
    """
    if not rows:
        return rows
    present = rows[0].keys()
    extra: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if default is None or column.key in present:
            continue
        if default.is_scalar:
            extra[column.key] = default.arg
        elif default.is_callable:
            extra[column.key] = default.arg(None)
    if not extra:
        return rows
    return [{**extra, **row} for row in rows]
