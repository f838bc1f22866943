"""The ledger's exceptions, and how a database failure maps onto them."""

from __future__ import annotations

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

__all__ = ["KillSwitchRefusal", "LedgerError", "LedgerUnavailable", "describe", "is_unavailable"]


class LedgerError(RuntimeError):
    """Raised when the ledger cannot do what was asked; nothing was written."""


class LedgerUnavailable(LedgerError):
    """The database could not be reached or stayed locked: nothing was written.

    A transient failure (a SQLite file whose write lock another writer held past the
    busy timeout, a PostgreSQL server that is down or dropped the connection): the
    same write may succeed later, unlike a bad row.
    """


class KillSwitchRefusal(LedgerError):
    """A paper run was not created: the kill-switch row is engaged (or halts its bot).

    ``state`` is the row as :meth:`Ledger.kill_switch_state` returns it.
    """

    def __init__(self, message: str, state: dict) -> None:
        super().__init__(message)
        self.state = state


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database was out of reach, not that the data was bad."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout)


def describe(exc: BaseException) -> str:
    """The first line of a database error, prefixed with the driver's exception type."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        orig = exc.orig
        return f"{type(orig).__name__}: {str(orig).strip().splitlines()[0]}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
