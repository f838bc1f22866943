"""Crash recovery: runs left ``running`` by a process that died are marked ``crashed``.

On start the kit looks at every ``running`` run it does not own. A run whose
owner process is gone (same host, pid no longer alive) is crashed at once; a run
of another host is crashed when its ``last_heartbeat_at`` is older than three
heartbeats. Its ``total_pnl`` and ``num_fills`` are recomputed from the fills.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alphaswarm.ledger.store import process_owner

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 30.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(owner: str | None) -> bool | None:
    """True/False when ``owner`` (``host:pid``) is on this host, None when it is not."""
    if not owner or ":" not in owner:
        return None
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return not _pid_alive(int(pid))


def recover_orphans(ledger: Ledger) -> list[str]:
    """Mark orphaned ``running`` runs as ``crashed``; returns their ids (and logs them)."""
    me = process_owner()
    now = datetime.now(UTC)
    dead_here: list[str] = []
    stale_elsewhere: list[str] = []
    for run in ledger.running_runs():
        owner = run.get("owner")
        if owner == me:
            continue
        gone = owner_gone(owner)
        if gone is True:
            dead_here.append(run["id"])
        elif gone is None:
            beat = (run.get("config") or {}).get("heartbeat_seconds") or DEFAULT_HEARTBEAT_SECONDS
            last = run.get("last_heartbeat_at") or run.get("started_at")
            if last is not None and (now - last).total_seconds() > 3 * float(beat):
                stale_elsewhere.append(run["id"])
    crashed = ledger.mark_crashed(0.0, exclude_owner=me, run_ids=dead_here)
    crashed += ledger.mark_crashed(0.0, exclude_owner=me, run_ids=stale_elsewhere)
    for run_id in crashed:
        log.warning(
            "paper run %s was left running by a process that is gone: marked crashed", run_id
        )
    return crashed
