"""Ledger URLs: the default ledger, plain file paths, and readable parse errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from alphaswarm.ledger.errors import LedgerError

__all__ = ["as_database_url", "default_url", "parse_url", "safe_url"]


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


def parse_url(url: str) -> Any:
    """``make_url`` with a readable :class:`LedgerError` instead of SQLAlchemy's."""
    try:
        return make_url(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise LedgerError(
            f"not a database URL: {url!r} (expected sqlite:///path/to/ledger.db, "
            f"postgresql+psycopg://user@host/db or a file path): {exc}"
        ) from None


def safe_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)
