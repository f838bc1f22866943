"""Run the ledger's Alembic migrations from code (no ``alembic.ini`` needed).

The migration scripts ship inside the package (``alphaswarm/ledger/migrations``);
:func:`alembic_config` points an :class:`alembic.config.Config` at them.
:func:`upgrade` takes an open connection so the caller decides the transaction and
the lock: :class:`~alphaswarm.ledger.store.Ledger` upgrades inside ``BEGIN IMMEDIATE``
on SQLite and under a transaction-scoped advisory lock on PostgreSQL, so two
processes opening the same new ledger do not both try to create it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "known_revisions",
    "upgrade",
]

#: Directory of the Alembic environment (``env.py``, ``versions/``).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Build an Alembic configuration for the ledger migrations.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection, optional
        Connection the migrations run on (``config.attributes["connection"]``).
    url : str, optional
        Database URL, used when no connection is given.

    Returns
    -------
    alembic.config.Config
        A configuration whose ``script_location`` is the package's migrations directory.
    """
    cfg = Config()
    # ConfigParser interpolates "%": escape it in paths and URLs.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def head_revision() -> str:
    """Return the newest revision id of the shipped migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


@cache
def known_revisions() -> frozenset[str]:
    """Return the ids of every shipped revision."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """Return the revision the database behind ``connection`` is at (``None``: none)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the database behind ``connection`` to ``revision``.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
        Open connection; when it is inside a transaction the migrations join it and
        the caller commits.
    revision : str
        Target revision, ``"head"`` by default.
    """
    command.upgrade(alembic_config(connection), revision)
