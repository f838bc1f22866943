"""Several server processes on one PostgreSQL ledger: the kill-switch listener.

Every process whose kill switch is attached to a PostgreSQL ledger runs one
:class:`ClusterListener`, a daemon thread with a dedicated autocommit psycopg
connection (outside the SQLAlchemy pool) named ``alphaswarm-kill:<host>:<pid>``
in ``pg_stat_activity``:

1. ``LISTEN alphaswarm_kill_switch``, *then* re-read the ``kill_switch`` row, so an
   engagement committed before the LISTEN is seen by the read and one committed
   after it by the notification: nothing is missed, at start and after every
   reconnect.
2. Wait on ``conn.notifies(timeout=1 s)``. A ``kill`` notification makes the
   process halt its own targets at once (:meth:`KillSwitch.follow`: no write of the
   row, no new NOTIFY) and acknowledge the epoch in ``kill_switch_acks`` as soon as
   its final rows are committed; ``reset`` releases it locally. The same engagement
   in a new mode (re-engaged elsewhere) is applied in that mode. A per-bot ``kill``
   or ``reset`` (payload with ``bots``) makes the process re-read the row and stop
   (or release) those bots' sessions here too.
3. After every wait, re-read the row (the safety net when a notification is lost),
   keep this process's owner advisory lock alive and, every few seconds, mark the
   runs of dead owners crashed (:func:`alphaswarm.paper.recovery.reap_dead_owners`).

A cut connection is replaced after one re-read interval; while the database is
unreachable the row is re-read every interval through the ledger, and the kill
switch fails closed (``store_ok`` False) when that read fails.

Several processes on one SQLite file follow each other through
:class:`SqliteWatcher`: a daemon thread, running only while a session runs or a
server serves, with a connection of its own that reads ``PRAGMA data_version``
every 50 ms. That number changes whenever another connection commits to the
file; a change makes the kill switch re-read its row, so an engagement written by
another process halts this one's sessions about as fast as a notification would.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from alphaswarm.ledger.store import KILL_SWITCH_CHANNEL

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.killswitch import KillSwitch

log = logging.getLogger(__name__)

#: ``application_name`` prefix of the listener connections (one per server process).
LISTENER_PREFIX = "alphaswarm-kill:"


def listener_name(owner: str) -> str:
    """The ``application_name`` of ``owner``'s listener (PostgreSQL keeps 63 bytes)."""
    return f"{LISTENER_PREFIX}{owner}"[:63]


def conninfo(url: str) -> str:
    """A libpq connection URI for psycopg from an SQLAlchemy ``postgresql+driver://`` URL."""
    sa_url = make_url(url).set(drivername="postgresql")
    return sa_url.render_as_string(hide_password=False)


