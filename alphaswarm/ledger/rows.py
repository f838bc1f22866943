"""Validation of the rows callers hand to the ledger: known columns, plain values."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from alphaswarm.ledger.errors import LedgerError

if TYPE_CHECKING:
    from sqlalchemy import Table

__all__ = ["IN_LIST_CHUNK", "as_mapping", "chunks", "fields", "group_by_keys", "plain", "row"]

#: Values per ``IN (...)`` list: well under every database's limit on parameters.
IN_LIST_CHUNK = 500

#: Column values stored as they are (checked by exact type, the common case).
_PLAIN_TYPES = frozenset({str, float, int, bool, type(None), datetime, dict, list})


def plain(value: Any) -> Any:
    """Turn enums and numpy scalars into plain Python values for a column."""
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, Enum):
        return value.value
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return item()
    return value


def as_mapping(data: Any, what: str) -> Mapping[str, Any]:
    """``data`` as a mapping: a mapping itself, a ``to_dict()`` result or a dataclass."""
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


def row(
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
        out = {k: v if type(v) in _PLAIN_TYPES else plain(v) for k, v in data.items()}
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
    """:func:`row` for any mapping or record, with aliases and a message per bad key."""
    out: dict[str, Any] = {}
    for key, value in as_mapping(data, what).items():
        column = aliases.get(key, key) if aliases else key
        if column not in names:
            allowed = ", ".join(c.name for c in table.columns)
            raise LedgerError(
                f"{what}: unknown column {key!r} for {table.name}; allowed: {allowed}"
            )
        if column in out:
            raise LedgerError(f"{what}: column {column!r} given twice (as {key!r})")
        out[column] = plain(value)
    return out


def fields(table: Table, values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Validate the columns of an UPDATE (the primary key cannot change)."""
    out = row(table, values, what)
    for key in table.primary_key.columns.keys():
        if key in out:
            raise LedgerError(f"{what}: the key column {key!r} cannot be updated")
    return out


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in consecutive lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def group_by_keys(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Split rows into runs of identical key sets (an executemany needs one shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for one in rows:
        groups.setdefault(tuple(sorted(one)), []).append(one)
    yield from groups.values()
