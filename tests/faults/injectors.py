"""Fault injectors with real parts: a SQLite write lock held by another connection."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from alphaswarm.ledger import Ledger

#: A bot that trades within a few bars (fast crossovers on the seeded synthetic feed).
FAST_BOT: dict[str, Any] = {
    "name": "faults-fast",
    "strategy": "sma_cross",
    "params": {"fast": 2, "slow": 5},
    "universe": ["DEMO"],
    "data": {"feed": "synthetic", "seed": 11, "interval": "1m"},
    "risk": {"max_position_qty": 1000, "kill_switch_attached": True},
}


class SqliteWriteLock:
    """Holds the write lock of a SQLite file (``BEGIN IMMEDIATE``) from its own connection.

    Every other writer, of this process or another, then waits for its busy timeout
    and fails, as when another program keeps a long write transaction open.
    """

    def __init__(self, path: Path | str) -> None:
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._guard = threading.Lock()
        self.held = threading.Event()
        self.released = threading.Event()

    def hold(self, seconds: float | None = None) -> None:
        """Take the lock now; release it after ``seconds`` (on a timer) when given."""
        with self._guard:
            self._conn.execute("BEGIN IMMEDIATE")
            self.held.set()
        if seconds is not None:
            threading.Timer(seconds, self.release).start()

    def release(self) -> None:
        """End the transaction (the lock is free again)."""
        with self._guard:
            if self.held.is_set() and not self.released.is_set():
                self._conn.execute("ROLLBACK")
                self.released.set()

    def close(self) -> None:
        """Release, then close the connection."""
        self.release()
        self._conn.close()


def frames_not_committed(ledger: Ledger, run_id: str, published: list[dict]) -> list[str]:
    """Published frames of ``run_id`` whose row (or whose fill) the ledger does not hold."""
    stored = set(ledger.frames(run_id)["seq"])
    fills = set(ledger.fills(run_id)["id"])
    missing = [f"frame #{f['seq']} {f['stage']}" for f in published if f["seq"] not in stored]
    for f in published:
        if f["stage"] == "order.filled":
            fill_id = (f.get("fill") or {}).get("id") or (f.get("fill") or {}).get("fill_id")
            if fill_id not in fills:
                missing.append(f"fill {fill_id} of frame #{f['seq']}")
    return missing


def fill_counts(ledger: Ledger) -> list[tuple[str, str, int, int]]:
    """``(run id, status, num_fills, count of paper_fills)`` of every run."""
    rows = ledger.sql(
        "SELECT r.id, r.status, r.num_fills, "
        "(SELECT count(*) FROM paper_fills f WHERE f.paper_run_id = r.id) AS fills "
        "FROM paper_trading_runs r ORDER BY r.id"
    )
    return [(r.id, r.status, int(r.num_fills), int(r.fills)) for r in rows.itertuples()]