class ClusterListener:
    """The kill-switch listener thread of one process (see the module docstring).

    Parameters
    ----------
    kill_switch : KillSwitch
        The process's kill switch; it is told about every kill and reset.
    ledger : Ledger
        The PostgreSQL ledger shared by the server processes.
    interval : float
        Seconds between re-reads of the row (and the longest wait on a notification).
    reap_every : float
        Seconds between scans for runs of dead owners.
    """

    def __init__(
        self,
        kill_switch: KillSwitch,
        ledger: Ledger,
        *,
        interval: float = 1.0,
        reap_every: float = 5.0,
    ) -> None:
        self.kill_switch = kill_switch
        self.ledger = ledger
        self.interval = float(interval)
        self.reap_every = float(reap_every)
        self.application_name = listener_name(ledger.owner)
        #: Times the LISTEN connection was (re)established.
        self.connects = 0
        #: Notifications received.
        self.notifications = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._conn: Any = None
        self._suspects: dict[str, float] = {}
        self._last_reap = 0.0
        self._thread = threading.Thread(
            target=self._run, name="alphaswarm-kill-listener", daemon=True
        )

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> ClusterListener:
        """Start the thread (returns at once)."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=1.0)
            except Exception:  # noqa: BLE001 - best effort; the wait ends within interval
                pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------------
    def _active(self) -> bool:
        # A listener whose ledger was replaced (set_ledger) retires itself.
        return not self._stop.is_set() and self.kill_switch._ledger is self.ledger

    def _run(self) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - the postgres extra installs it
            log.warning("psycopg 3 is missing: the kill switch re-reads the row every second")
            psycopg = None
        warned = False
        while self._active():
            if psycopg is not None:
                try:
                    self._listen(psycopg)
                    warned = False
                except Exception as exc:  # noqa: BLE001 - reconnect after one interval
                    if self._active():
                        level = logging.DEBUG if warned else logging.WARNING
                        log.log(level, "kill-switch listener connection lost: %s", exc)
                        warned = True
                finally:
                    self.connected.clear()
                    conn, self._conn = self._conn, None
                    if conn is not None:
                        try:
                            conn.close()
                        except Exception:  # noqa: BLE001
                            pass
            if not self._active():
                break
            # Not listening: the row is the only source, re-read every interval.
            self._reread()
            self._housekeeping()
            self._stop.wait(self.interval)

    def _listen(self, psycopg: Any) -> None:
        conn = psycopg.connect(
            conninfo(self.ledger.url),
            autocommit=True,
            application_name=self.application_name,
            connect_timeout=5,
        )
        self._conn = conn
        conn.execute(f"LISTEN {KILL_SWITCH_CHANNEL}")
        self.connects += 1
        self.connected.set()
        self._reread()  # after LISTEN: an engagement is in the row or in a notification
        while self._active():
            for note in conn.notifies(timeout=self.interval):
                self.notifications += 1
                self._on_notify(note.payload)
                if not self._active():
                    return
            self._reread()
            self._housekeeping()

    def _on_notify(self, payload: str) -> None:
        try:
            state = json.loads(payload)
        except ValueError:
            log.warning("ignoring a kill-switch notification that is not JSON: %.200s", payload)
            return
        if not isinstance(state, dict) or state.get("action") not in ("kill", "reset"):
            return
        if "bots" in state:  # a per-bot halt or release: the row says which bots, and why
            self._reread()
            return
        state["engaged"] = state["action"] == "kill"
        try:
            self.kill_switch.follow(state, wait=True)
        except Exception:  # noqa: BLE001 - the listener must keep listening
            log.exception("applying a kill-switch notification failed")

    def _reread(self) -> None:
        try:
            self.kill_switch.refresh(force=True, wait=True)
        except Exception:  # noqa: BLE001
            log.exception("re-reading the kill-switch row failed")

    def _housekeeping(self) -> None:
        try:
            self.ledger.hold_owner_lock()
        except Exception:  # noqa: BLE001
            log.exception("could not keep the owner lock")
        now = time.monotonic()
        if now - self._last_reap < self.reap_every:
            return
        self._last_reap = now
        from alphaswarm.paper.recovery import reap_dead_owners

        try:
            reap_dead_owners(self.ledger, self._suspects)
        except Exception:  # noqa: BLE001
            log.exception("scanning for runs of dead owners failed")


class SqliteWatcher:
    """Follows a SQLite ledger's kill-switch row by watching ``PRAGMA data_version``.

    Started by :meth:`alphaswarm.paper.killswitch.KillSwitch.watch`; it ends by itself once
    nothing needs it (no session runs, no server serves) or the ledger is replaced.

    Parameters
    ----------
    kill_switch : KillSwitch
        The process's kill switch; it re-reads its row after every change.
    ledger : Ledger
        The SQLite ledger (a file; an in-memory database has nothing to watch).
    interval : float
        Seconds between two reads of ``data_version``.
    """

    def __init__(self, kill_switch: KillSwitch, ledger: Ledger, *, interval: float = 0.05) -> None:
        self.kill_switch = kill_switch
        self.ledger = ledger
        self.interval = float(interval)
        url = make_url(ledger.url)
        database = url.database or ""
        self.database: str | None = None
        if database and database != ":memory:" and url.query.get("mode") != "memory":
            self.database = (
                database if database.startswith("file:") else str(Path(database).resolve())
            )
        #: Changes of the file seen (each made the switch re-read its row).
        self.changes = 0
        self._thread = threading.Thread(
            target=self._run, name="alphaswarm-kill-watcher", daemon=True
        )

    def start(self) -> SqliteWatcher:
        """Start the thread (returns at once)."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def _connect(self) -> sqlite3.Connection:
        assert self.database is not None
        uri = self.database.startswith("file:")
        return sqlite3.connect(self.database, uri=uri, check_same_thread=False, timeout=1.0)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        last: int | None = None
        try:
            while self.kill_switch._keep_watching(self):
                try:
                    if conn is None:
                        conn = self._connect()
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error as exc:
                    log.debug("kill-switch watcher: %s", exc)
                    if conn is not None:
                        conn.close()
                    conn, version = None, None
                if version is not None and version != last:
                    if last is not None:
                        self.changes += 1
                    last = version
                    try:  # the first read too: what was committed before the watch began
                        self.kill_switch.refresh(force=True, wait=True)
                    except Exception:  # noqa: BLE001 - the watcher must keep watching
                        log.exception("re-reading the kill-switch row failed")
                time.sleep(self.interval)
        finally:
            if conn is not None:
                conn.close()
