"""The thread that writes the kill switch's row, off the path of the halt.

An engagement halts this process's sessions at once, whatever the ledger is doing;
its row is written here meanwhile, through the kill switch's own connection
(:meth:`alphaswarm.ledger.Ledger.write_kill_switch`), which waits only briefly for a
lock held elsewhere. A write the ledger does not take is tried again at once when
the ledger was locked (each attempt waits for the lock itself, so the row is written
within a few milliseconds of the lock's release) and with a growing delay when it
was out of reach, until it is written or a newer state of the switch replaces it.
The newest state wins: a write waiting behind another is replaced, and the audit
rows of a replaced write that was never written go with its replacement.

A released state (a reset) is given up after its ``deadline``; an engagement is
never given up while this process lives.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = ["KillSwitchWriter", "RowWrite"]


@dataclass
class RowWrite:
    """One state of the kill-switch row to write, and how its writing went."""

    #: The ledger written to.
    ledger: Any
    #: ``engaged, mode, reason, ttl_seconds, scope``: the row's new values.
    state: dict[str, Any]
    #: Audit rows ``(actor, action, detail)`` written in the same transaction.
    audits: list[tuple[str, str, dict]]
    #: True for an engagement (retried while the process lives).
    engagement: bool
    #: Monotonic time after which a released state is given up; None: never.
    deadline: float | None = None
    #: Set once the first attempt has ended, written or not.
    attempted: threading.Event = field(default_factory=threading.Event)
    #: Set once written, given up or replaced by a newer state.
    done: threading.Event = field(default_factory=threading.Event)
    #: The row as written (None until then).
    row: dict[str, Any] | None = None
    #: Why the last attempt failed.
    error: BaseException | None = None
    #: Failed attempts so far.
    failures: int = 0
    #: Set by :meth:`KillSwitchWriter.drop`: not tried again.
    cancelled: bool = False

    @property
    def written(self) -> bool:
        """True once the ledger holds this state."""
        return self.row is not None

    def moved_to(self, ledger: Any) -> RowWrite:
        """The same state and audit rows, to be written to ``ledger`` instead."""
        return RowWrite(
            ledger=ledger,
            state=dict(self.state),
            audits=list(self.audits),
            engagement=self.engagement,
            deadline=self.deadline,
        )


class KillSwitchWriter:
    """Writes the newest state of one kill switch's row on a thread of its own.

    Parameters
    ----------
    on_written : callable
        ``on_written(write)`` after ``write`` committed (on the writer's thread).
    on_failed : callable
        ``on_failed(write, given_up)`` after an attempt failed; ``given_up`` when
        ``write`` will not be tried again.
    wait_seconds : float
        Longest wait of one attempt for a lock held elsewhere.
    retry_first, retry_max : float
        Delay before retrying a ledger out of reach, doubled up to ``retry_max``.
    """

    def __init__(
        self,
        on_written: Callable[[RowWrite], None],
        on_failed: Callable[[RowWrite, bool], None],
        *,
        wait_seconds: float = 0.1,
        retry_first: float = 0.05,
        retry_max: float = 2.0,
    ) -> None:
        self.on_written = on_written
        self.on_failed = on_failed
        self.wait_seconds = wait_seconds
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._cond = threading.Condition()
        self._queued: RowWrite | None = None
        self._inflight: RowWrite | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    @property
    def idle(self) -> bool:
        """True when no write waits and none is being attempted."""
        with self._cond:
            return self._queued is None and self._thread is None

    def submit(self, write: RowWrite) -> RowWrite:
        """Write ``write`` as soon as possible, replacing a write not started yet."""
        with self._cond:
            replaced, self._queued = self._queued, write
            if replaced is not None:  # never attempted, or failed: its audits come along
                write.audits = [*replaced.audits, *write.audits]
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="alphaswarm-kill-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        self._wake.set()
        if replaced is not None:
            replaced.attempted.set()
            replaced.done.set()
        return write

    def drop(self) -> None:
        """Forget the write waiting to be attempted (no ledger to write it to)."""
        with self._cond:
            dropped, self._queued = self._queued, None
            if self._inflight is not None:
                self._inflight.cancelled = True
        if dropped is not None:
            dropped.cancelled = True
            dropped.attempted.set()
            dropped.done.set()

    def wake(self) -> None:
        """Try a waiting write now (the ledger answered again)."""
        self._wake.set()

    def _run(self) -> None:
        delay = self.retry_first
        while True:
            with self._cond:
                write, self._queued = self._queued, None
                self._inflight = write
                if write is None:
                    self._thread = None
                    return
            ok = self._attempt(write)
            with self._cond:
                self._inflight = None
            if ok:
                delay = self.retry_first
                continue
            given_up = write.cancelled or (
                not write.engagement
                and (write.deadline is None or time.monotonic() >= write.deadline)
            )
            with self._cond:
                newer = self._queued is not None
                if not given_up and not newer:
                    self._queued = write  # tried again below, unless replaced meanwhile
                elif newer and not given_up:  # replaced while attempted: audits come along
                    self._queued.audits = [*write.audits, *self._queued.audits]
            self.on_failed(write, given_up or newer)
            write.attempted.set()
            if given_up or newer:
                write.done.set()
                continue
            if _locked(write.error):  # the attempt waited for the lock itself
                delay = self.retry_first
                continue
            self._wake.wait(delay)
            self._wake.clear()
            delay = min(delay * 2, self.retry_max)

    def _attempt(self, write: RowWrite) -> bool:
        """One attempt; True when written (``on_written`` called, events set)."""
        s = write.state
        try:
            row = write.ledger.write_kill_switch(
                s["engaged"],
                s["mode"],
                s["reason"],
                ttl_seconds=s["ttl_seconds"],
                scope=s["scope"],
                audits=write.audits,
                wait_seconds=self.wait_seconds,
            )
        except Exception as exc:  # noqa: BLE001 - retried; the caller reports it
            write.error = exc
            write.failures += 1
            if write.failures == 1 or write.failures % 50 == 0:
                log.warning("kill switch state not written yet (attempt %d): %s",
                            write.failures, exc)  # fmt: skip
            return False
        write.row = row
        write.error = None
        if write.failures:
            log.warning("kill switch: the pending state is written to the ledger")
        self.on_written(write)
        write.attempted.set()
        write.done.set()
        return True


def _locked(exc: BaseException | None) -> bool:
    """True when ``exc`` says a lock held elsewhere outlasted the attempt's wait."""
    text = str(exc).lower()
    return "locked" in text or "lock timeout" in text or "lock_timeout" in text
