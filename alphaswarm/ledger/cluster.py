"""What the processes sharing one ledger tell each other: kill acks, listeners, owner locks.

Only PostgreSQL ledgers are shared between machines; on SQLite the owner locks and
the listener list are no-ops.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.killswitch_row import database_now
from alphaswarm.ledger.schema import kill_switch_acks
from alphaswarm.ledger.tablewrites import upsert_many

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from alphaswarm.ledger.connection import Database

__all__ = ["ClusterRepository", "owner_lock_key", "process_owner"]

_log = logging.getLogger(__name__)


def process_owner() -> str:
    """Return ``"<host>:<pid>"``, the owner recorded on the paper runs this process starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_lock_key(owner: str) -> int:
    """The PostgreSQL advisory-lock key (a signed 64-bit int) of a run owner.

    A process holds the session-level lock of its owner while it may own running
    paper runs (:meth:`Ledger.hold_owner_lock`); when the process dies its
    connection drops and the lock with it, which is how a survivor tells a dead
    owner from a live one on another machine (:meth:`Ledger.owner_alive`).
    """
    digest = hashlib.blake2b(f"alphaswarm-owner:{owner}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ClusterRepository(Repository):
    """Kill acknowledgements, listening processes and the owner's advisory lock.

    Parameters
    ----------
    db : Database
        The ledger database.
    owner : callable
        Returns the owner this process records on its runs (read at each use).
    """

    def __init__(self, db: Database, owner: Callable[[], str]) -> None:
        super().__init__(db)
        self.owner = owner
        # PostgreSQL: a connection outside the pool holding this owner's advisory lock.
        self._owner_conn: Connection | None = None
        self._owner_lock = threading.Lock()

    def record_kill_ack(
        self, epoch: int, process: str, sessions: int, elapsed_ms: float, detail: dict
    ) -> None:
        """Acknowledge kill-switch ``epoch`` for ``process`` (upserted; one row per process).

        ``done_at`` is the database clock (``clock_timestamp()``) on PostgreSQL, so the
        acks of processes on several machines compare with ``engaged_at`` directly.
        """
        with self.db.write() as conn:
            ack = {
                "epoch": int(epoch),
                "process": process,
                "sessions": int(sessions),
                "elapsed_ms": float(elapsed_ms),
                "detail": detail,
                "done_at": database_now(conn),
            }
            upsert_many(conn, kill_switch_acks, [ack])

    def kill_acks(self, epoch: int) -> list[dict]:
        """The acknowledgements of kill-switch ``epoch``, earliest first."""
        acks = kill_switch_acks
        stmt = select(acks).where(acks.c.epoch == int(epoch)).order_by(acks.c.done_at)
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def connected_applications(self, prefix: str) -> list[str]:
        """PostgreSQL: ``application_name`` of this database's sessions starting with ``prefix``.

        Server processes name their kill-switch listener connection
        ``alphaswarm-kill:<owner>``, so this lists the processes listening now.
        """
        if self.db.dialect != "postgresql":
            return []
        with self.db.read() as conn:
            rows = conn.execute(
                text(
                    "SELECT application_name FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name LIKE :p "
                    "ORDER BY application_name"
                ),
                {"p": prefix.replace("%", r"\%").replace("_", r"\_") + "%"},
            )
            return [r[0] for r in rows]

    def hold_owner_lock(self) -> bool:
        """PostgreSQL: hold this owner's advisory lock on a connection outside the pool.

        Idempotent and cheap when the lock is held (a ``SELECT 1`` on that connection
        checks it is still alive; a cut connection is replaced and the lock taken
        again). Returns True when the lock is held. SQLite: does nothing, returns False.
        """
        if self.db.dialect != "postgresql":
            return False
        owner = self.owner()
        with self._owner_lock:
            conn = self._owner_conn
            if conn is not None:
                try:
                    conn.exec_driver_sql("SELECT 1")
                    conn.commit()
                    return True
                except SQLAlchemyError:
                    _log.warning("owner lock connection of %s lost; reconnecting", owner)
                    with contextlib.suppress(Exception):
                        conn.close()
                    self._owner_conn = None
            try:
                conn = self.db.engine().connect()
                conn.detach()  # a session-level lock must live on a connection of its own
                conn.execute(
                    text("SELECT set_config('application_name', :n, false)"),
                    {"n": f"alphaswarm-owner:{owner}"[:63]},
                )
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": owner_lock_key(owner)}
                ).scalar()
                conn.commit()
            except SQLAlchemyError as exc:
                _log.warning("could not take the owner lock of %s: %s", owner, exc)
                return False
            if not got:
                _log.warning("the owner lock of %s is held by another connection", owner)
                conn.close()
                return False
            self._owner_conn = conn
            return True

    def release_owner_lock(self) -> None:
        """Close the owner-lock connection (the lock goes with it)."""
        with self._owner_lock:
            conn, self._owner_conn = self._owner_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def owner_alive(self, owner: str) -> bool | None:
        """PostgreSQL: whether a process holds ``owner``'s advisory lock; None on SQLite.

        Probes with ``pg_try_advisory_xact_lock`` (released at once by the rollback), so
        it never keeps the lock from its owner.
        """
        if self.db.dialect != "postgresql":
            return None
        with self.db.read() as conn:
            free = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": owner_lock_key(owner)}
            ).scalar()
            conn.rollback()
        return not free
