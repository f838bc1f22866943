"""Crash recovery: runs left ``running`` by a process that died are marked ``crashed``.

On start the kit looks at every ``running`` run it does not own. A run whose
owner process is gone (same host, pid no longer alive) is crashed at once; a run
of another host is crashed when its ``last_heartbeat_at`` is older than three
heartbeats. Its ``total_pnl`` and ``num_fills`` are recomputed from the fills.

On PostgreSQL every process that creates runs holds its owner's advisory lock
(:meth:`~alphaswarm.ledger.Ledger.hold_owner_lock`), so the lock, not the pid or
the heartbeat, tells a dead owner on any machine: lock free means gone (unless
the owner is on this host with its pid alive, i.e. reconnecting its lock). While
they run, server processes also scan for dead owners every few seconds
(:func:`reap_dead_owners`, from the cluster listener thread).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alphaswarm.ledger.store import process_owner

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 30.0


def _pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
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
    postgres = ledger.dialect == "postgresql"
    alive: dict[str, bool | None] = {}
    for run in ledger.running_runs():
        owner = run.get("owner")
        if owner == me:
            continue
        gone = owner_gone(owner)
        if postgres and owner:
            if owner not in alive:
                alive[owner] = ledger.owner_alive(owner)
            if alive[owner]:
                continue  # its owner holds the lock: alive, wherever it runs
            if gone is not False:  # lock free, and not a live pid of this host
                dead_here.append(run["id"])
                continue
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


def reap_dead_owners(
    ledger: Ledger, suspects: dict[str, float], confirm_seconds: float = 2.0
) -> list[str]:
    """PostgreSQL: mark crashed the running runs of owners whose advisory lock is free.

    An owner is declared dead when its lock is free at two scans at least
    ``confirm_seconds`` apart (``suspects`` keeps the first sighting between calls),
    so a live process re-taking its lock after a dropped connection is spared.
    Returns the ids marked crashed.
    """
    if ledger.dialect != "postgresql":
        return []
    me = ledger.owner
    runs = ledger.running_runs()
    owners = {r["owner"] for r in runs if r.get("owner") and r["owner"] != me}
    for owner in set(suspects) - owners:
        del suspects[owner]
    now = time.monotonic()
    dead: set[str] = set()
    for owner in owners:
        if ledger.owner_alive(owner):
            suspects.pop(owner, None)
        elif now - suspects.setdefault(owner, now) >= confirm_seconds and owner_gone(owner) in (
            True,
            None,
        ):
            dead.add(owner)
    ids = [r["id"] for r in runs if r.get("owner") in dead]
    crashed = ledger.mark_crashed(0.0, exclude_owner=me, run_ids=ids) if ids else []
    for run_id in crashed:
        log.warning("paper run %s: its owner process is gone (lock free): marked crashed", run_id)
    for owner in dead:
        suspects.pop(owner, None)
    return crashed
