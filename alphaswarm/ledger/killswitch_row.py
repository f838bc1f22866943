"""The kill-switch row (the singleton ``id=1``): its state, changes and the start check."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql

from alphaswarm.ledger.audit import append_audit
from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.errors import KillSwitchRefusal, LedgerError
from alphaswarm.ledger.jsoncodec import json_dumps
from alphaswarm.ledger.killswitch_conn import KillSwitchConnection
from alphaswarm.ledger.schema import kill_switch, utcnow
from alphaswarm.ledger.tablewrites import upsert_many

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from alphaswarm.ledger.connection import Database


__all__ = [
    "KILL_SWITCH_CHANNEL",
    "KillSwitchRow",
    "database_now",
    "refuse_when_killed",
    "write_state",
]

#: PostgreSQL ``NOTIFY`` channel on which :meth:`Ledger.set_kill_switch` announces changes.
KILL_SWITCH_CHANNEL = "alphaswarm_kill_switch"

_DEFAULT_STATE: dict[str, Any] = {
    "epoch": 0,
    "engaged": False,
    "mode": None,
    "reason": None,
    "engaged_at": None,
    "ttl_seconds": None,
    "scope": None,
    "updated_at": None,
}


def database_now(conn: Connection) -> Any:
    """Now: the database clock on PostgreSQL (one clock for every process), else this one."""
    if conn.dialect.name == "postgresql":
        return conn.execute(select(func.clock_timestamp())).scalar_one()
    return utcnow()


def read_state(conn: Connection, *, lock: bool = False, share: bool = False) -> dict:
    """The kill-switch row (defaults when never set), locked for update or share if asked."""
    stmt = select(kill_switch).where(kill_switch.c.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    elif share:
        stmt = stmt.with_for_update(read=True)
    found = conn.execute(stmt).mappings().first()
    state = dict(_DEFAULT_STATE)
    if found is not None:
        state.update({k: v for k, v in found.items() if k != "id"})
        state["engaged"] = bool(state["engaged"])
    expires = None
    if state["engaged"] and state["engaged_at"] and state["ttl_seconds"] is not None:
        expires = state["engaged_at"] + timedelta(seconds=state["ttl_seconds"])
    state["expires_at"] = expires
    state["expired"] = expires is not None and utcnow() >= expires
    return state


def refuse_when_killed(conn: Connection, bot_id: str) -> None:
    """Lock the kill-switch row for share (creating it first) and refuse when engaged."""
    state = read_state(conn, share=True)
    if state["updated_at"] is None and conn.dialect.name == "postgresql":
        # No row yet: create the released singleton so there is a row to lock.
        conn.execute(
            postgresql.insert(kill_switch)
            .values(id=1, engaged=False, epoch=0, updated_at=utcnow())
            .on_conflict_do_nothing()
        )
        state = read_state(conn, share=True)
    halted = (state.get("scope") or {}).get("halted_bots") or []
    if state["engaged"] and not state["expired"]:
        why = state.get("reason") or "no reason given"
        raise KillSwitchRefusal(
            f"kill switch engaged ({state.get('mode') or 'cancel'}): {why}", state
        )
    if bot_id in halted:
        raise KillSwitchRefusal(f"kill switch engaged (halted): bot {bot_id} halted", state)


class KillSwitchRow(Repository):
    """The kill-switch row of one ledger.

    Parameters
    ----------
    db : Database
        The ledger database.
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._connection: KillSwitchConnection | None = None

    def kill_switch_state(self) -> dict:
        """Return the kill-switch row.

        Returns
        -------
        dict
            ``{engaged, mode, reason, engaged_at, ttl_seconds, scope, updated_at,
            expires_at, expired}``; ``expired`` is True when a TTL has run out.
            Disengaged defaults when it was never set.
        """
        with self.db.read() as conn:
            return read_state(conn)

    def set_kill_switch(
        self,
        engaged: bool,
        mode: str,
        reason: str,
        ttl_seconds: float | None = None,
        scope: dict | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
        detail: dict | None = None,
    ) -> dict:
        """Set the kill-switch row (id 1) and return the new state.

        ``engaged_at`` is set when the switch goes from released to engaged and kept
        while it stays engaged; that transition also bumps ``epoch``. On PostgreSQL
        the timestamps come from the database clock (one clock for every process)
        and a ``NOTIFY`` on :data:`KILL_SWITCH_CHANNEL` tells the other processes,
        on commit, in the same transaction as the row: only kills (any engagement)
        and resets (released after engaged) are announced, with the payload
        ``{"action": "kill"|"reset", "epoch", "mode", "reason", "engaged_at"}``;
        per-bot halts and releases as ``{"action": "kill"|"reset", "epoch", "bots"}``
        (the bots whose halt changed; the processes then re-read the row).

        Parameters
        ----------
        engaged : bool
            Engage (True) or release (False).
        mode : str
            E.g. ``"halt"`` or ``"flatten"``.
        reason : str
            Why; shown to every client.
        ttl_seconds : float, optional
            Seconds after which an engagement lapses; ``None``: latched until reset.
        scope : dict, optional
            What it covers (e.g. ``{"bots": [...]}``); ``None``: everything.
        actor : str, optional
            When given, an audit row ``kill_switch.engage``/``kill_switch.reset`` is
            written in the same transaction.
        action : str, optional
            The audit row's action instead of ``kill_switch.engage``/``kill_switch.reset``.
        detail : dict, optional
            The audit row's detail instead of ``{mode, reason, ttl_seconds, scope}``.
        """
        _check_ttl(ttl_seconds)
        audits = []
        if actor is not None:
            default_action = "kill_switch.engage" if engaged else "kill_switch.reset"
            if detail is None:
                detail = {"mode": mode, "reason": reason, "ttl_seconds": ttl_seconds}
                detail["scope"] = scope
            audits.append((actor, action or default_action, detail))
        with self.db.write() as conn:
            return write_state(conn, engaged, mode, reason, ttl_seconds, scope, audits)

    def write_kill_switch(
        self,
        engaged: bool,
        mode: str,
        reason: str,
        ttl_seconds: float | None = None,
        scope: dict | None = None,
        *,
        audits: list[tuple[str, str, dict]] | None = None,
        wait_seconds: float = 0.1,
    ) -> dict:
        """Set the kill-switch row through the kill switch's own connection.

        Like :meth:`set_kill_switch`, but the transaction runs on a connection of its
        own (:class:`~alphaswarm.ledger.killswitch_conn.KillSwitchConnection`): it is
        not queued behind this process's other writers, and it waits at most
        ``wait_seconds`` for a lock another connection or process holds (the SQLite
        write lock, the row locked ``FOR UPDATE`` on PostgreSQL), then raises
        :class:`~alphaswarm.ledger.errors.LedgerUnavailable` with nothing written.

        Parameters
        ----------
        engaged, mode, reason, ttl_seconds, scope
            As for :meth:`set_kill_switch`.
        audits : list of (actor, action, detail), optional
            Audit rows written in the same transaction.
        wait_seconds : float
            Longest wait for a lock held elsewhere.

        Returns
        -------
        dict
            The new state, as :meth:`kill_switch_state` returns it.
        """
        _check_ttl(ttl_seconds)
        with self._own_connection().write(wait_seconds) as conn:
            return write_state(conn, engaged, mode, reason, ttl_seconds, scope, audits or [])

    def _own_connection(self) -> KillSwitchConnection:
        conn = self._connection
        if conn is None:
            conn = self._connection = KillSwitchConnection(self.db)
        return conn

    def close(self) -> None:
        """Close the kill switch's own connection (the next write opens it again)."""
        conn = self._connection
        if conn is not None:
            conn.close()


