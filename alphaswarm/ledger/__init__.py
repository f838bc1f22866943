"""The ledger: bots, backtests and paper runs in SQLite (default) or PostgreSQL.

:class:`Ledger` writes every record and reads them back as pandas DataFrames; the
schema (:mod:`alphaswarm.ledger.schema`) is created and upgraded by the Alembic
migrations shipped in ``alphaswarm/ledger/migrations``.
"""

from __future__ import annotations

from alphaswarm.ledger.store import (
    KILL_SWITCH_CHANNEL,
    Ledger,
    LedgerError,
    LedgerUnavailable,
    default_url,
    process_owner,
)

__all__ = [
    "KILL_SWITCH_CHANNEL",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "default_url",
    "process_owner",
]
