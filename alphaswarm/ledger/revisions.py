"""The ledger's schema revisions, read without loading Alembic.

Opening a ledger that is already at the newest revision (every open but the first)
needs only two facts: the newest revision the package ships and the one the
database is stamped with. Both are read here without Alembic, whose import adds
some 20,000 objects to the process (every full garbage collection walks them, for
as long as the process lives); :mod:`alphaswarm.ledger.migrate` loads it when a
ledger is created or upgraded.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["VERSIONS_DIR", "VERSION_TABLE", "head_revision", "stamped_revisions"]

#: Directory of the shipped migration scripts.
VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
#: Table where Alembic stamps a database's revision.
VERSION_TABLE = "alembic_version"


@cache
def head_revision() -> str:
    """The newest revision of the shipped migrations (the one no other revises).

    Raises
    ------
    RuntimeError
        When the scripts do not form one line of revisions.
    """
    revises: dict[str, object] = {}
    for path in sorted(VERSIONS_DIR.glob("*.py")):
        found = _assignments(path)
        if "revision" in found:
            revises[str(found["revision"])] = found.get("down_revision")
    parents = {p for p in revises.values() if isinstance(p, str)}
    heads = sorted(set(revises) - parents)
    if len(heads) != 1 or any(not isinstance(p, str | type(None)) for p in revises.values()):
        raise RuntimeError(f"the migrations in {VERSIONS_DIR} do not end in one head: {heads}")
    return heads[0]


def _assignments(path: Path) -> dict[str, object]:
    """The module-level ``revision`` and ``down_revision`` literals of a script."""
    out: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            out[target.id] = ast.literal_eval(value) if value is not None else None
    return out


def stamped_revisions(conn: Connection) -> list[str]:
    """The revisions the database behind ``conn`` is stamped with (none: not stamped)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return []
    return [str(r) for r in conn.execute(_STAMPED).scalars()]


_STAMPED = text("SELECT version_num FROM alembic_version")