def _check_ttl(ttl_seconds: float | None) -> None:
    if ttl_seconds is not None and not (ttl_seconds > 0 and math.isfinite(ttl_seconds)):
        raise LedgerError(f"set_kill_switch: ttl_seconds must be > 0 or None, got {ttl_seconds}")


def write_state(
    conn: Connection,
    engaged: bool,
    mode: str,
    reason: str,
    ttl_seconds: float | None,
    scope: dict | None,
    audits: list[tuple[str, str, dict]],
) -> dict:
    """In a write transaction: set the row, append ``audits``, announce; the new state."""
    before = read_state(conn, lock=True)
    now = database_now(conn)
    engaged_at = None
    if engaged:
        engaged_at = before["engaged_at"] if before["engaged"] else now
    epoch = int(before.get("epoch") or 0)
    if engaged and not before["engaged"]:
        epoch += 1
    values = {
        "id": 1,
        "epoch": epoch,
        "engaged": bool(engaged),
        "mode": mode,
        "reason": reason,
        "engaged_at": engaged_at,
        "ttl_seconds": None if ttl_seconds is None else float(ttl_seconds),
        "scope": scope,
        "updated_at": now,
    }
    upsert_many(conn, kill_switch, [values])
    for actor, action, detail in audits:
        append_audit(conn, actor, action, detail)
    state = read_state(conn)
    if conn.dialect.name == "postgresql":
        _announce(conn, before, values)
    return state


def _announce(conn: Connection, before: dict, values: dict) -> None:
    """PostgreSQL: ``NOTIFY`` the kill, reset or per-bot halt change of this transaction."""
    engaged, epoch = values["engaged"], values["epoch"]
    action = "kill" if engaged else "reset" if before["engaged"] else None
    if action is not None:
        payload = {
            "action": action,
            "epoch": epoch,
            "mode": values["mode"],
            "reason": (values["reason"] or "")[:2000],
            "engaged_at": values["engaged_at"],
        }
        conn.execute(select(func.pg_notify(KILL_SWITCH_CHANNEL, json_dumps(payload))))
    halted = set((values["scope"] or {}).get("halted_bots") or [])
    halted_before = set((before.get("scope") or {}).get("halted_bots") or [])
    if halted != halted_before:  # per-bot halts and releases
        payload = {
            "action": "kill" if halted - halted_before else "reset",
            "epoch": epoch,
            "bots": sorted(halted ^ halted_before),
        }
        conn.execute(select(func.pg_notify(KILL_SWITCH_CHANNEL, json_dumps(payload))))
