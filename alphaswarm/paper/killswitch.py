"""The process kill switch: latched, fans out to every registered halt target.

Components register halt targets by name: the kit registers ``paper`` (every
paper session) and ``bots`` (every bot's sessions); ``agents``, ``rl``,
``workflows``, ``terraform`` and ``quant-agents`` are open for extensions.
``engage`` calls every target concurrently and returns per-target counts and
the elapsed milliseconds. It stays engaged until :meth:`KillSwitch.reset`
(or its ``ttl_seconds`` runs out).

Modes: ``cancel`` (cancel open orders and close sessions, positions left as
they are), ``flatten`` (also close every position), ``reduce_only`` (sessions
go on, only orders that shrink exposure pass) and ``freeze`` (sessions go on,
no new orders, open orders left working).

The halt never waits for the ledger: the row is written meanwhile on the kill
switch's own connection by a thread of its own
(:mod:`alphaswarm.paper.killswitch_writer`), and :meth:`KillSwitch.engage` waits for
that write's first attempt only once every target has halted.

It fails closed: if its state cannot be written or read back from the
ledger, sessions treat it as engaged and refuse new orders. An engagement the
ledger could not take is *pending* (``persisted`` False in :meth:`KillSwitch.state`
and in the result of :meth:`KillSwitch.engage`): this process holds it engaged
and refuses orders, and the writer thread tries it again (at once after a lock
held elsewhere, with a growing delay after a ledger out of reach) until the
ledger takes it. If the process dies before that, the engagement is lost with it
(no other process could see it): see ``docs/faults.md``.

The process's switch (:func:`kill_switch`) answers from the persisted state: on
first use it attaches to the default ledger, and :meth:`KillSwitch.state`,
:meth:`KillSwitch.engage` and :meth:`KillSwitch.reset` re-read the row. While a
session runs (or a server serves) on a SQLite ledger, a watcher thread follows
the file's ``PRAGMA data_version`` (:class:`~alphaswarm.paper.cluster.SqliteWatcher`), so
an engagement written by another process halts this one's sessions within a
few tens of milliseconds.

Several server processes on one PostgreSQL ledger share one switch: the
``kill_switch`` row is the latch and its ``pg_notify`` (same transaction) the
signal. Each process follows the row (:meth:`KillSwitch.follow`, fed by the
:class:`~alphaswarm.paper.cluster.ClusterListener` thread and by every re-read): a new
engagement epoch halts the process's own targets without writing the row again,
then the process acknowledges the epoch in ``kill_switch_acks``. The engaging
process reports every process's acknowledgement (``cluster`` in the result).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import param

from alphaswarm.model import ModelError
from alphaswarm.paper import tuning
from alphaswarm.paper.killswitch_writer import KillSwitchWriter, RowWrite

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

log = logging.getLogger(__name__)

MODES = ("cancel", "flatten", "reduce_only", "freeze")
#: Target names reserved for extensions, each with its HTTP halt route.
EXTENSION_TARGETS = {
    "agents": "/agents/halt",
    "rl": "/rl/halt-all",
    "workflows": "/workflows/halt",
    "terraform": "/terraform/halt",
    "quant-agents": "/quant-agents/halt",
}

HaltTarget = Callable[[str, str], int]


class KillSwitch(param.Parameterized):
    """One per process. Bind a widget to ``engaged``; call :meth:`engage` / :meth:`reset`."""

    engaged = param.Boolean(default=False, constant=True, doc="Whether the switch is engaged.")
    mode = param.Selector(
        default="cancel", objects=list(MODES), constant=True, doc="Effect of the engagement."
    )
    reason = param.String(default="", constant=True, doc="Why it was engaged.")
    engaged_at = param.Date(default=None, allow_None=True, constant=True, doc="When (UTC).")
    ttl_seconds = param.Number(
        default=None, allow_None=True, constant=True, doc="Releases itself after this long."
    )
    last = param.Dict(
        default={},
        constant=True,
        doc="Per-target counts, failures and elapsed_ms of the last engage.",
    )
    halted_bots = param.List(
        default=[], constant=True, doc="Bot ids halted by a per-bot engagement."
    )
    store_ok = param.Boolean(
        default=True, constant=True, doc="False when the ledger state could not be read or written."
    )

    REFRESH_SECONDS: ClassVar[float] = 1.0
    #: Threads of the pool that runs halt targets besides the engaging thread's own.
    POOL_WORKERS: ClassVar[int] = 2
    #: Seconds before retrying a write the ledger refused for being out of reach (a
    #: locked ledger is retried at once), doubled up to PERSIST_RETRY_MAX.
    PERSIST_RETRY_FIRST: ClassVar[float] = 0.05
    PERSIST_RETRY_MAX: ClassVar[float] = 2.0
    #: Longest wait of one write of the row for a lock held by another connection or
    #: process (the kill switch's own connection: see :mod:`alphaswarm.paper.killswitch_writer`).
    WRITE_WAIT_SECONDS: ClassVar[float] = 0.1
    #: Longest wait of :meth:`engage`, after the halt, for the first write of its row.
    PERSIST_WAIT_SECONDS: ClassVar[float] = 1.0
    #: Seconds between two looks at a SQLite ledger's ``PRAGMA data_version``.
    WATCH_SECONDS: ClassVar[float] = 0.05
    #: How long an engagement on PostgreSQL waits for the other processes' acks.
    ACK_WAIT_SECONDS: ClassVar[float] = 0.25

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._targets: dict[str, list[HaltTarget]] = {name: [] for name in EXTENSION_TARGETS}
        self._bot_targets: list[Callable[[str, str, str], int]] = []
        self._lock = threading.RLock()
        self._ledger: Ledger | None = None
        self._last_refresh = 0.0
        # created with the second halt target (the first runs on the engaging thread)
        self._pool: ThreadPoolExecutor | None = None
        self._last_commit = 0.0
        self._last_close = 0.0
        # (epoch, start) of a cluster engagement whose ack this process still owes
        self._ack_due: tuple[int, float] | None = None
        # why and how each bot was halted (shared through the row's scope)
        self._bot_halts: dict[str, dict[str, str]] = {}
        # ``updated_at`` of this process's last write of the row: older reads are stale
        self._written_at: datetime | None = None
        # Cluster (PostgreSQL): the engagement epoch this process has applied, the
        # listener thread, and one thread that runs halts found by a re-read (a re-read
        # can happen inside a session's step, which must not wait for its own halt).
        self._epoch: int | None = None
        self._listener: Any = None
        self._follow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kill-follow")
        #: Set while an :meth:`engage` runs: sessions take no new bar and defer their
        #: commits meanwhile, so the halt has the CPU and the ledger to itself.
        self.engaging = threading.Event()
        self._engages_running = 0
        # The write of this process's state the ledger has not taken yet (pending),
        # None when the ledger holds it; the thread that writes the row (on the kill
        # switch's own connection, off the halt's path).
        self._unpersisted: RowWrite | None = None
        self._writer = KillSwitchWriter(
            self._written,
            self._write_failed,
            wait_seconds=self.WRITE_WAIT_SECONDS,
            retry_first=self.PERSIST_RETRY_FIRST,
            retry_max=self.PERSIST_RETRY_MAX,
        )
        # A runtime's switch attaches itself to the runtime's ledger on first use.
        self._auto_attach = False
        self._runtime: Any = None
        # SQLite: the data_version watcher, and what keeps it running.
        self._watcher: Any = None
        self._watch_while: list[Callable[[], bool]] = []

    # -- wiring -----------------------------------------------------------------------
    def attach_ledger(self, ledger: Ledger | None) -> None:
        """Persist the state in ``ledger`` (and read it back there).

        On PostgreSQL this also starts the listener thread that makes this process
        follow engagements made by other processes (see :mod:`alphaswarm.paper.cluster`).
        """
        if self._listener is not None:
            self._listener.stop(timeout=0)
            self._listener = None
        with self._lock:
            self._ledger = ledger
            self._epoch = None
            self._written_at = None
            pending = self._unpersisted
            if pending is not None:  # written to the ledger attached now, or dropped
                self._unpersisted = None
                if ledger is None:
                    self._writer.drop()
                else:
                    self._unpersisted = self._writer.submit(pending.moved_to(ledger))
        if ledger is not None:
            self.refresh(force=True, adopt=True)
            if self._clustered:
                from alphaswarm.paper.cluster import ClusterListener

                self._listener = ClusterListener(
                    self, ledger, interval=self.REFRESH_SECONDS
                ).start()
        with self._lock:
            if self._watch_while:
                self._start_watcher()

    def _ensure_ledger(self) -> None:
        """A runtime's switch: attach to the runtime's ledger if none is attached yet.

        Called before the lock is taken (attaching takes the runtime's lock, which is
        held while a ledger is attached to this switch).
        """
        if self._ledger is not None or not self._auto_attach or self._runtime is None:
            return
        try:
            self._runtime.ledger  # noqa: B018 - opening it attaches it here
        except Exception:  # noqa: BLE001 - fail closed: the state cannot be read
            log.exception("kill switch: the default ledger could not be opened")
            with param.edit_constant(self):
                self.store_ok = False

    def watch(self, active: Callable[[], bool]) -> None:
        """Follow engagements written by other processes at once while ``active()`` is true.

        On a SQLite ledger this runs one watcher thread with a connection of its own
        (:class:`~alphaswarm.paper.cluster.SqliteWatcher`): every commit to the file changes
        its ``PRAGMA data_version``, and a change makes this switch re-read its row.
        Sessions call it when they start, the server when it starts; the thread ends
        once every ``active()`` is false. PostgreSQL has its listener already.
        """
        with self._lock:
            self._watch_while.append(active)
            self._start_watcher()

    @property
    def _followed(self) -> bool:
        """True while a thread follows the row (PostgreSQL listener, SQLite watcher)."""
        listener, watcher = self._listener, self._watcher
        if listener is not None and listener.alive:
            return True
        return watcher is not None and watcher.alive and watcher.ledger is self._ledger

    def _start_watcher(self) -> None:
        """Under the lock: a watcher for the attached SQLite ledger, unless one runs."""
        ledger = self._ledger
        if ledger is None or ledger.dialect != "sqlite":
            return
        watcher = self._watcher
        if watcher is not None and watcher.alive and watcher.ledger is ledger:
            return
        from alphaswarm.paper.cluster import SqliteWatcher

        self._watcher = SqliteWatcher(self, ledger, interval=self.WATCH_SECONDS)
        if self._watcher.database is None:  # in memory: one process, nothing to watch
            self._watcher = None
            return
        self._watcher.start()

    def _keep_watching(self, watcher: Any) -> bool:
        """Called by the watcher each turn: False when it should end."""
        with self._lock:
            if watcher is not self._watcher or watcher.ledger is not self._ledger:
                return False
            self._watch_while = [active for active in self._watch_while if active()]
            if not self._watch_while:
                self._watcher = None
                return False
            return True

    @property
    def _clustered(self) -> bool:
        """True when the state lives in PostgreSQL, shared by several processes."""
        ledger = self._ledger
        return ledger is not None and ledger.dialect == "postgresql"

    def register(self, name: str, target: HaltTarget) -> None:
        """Add a halt target under ``name``: ``target(reason, mode) -> count halted``.

        The first target of a second name starts the small pool that runs targets
        concurrently: its threads exist before an engagement needs them.
        """
        with self._lock:
            self._targets.setdefault(name, []).append(target)
            if self._pool is None and sum(1 for ts in self._targets.values() if ts) > 1:
                self._pool = _started_pool(self.POOL_WORKERS, "kill-switch")

    def unregister(self, name: str, target: HaltTarget | None = None) -> None:
        """Remove one target (or every target) registered under ``name``."""
        with self._lock:
            if target is None:
                self._targets[name] = []
            elif target in self._targets.get(name, []):
                self._targets[name].remove(target)

    def note_commit(self, sessions: int) -> None:
        """Called by a halt target once the final rows of ``sessions`` are committed.

        In a cluster the epoch being halted is acknowledged right then: the other
        processes' sessions do not wait for this one's frames and outputs.
        """
        self._last_commit = time.perf_counter()
        with self._lock:
            due, self._ack_due = self._ack_due, None
        if due is not None:
            epoch, started = due
            elapsed_ms = (self._last_commit - started) * 1e3
            self._write_ack(epoch, sessions, elapsed_ms, {"acked": "final rows committed"})

    def note_closed(self, sessions: int) -> None:
        """Called by a halt target once the closing rows of ``sessions`` are committed.

        Their counters, state, cancelled orders and last frames: see
        :meth:`alphaswarm.PaperSession.finish_many`.
        """
        self._last_close = time.perf_counter()

    @property
    def targets(self) -> list[str]:
        """Names of every target, registered or reserved."""
        return list(self._targets)

    # -- halting ----------------------------------------------------------------------
    def halt_target(self, name: str, reason: str, mode: str = "cancel") -> dict[str, Any]:
        """Halt what is registered under ``name`` only; zero is a valid count."""
        if name not in self._targets:
            raise KeyError(f"unknown halt target {name!r}; known: {', '.join(self._targets)}")
        t0 = time.perf_counter()
        halted, failures = self._run_targets(name, list(self._targets[name]), reason, mode)
        return {
            "target": name,
            "halted": halted,
            "failures": failures,
            "elapsed_ms": (time.perf_counter() - t0) * 1e3,
        }

    @staticmethod
    def _run_targets(
        name: str, targets: list[HaltTarget], reason: str, mode: str
    ) -> tuple[int, list[str]]:
        halted, failures = 0, []
        for target in targets:
            try:
                halted += int(target(reason, mode) or 0)
            except Exception as exc:  # noqa: BLE001 - one failing target never stops the rest
                log.exception("halt target %s failed", name)
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
        return halted, failures

    @contextmanager
    def _engaging(self) -> Iterator[None]:
        """Hold :attr:`engaging` set (several engagements may overlap).

        In a process that opted in to interpreter tuning (``alphaswarm serve
        --tune-interpreter``) the collector is held off and the switch interval
        shortened meanwhile (:func:`alphaswarm.paper.tuning.latency_critical`); otherwise
        nothing interpreter-wide changes.
        """
        with self._lock:
            self._engages_running += 1
            self.engaging.set()
        try:
            with tuning.latency_critical():
                yield
        finally:
            with self._lock:
                self._engages_running -= 1
                if not self._engages_running:
                    self.engaging.clear()

    def engage(
        self,
        reason: str = "kill switch engaged",
        *,
        mode: str = "cancel",
        ttl_seconds: float | None = None,
        bot: str | None = None,
        actor: str = "python",
    ) -> dict[str, Any]:
        """Engage: latch, then halt every target concurrently.

        The halt does not wait for the ledger: the row is written meanwhile on the
        kill switch's own connection, and this call waits for that write (at most
        :attr:`PERSIST_WAIT_SECONDS`) only after the halt. A row the ledger has not
        taken by then (another process holds its lock) is pending: ``persisted``
        False, written in the background as soon as the ledger takes it.

        Parameters
        ----------
        reason : str
            Recorded in the ledger's audit log and on every stopped run.
        mode : str
            ``cancel`` (default), ``flatten``, ``reduce_only`` or ``freeze``.
        ttl_seconds : float, optional
            Release automatically after this many seconds.
        bot : str, optional
            Halt only this bot's sessions (and refuse its new ones) instead of everything.
        actor : str
            Who engaged it (``api``, ``dashboard``, ``python``, ``account-risk``).

        Returns
        -------
        dict
            ``{engaged, persisted, mode, reason, targets: {name: {halted, failures}},
            failures, elapsed_ms, final_rows_committed_ms, closing_rows_committed_ms}``:
            when the stopped sessions' final run rows (status, reason, end time, their
            open orders cancelled) were committed, and when their closing rows
            (counters, state, last bars and frames) were (``None`` when none were
            written).
        """
        if mode not in MODES:
            raise ModelError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        if ttl_seconds is not None and (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, int | float)
            or not 0 < ttl_seconds < 10 * 365 * 86400
        ):
            raise ModelError(f"ttl_seconds: must be a number > 0, got {ttl_seconds!r}")
        self._ensure_ledger()
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        failures: list[str] = []
        with self._engaging():
            with self._lock:
                if bot is not None:
                    with param.edit_constant(self):
                        self.halted_bots = sorted({*self.halted_bots, bot})
                    self._bot_halts[bot] = {"reason": reason, "mode": mode}
                    targets = {f"bot:{bot}": [lambda r, m: self._halt_bot_sessions(bot, r, m)]}
                else:
                    with param.edit_constant(self):
                        self.param.update(
                            engaged=True,
                            mode=mode,
                            reason=reason,
                            engaged_at=now,
                            ttl_seconds=ttl_seconds,
                        )
                    targets = {name: list(ts) for name, ts in self._targets.items()}
                epoch_before = self._epoch
                # Written on the writer's thread meanwhile: the halt never waits for it.
                write = self._submit_write(
                    actor, "kill_switch.engage", reason, mode, ttl_seconds, bot
                )
            per_target = self._fan_out(targets, reason, mode, failures)
        elapsed_ms = (time.perf_counter() - t0) * 1e3
        persisted = True
        if write is not None:
            write.attempted.wait(self.PERSIST_WAIT_SECONDS)
            persisted = write.written
        if not persisted:
            failures.append(
                "ledger: kill switch state could not be written yet: pending, "
                "retried until the ledger takes it (this process refuses orders)"
            )
        with self._lock:
            # A new epoch (released -> engaged) is acknowledged by every process.
            new_epoch = bot is None and self._epoch is not None and self._epoch != epoch_before
            if new_epoch and self._clustered and persisted:
                self._ack_due = (self._epoch, t0)
        committed = self._last_commit
        committed_ms = (committed - t0) * 1e3 if committed >= t0 else None
        closed_ms = (self._last_close - t0) * 1e3 if self._last_close >= t0 else None
        cluster = None
        if new_epoch and self._clustered and persisted:
            cluster = self._ack_and_collect(self._epoch, per_target, mode, elapsed_ms, t0)
        result = {
            "engaged": self.engaged,
            "persisted": persisted and self._unpersisted is None,
            "mode": mode,
            "reason": reason,
            "bot": bot,
            "ttl_seconds": ttl_seconds,
            "engaged_at": now.isoformat(),
            "targets": per_target,
            "failures": failures,
            "elapsed_ms": elapsed_ms,
            "final_rows_committed_ms": committed_ms,
            "closing_rows_committed_ms": closed_ms,
        }
        if cluster is not None:
            result["cluster"] = cluster
        with param.edit_constant(self):
            self.last = result
        return result

    def _fan_out(
        self, targets: dict[str, list[HaltTarget]], reason: str, mode: str, failures: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Run every target concurrently; per-target counts, failures added to ``failures``.

        The first target with halts registered (``paper`` in a server) runs on this
        thread, which would otherwise only wait, while the pool runs the others: one
        thread hand-over less before the sessions stop. A name nothing is
        registered under halts nothing and costs no hand-over at all.
        """
        active = [name for name, ts in targets.items() if ts]
        pool = self._pool
        if pool is None and len(active) > 1:
            with self._lock:
                if self._pool is None:
                    self._pool = _started_pool(self.POOL_WORKERS, "kill-switch")
                pool = self._pool
        futures = {
            name: pool.submit(self._run_targets, name, targets[name], reason, mode)
            for name in active[1:]
        }
        results = {}
        if active:
            results[active[0]] = self._run_targets(active[0], targets[active[0]], reason, mode)
        per_target = {}
        for name in targets:
            if name in futures:
                results[name] = futures[name].result()
            halted, target_failures = results.get(name, (0, []))
            per_target[name] = {"halted": halted, "failures": target_failures}
            failures.extend(target_failures)
        return per_target

    # -- cluster (several processes on one PostgreSQL ledger) --------------------------
    @staticmethod
    def _sessions_halted(per_target: dict[str, dict[str, Any]], mode: str) -> int:
        """Sessions this process halted: ``paper`` and ``bots`` share the sessions.

        Both targets stop the same sessions concurrently and each session is stopped
        once, so the counts add up; in ``reduce_only``/``freeze`` both count all.
        """
        paper = [per_target.get(n, {}).get("halted", 0) for n in ("paper", "bots")]
        return sum(paper) if mode in ("cancel", "flatten") else max(paper)

    def _ack(
        self, epoch: int, per_target: dict[str, dict[str, Any]], mode: str, elapsed_ms: float
    ) -> int:
        """Ack ``epoch`` after the halt unless a final-row commit acknowledged it already."""
        sessions = self._sessions_halted(per_target, mode)
        with self._lock:
            due = self._ack_due is not None and self._ack_due[0] == epoch
            if due:
                self._ack_due = None
        if due:
            self._write_ack(epoch, sessions, elapsed_ms, {"mode": mode, "targets": per_target})
        return sessions

    def _write_ack(self, epoch: int, sessions: int, elapsed_ms: float, detail: dict) -> None:
        """Record this process's ack of ``epoch`` (its final rows are committed)."""
        ledger = self._ledger
        if ledger is None:
            return
        try:
            ledger.record_kill_ack(epoch, ledger.owner, sessions, elapsed_ms, detail)
        except Exception:  # noqa: BLE001 - the halt is done; a missing ack is reported
            log.exception("could not acknowledge kill-switch epoch %s", epoch)

    def _ack_and_collect(
        self,
        epoch: int,
        per_target: dict[str, dict[str, Any]],
        mode: str,
        elapsed_ms: float,
        t0: float,
    ) -> dict[str, Any]:
        """Ack for this process, then wait for the other processes' acks.

        Waits at most :attr:`ACK_WAIT_SECONDS` after the engage began, for every
        process listening on the ledger. Returns ``{epoch, processes: [{process,
        sessions, elapsed_ms, after_engage_ms}], sessions, missing, waited_ms}``;
        ``after_engage_ms`` is the ack's commit minus ``engaged_at``, both on the
        database clock.
        """
        from alphaswarm.paper.cluster import LISTENER_PREFIX, listener_name

        self._ack(epoch, per_target, mode, elapsed_ms)
        ledger = self._ledger
        assert ledger is not None
        deadline = t0 + self.ACK_WAIT_SECONDS
        acks: list[dict] = []
        expected: set[str] = set()
        try:
            expected = set(ledger.connected_applications(LISTENER_PREFIX))
            expected.add(listener_name(ledger.owner))
            while True:
                acks = ledger.kill_acks(epoch)
                if {listener_name(a["process"]) for a in acks} >= expected:
                    break
                if time.perf_counter() >= deadline:
                    break
                time.sleep(0.005)
            engaged_at = ledger.kill_switch_state().get("engaged_at")
        except Exception:  # noqa: BLE001 - the engagement stands; the report is partial
            log.exception("could not collect the kill-switch acks of epoch %s", epoch)
            engaged_at = None
        processes = []
        for a in acks:
            after = None
            if engaged_at is not None and a.get("done_at") is not None:
                after = (a["done_at"] - engaged_at).total_seconds() * 1e3
            processes.append(
                {
                    "process": a["process"],
                    "sessions": a["sessions"],
                    "elapsed_ms": a["elapsed_ms"],
                    "after_engage_ms": after,
                }
            )
        acked = {listener_name(a["process"]) for a in acks}
        return {
            "epoch": epoch,
            "processes": processes,
            "sessions": sum(p["sessions"] for p in processes),
            "missing": sorted(n.removeprefix(LISTENER_PREFIX) for n in expected - acked),
            "waited_ms": (time.perf_counter() - t0) * 1e3,
        }

    def follow(
        self, state: dict[str, Any], *, wait: bool = True, adopt: bool = False
    ) -> dict[str, Any] | None:
        """Apply the shared row (or a NOTIFY payload) that another process may have written.

        A newer engagement epoch than this process has applied engages the switch here
        *without* writing the row or notifying again, halts every local target and
        acknowledges the epoch (PostgreSQL); a release of the epoch we follow releases
        it here. Idempotent per epoch, so the notification and the re-reads that see
        the same engagement halt once.

        Parameters
        ----------
        state : dict
            ``{engaged, epoch, mode, reason, engaged_at, ttl_seconds, scope, expired}``
            (a row) or a notification payload with ``engaged`` set.
        wait : bool
            Halt on this thread (the listener) or hand the halt to a helper thread
            (re-reads from inside a session's step must not wait for it).
        adopt : bool
            Take the state over without halting (at attach: nothing runs yet).

        Returns
        -------
        dict or None
            ``{epoch, halted, elapsed_ms, ...}`` when this call halted targets.
        """
        raw_epoch = state.get("epoch")
        epoch = int(raw_epoch) if raw_epoch is not None else None
        with self._lock:
            if self._unpersisted is not None:
                # This process's engagement is not written yet: what others announce
                # predates it and must not release it; it is written when it can be.
                return None
            if state.get("engaged") and not state.get("expired"):
                if self._epoch is not None and (epoch is None or epoch <= self._epoch):
                    # Applied already (or our own engagement). A local release whose write
                    # failed leaves the row engaged: fail closed, engaged again.
                    if not self.engaged and epoch == self._epoch:
                        with param.edit_constant(self):
                            self.engaged = True
                    new_mode = state.get("mode")
                    if epoch != self._epoch or new_mode not in MODES or new_mode == self.mode:
                        return None
                    # The same engagement in another mode (re-engaged elsewhere, e.g.
                    # reduce_only -> flatten): apply the new mode here too.
                    reason = state.get("reason") or self.reason
                    with param.edit_constant(self):
                        self.param.update(mode=new_mode, reason=reason)
                    if adopt:
                        return None
                    targets = {name: list(ts) for name, ts in self._targets.items()}
                    return self._dispatch_follow(None, targets, reason, new_mode, wait)
                if epoch is None and self.engaged:
                    return None
                mode = state.get("mode") if state.get("mode") in MODES else "cancel"
                reason = state.get("reason") or "kill switch engaged by another process"
                at = state.get("engaged_at")
                if isinstance(at, str):
                    at = datetime.fromisoformat(at)
                with param.edit_constant(self):
                    self.param.update(
                        engaged=True,
                        mode=mode,
                        reason=reason,
                        engaged_at=at or datetime.now(UTC),
                        ttl_seconds=state.get("ttl_seconds"),
                    )
                self._epoch = epoch
                if adopt:
                    return None
                targets = {name: list(ts) for name, ts in self._targets.items()}
            else:
                if (
                    not state.get("engaged")
                    and self.engaged
                    and self._epoch is not None
                    and epoch is not None
                    and epoch >= self._epoch
                ):
                    # Released elsewhere: release here too (nothing to write).
                    halted = (state.get("scope") or {}).get("halted_bots") or []
                    with param.edit_constant(self):
                        self.param.update(
                            engaged=False,
                            reason="",
                            engaged_at=None,
                            ttl_seconds=None,
                            halted_bots=sorted(halted),
                        )
                return None
        return self._dispatch_follow(epoch, targets, reason, mode, wait)

    def _dispatch_follow(
        self,
        epoch: int | None,
        targets: dict[str, list[HaltTarget]],
        reason: str,
        mode: str,
        wait: bool,
    ) -> dict[str, Any] | None:
        """Run a followed halt here (``wait``) or on the helper thread."""
        if wait:
            return self._halt_followed(epoch, targets, reason, mode)
        self._follow_pool.submit(self._halt_followed, epoch, targets, reason, mode)
        return None

    def _halt_followed(
        self, epoch: int | None, targets: dict[str, list[HaltTarget]], reason: str, mode: str
    ) -> dict[str, Any]:
        """The local half of a cluster engagement: halt, then ack (final rows first)."""
        t0 = time.perf_counter()
        if epoch is not None and self._clustered:
            with self._lock:
                self._ack_due = (epoch, t0)
        failures: list[str] = []
        per_target = self._fan_out(targets, reason, mode, failures)
        elapsed_ms = (time.perf_counter() - t0) * 1e3
        sessions = self._sessions_halted(per_target, mode)
        if epoch is not None and self._clustered:
            self._ack(epoch, per_target, mode, elapsed_ms)
        result = {
            "engaged": True,
            "mode": mode,
            "reason": reason,
            "epoch": epoch,
            "source": "cluster",
            "sessions": sessions,
            "targets": per_target,
            "failures": failures,
            "elapsed_ms": elapsed_ms,
        }
        with param.edit_constant(self):
            self.last = result
        return result

    def register_bot_halt(self, target: Callable[[str, str, str], int]) -> None:
        """Register ``target(bot_id, reason, mode) -> count`` for per-bot halts."""
        with self._lock:
            self._bot_targets.append(target)

    def _halt_bot_sessions(self, bot_id: str, reason: str, mode: str) -> int:
        return sum(int(t(bot_id, reason, mode) or 0) for t in list(self._bot_targets))

    def halt_bot(self, bot_id: str, reason: str = "bot halted", mode: str = "cancel") -> dict:
        """Stop one bot's sessions without latching anything; zero is a valid count."""
        t0 = time.perf_counter()
        halted, failures = self._run_targets(
            f"bot:{bot_id}", [lambda r, m: self._halt_bot_sessions(bot_id, r, m)], reason, mode
        )
        return {
            "target": f"bot:{bot_id}",
            "halted": halted,
            "failures": failures,
            "elapsed_ms": (time.perf_counter() - t0) * 1e3,
        }

    def reset(self, *, bot: str | None = None, actor: str = "python") -> dict[str, Any]:
        """Release the switch (or only the per-bot halt of ``bot``).

        A pending engagement (not written yet) is dropped: the released state is
        written instead, or fails closed like any write the ledger refuses.
        """
        self._ensure_ledger()
        with self._lock, param.edit_constant(self):
            if bot is not None:
                self.halted_bots = [b for b in self.halted_bots if b != bot]
                self._bot_halts.pop(bot, None)
            else:
                self.param.update(
                    engaged=False, reason="", engaged_at=None, ttl_seconds=None, halted_bots=[]
                )
                self._bot_halts.clear()
            write = self._submit_write(actor, "kill_switch.reset", "", self.mode, None, bot)
        if write is not None:
            write.done.wait(self._reset_wait() + 10 * self.PERSIST_WAIT_SECONDS)
        return self.state()

    # -- state ------------------------------------------------------------------------
    def _submit_write(
        self,
        actor: str,
        action: str,
        reason: str,
        mode: str,
        ttl_seconds: float | None,
        bot: str | None,
    ) -> RowWrite | None:
        """Under the lock: hand the current state to the writer; None without a ledger.

        It is pending until written (:attr:`persisted` False). An engagement is retried
        until the ledger takes it; a released state is given up after the ledger's busy
        timeout (the switch then fails closed, like any write the ledger refuses).
        """
        if self._ledger is None:
            self._unpersisted = None
            return None
        engagement = bool(self.engaged or self.halted_bots)
        write = RowWrite(
            ledger=self._ledger,
            state={
                "engaged": self.engaged,
                "mode": self.mode,
                "reason": self.reason,
                "ttl_seconds": self.ttl_seconds,
                "scope": {
                    "halted_bots": list(self.halted_bots),
                    "bot_halts": {b: self._bot_halts.get(b, {}) for b in self.halted_bots},
                },
            },
            audits=[
                (
                    actor,  # the audit row commits with the state, in one transaction
                    action,
                    {"reason": reason, "mode": mode, "ttl_seconds": ttl_seconds, "bot": bot},
                )
            ],
            engagement=engagement,
            deadline=None if engagement else time.monotonic() + self._reset_wait(),
        )
        self._unpersisted = write
        return self._writer.submit(write)

    def _reset_wait(self) -> float:
        """Seconds a released state is retried: the ledger's busy timeout."""
        return float(getattr(self._ledger, "busy_timeout", 0.0) or 0.0)

    def _written(self, write: RowWrite) -> None:
        """On the writer's thread: ``write`` is in the ledger."""
        row = write.row or {}
        with self._lock:
            self._written_at = row.get("updated_at")
            if write.state["engaged"]:
                # The epoch we hold: our own notification (and re-reads) will not halt again.
                self._epoch = row.get("epoch")
            if self._unpersisted is write:
                self._unpersisted = None
            with param.edit_constant(self):
                self.store_ok = True

    def _write_failed(self, write: RowWrite, given_up: bool) -> None:
        """On the writer's thread: an attempt at ``write`` failed (fail closed)."""
        with self._lock:
            if self._unpersisted is not write:
                return  # replaced by a newer state
            with param.edit_constant(self):
                self.store_ok = False
            if given_up:
                self._unpersisted = None

    @property
    def persisted(self) -> bool:
        """False while an engagement of this process is not written to the ledger yet."""
        return self._unpersisted is None

    def refresh(self, force: bool = False, *, wait: bool = False, adopt: bool = False) -> None:
        """Re-read the ledger row (at most once per second unless ``force``).

        An engagement made by another process is followed (:meth:`follow`): its halts
        run on a helper thread, or on this one with ``wait``; ``adopt`` takes the state
        over without halting.
        """
        if self._ledger is None:
            return
        now = time.monotonic()
        if not force and now - self._last_refresh < self.REFRESH_SECONDS:
            return
        self._last_refresh = now
        try:
            row = self._ledger.kill_switch_state()
        except Exception:  # noqa: BLE001 - fail closed
            log.exception("kill switch state could not be read")
            with param.edit_constant(self):
                self.store_ok = False
            return
        with param.edit_constant(self):
            self.store_ok = True
        if self._unpersisted is not None:
            # This process's engagement is not in the row yet: the row is older and
            # must not release it. The ledger answers again: write it now.
            self._writer.wake()
            return
        self.follow_bots(row, wait=wait, adopt=adopt)
        self.follow(row, wait=wait, adopt=adopt)

    def follow_bots(
        self, row: dict[str, Any], *, wait: bool = False, adopt: bool = False
    ) -> list[str]:
        """Apply the per-bot halts of the shared row: halt bots new to this process.

        A bot halted by another process has its sessions here stopped too and its
        starts refused; a bot released there is released here. A row older than this
        process's own last write changes nothing (it may predate a local halt).

        Returns
        -------
        list of str
            The bots this call halted.
        """
        scope = row.get("scope") or {}
        wanted = set(scope.get("halted_bots") or [])
        halts = scope.get("bot_halts") or {}
        with self._lock:
            written = self._written_at
            updated = row.get("updated_at")
            if written is not None and (updated is None or updated < written):
                return []
            have = set(self.halted_bots)
            if wanted == have:
                return []
            with param.edit_constant(self):
                self.halted_bots = sorted(wanted)
            self._bot_halts = {b: dict(halts.get(b) or {}) for b in wanted}
        new = sorted(wanted - have)
        if adopt:
            return []
        for bot in new:
            halt = self._bot_halts.get(bot, {})
            reason = halt.get("reason") or "bot halted by another process"
            mode = halt.get("mode") if halt.get("mode") in ("cancel", "flatten") else "cancel"
            if wait:
                self._halt_bot_sessions(bot, reason, mode)
            else:
                self._follow_pool.submit(self._halt_bot_sessions, bot, reason, mode)
        return new

    def _expire(self) -> None:
        if self.engaged and self.ttl_seconds and self.engaged_at is not None:
            at = self.engaged_at
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            if (datetime.now(UTC) - at).total_seconds() >= self.ttl_seconds:
                self.reset(actor="ttl")
                if self._ledger is not None:
                    try:
                        self._ledger.audit(
                            "ttl", "kill_switch.expired", {"ttl_seconds": self.ttl_seconds}
                        )
                    except Exception:  # noqa: BLE001
                        log.exception("could not record the kill switch expiry")

    def order_mode(self, bot_id: str | None = None) -> str | None:
        """The trading mode the switch imposes on a session: None when it imposes nothing.

        ``frozen`` when the state store is broken (fail closed) or in ``freeze``,
        ``reduce_only`` in that mode, ``halted`` for a halted bot or a latched
        cancel/flatten engagement.
        """
        self.refresh()
        self._expire()
        if not self.store_ok:
            return "frozen"
        if bot_id is not None and bot_id in self.halted_bots:
            return "halted"
        if not self.engaged:
            return None
        if self.mode == "reduce_only":
            return "reduce_only"
        if self.mode == "freeze":
            return "frozen"
        return "halted"

    def check_start(self, bot_id: str | None = None) -> None:
        """Raise :class:`KillSwitchEngaged` if new sessions must not start."""
        self._ensure_ledger()
        mode = self.order_mode(bot_id)
        if mode is not None:
            why = self.reason or ("ledger state unavailable" if not self.store_ok else "bot halted")
            raise KillSwitchEngaged(
                f"kill switch engaged ({mode}): {why}. Release it with "
                "aw.kill_switch().reset() (or `alphaswarm kill --reset`) to start sessions again"
            )

    def state(self) -> dict[str, Any]:
        """The state, re-read from the ledger.

        ``{engaged, persisted, mode, reason, engaged_at, ttl_seconds, halted_bots,
        store_ok, targets, last}``; ``persisted`` is False while an engagement of this
        process waits for the ledger to take it.
        """
        self._ensure_ledger()
        if not self._followed:  # a listener or watcher keeps it current already
            self.refresh(force=True)
        self._expire()
        return {
            "engaged": self.engaged,
            "persisted": self._unpersisted is None,
            "mode": self.mode,
            "reason": self.reason,
            "engaged_at": self.engaged_at.isoformat() if self.engaged_at else None,
            "ttl_seconds": self.ttl_seconds,
            "halted_bots": list(self.halted_bots),
            "store_ok": self.store_ok,
            "targets": self.targets,
            "last": self.last,
        }

    def close(self) -> None:
        """Stop this switch's threads (pools, listener, watcher); its runtime is closing."""
        with self._lock:
            self._watch_while = []
            self._watcher = None  # the watcher retires itself at its next look
            listener, self._listener = self._listener, None
            pool, self._pool = self._pool, None
        if listener is not None:
            listener.stop(timeout=0)
        if pool is not None:
            pool.shutdown(wait=False)
        self._follow_pool.shutdown(wait=False)


def _started_pool(workers: int, prefix: str) -> ThreadPoolExecutor:
    """A thread pool whose threads exist already: none is started on an engage's clock."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix)
    barrier = threading.Barrier(workers)
    for _ in range(workers):  # each task blocks until all run: one new thread per task
        pool.submit(barrier.wait, 5.0)
    return pool


class KillSwitchEngaged(ModelError):
    """A session may not start (or trade) while the kill switch is engaged."""


def kill_switch() -> KillSwitch:
    """The kill switch of the process's runtime (``Runtime.default().kill_switch``)."""
    from alphaswarm.paper.runtime import current

    return current().kill_switch
