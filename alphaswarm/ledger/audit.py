"""The audit log: who engaged the kill switch, overrode a gate, ..."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.schema import audit_log, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["append_audit"]


def append_audit(conn: Connection, actor: str, action: str, detail: Any) -> None:
    """Append one audit row in the transaction of ``conn``."""
    if not actor or not action:
        raise LedgerError("audit: 'actor' and 'action' are required")
    conn.execute(insert(audit_log).values(at=utcnow(), actor=actor, action=action, detail=detail))
