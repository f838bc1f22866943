"""How a paper session ends: stop, kill, halt, their final rows, and stops of many at once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alphaswarm.frame_records import as_frame
from alphaswarm.ledger.connection import bounded_writes
from alphaswarm.ledger.store import LedgerUnavailable
from alphaswarm.paper import tuning
from alphaswarm.paper.final_writes import final_writes
from alphaswarm.paper.pacer import wake
from alphaswarm.paper.per_loop import _PerLoop

if TYPE_CHECKING:
    from collections.abc import Callable

    from alphaswarm.paper.runtime import Runtime
    from alphaswarm.paper.session import PaperSession

log = logging.getLogger("alphaswarm.paper.session")


class SessionHalts:
    """Finishing a session and writing its final row (a mixin of :class:`PaperSession`)."""

    def _prepare_finish(
        self,
        status: str,
        reason: str,
        mode: str = "cancel",
        error: str = "",
        *,
        announce: bool = True,
        claimed: bool = False,
        at: datetime | None = None,
    ) -> dict[str, Any] | None:
        """Under the lock: cancel, flatten, build the final batch. None if already done.

        ``announce`` shows ``stopping`` while one session stops; a bulk stop skips it,
        its sessions reach their final status within the same call. ``claimed``: the
        caller has already marked the session finished (:meth:`_claim_finish`). ``at``
        is the end time (now by default).
        """
        with self._lock:
            if not claimed and not self._claim_finish():
                return None
            engine = self._engine
            if announce:
                self._set_outputs(status="stopping")
            cancelled = engine.cancel_all(_cancel_code(status), reason) if engine else []
            flattened = engine.flatten(reason) if engine and mode == "flatten" else []
            cancelled_ids = [o.id for o in cancelled]
            flattened_symbols = [f.symbol for f in flattened]
            halt = engine.halt_action if engine else None
            if halt is not None:  # a risk halt cancelled and flattened first: agree with it
                mode = "flatten" if "flatten" in (mode, halt["mode"]) else halt["mode"]
                cancelled_ids = [*halt["orders_cancelled"], *cancelled_ids]
                flattened_symbols = [*halt["positions_flattened"], *flattened_symbols]
            if error:
                self._frame("error", error, error=error)
            summary = engine.summary() if engine else {}
            positions = self._positions_snapshot()  # after a flatten; shared by the rows below
            shared = {"positions": positions, "equity": summary["final_equity"]} if engine else {}
            result = {
                "paper_run_id": self.paper_run_id,
                "status": status,
                "stop_reason": reason,
                **summary,
                "error": error or None,
            }
            self._frame(
                "session.stopped",
                f"session {status}: {reason}",
                status=status,
                reason=reason,
                mode=mode,
                orders_cancelled=cancelled_ids,
                positions_flattened=flattened_symbols,
                cash=engine.broker.cash if engine else self.starting_cash,
                **shared,
            )
            self._frame("done", f"session {status}", result=result, **shared)
            now = at or datetime.now(UTC)
            batch = self._batch(
                run_update={
                    "status": status,
                    "stop_reason": reason,
                    "ended_at": now,
                    "error": error or None,
                },
                flush_state=True,
                positions=positions,
                summary=summary or None,
            )
            unpublished, self._unpublished = self._unpublished, []
            return {
                "batch": batch,
                "status": status,
                "reason": reason,
                "error": error,
                "at": now,
                "unpublished": unpublished,  # committed before; published before the batch
            }

    def _claim_finish(self) -> bool:
        """Mark the session finished: no bar is processed after this. False if it was.

        It does not take the session's lock, which a write waiting for the ledger may
        hold: a halt never waits for the ledger to stop a session.
        """
        with self._finish_lock:
            if self._finished:
                return False
            self._finished = True
            return True

    def _complete_finish(
        self,
        prepared: dict[str, Any],
        wake_loop: bool = True,
        notify: bool = True,
        committed: bool = True,
    ) -> None:
        """After the final batch: publish, update outputs, wake waiters.

        ``wake_loop`` and ``notify`` (tell the registry) are left to the caller of a
        bulk stop, which does each once for all its sessions. When the final batch is
        not ``committed`` yet (the ledger is out of reach), the session has its final
        status but its last frames wait for the commit (:meth:`_final_committed`).
        """
        with self._lock:
            committed_before, pending, self._pending = prepared["unpublished"], self._pending, []
        frames = committed_before + pending if committed else committed_before
        for frame in frames:
            self.frames.publish(frame)
        outputs = self._output_values()
        if frames:
            outputs["last_frame"] = as_frame(self._run_id, frames[-1])
        if committed:
            self._final_written = True
        else:
            prepared["frames"] = pending  # published by _final_committed
            outputs["ledger_behind"] = True
        self._set_outputs(
            **outputs,
            status=prepared["status"],
            stop_reason=prepared["reason"],
            error=prepared["error"],
            ended_at=prepared["at"],
        )
        if committed:  # after the final status: a view that sees the bus closed shows it
            self.frames.close()
        release = getattr(self._engine.broker, "close", None) if self._engine else None
        if release is not None:  # a real broker's connections; off the kill switch's clock
            threading.Thread(target=release, name="broker-close", daemon=True).start()
        if not committed:  # before waiters wake: they find it queued
            final_writes().submit(self, prepared)
        self._done.set()
        if wake_loop:
            self._wake_runner()
        if notify:
            self.runtime.registry.ended(self)

    def _final_committed(self, prepared: dict[str, Any]) -> None:
        """The final batch committed late (the ledger came back): publish the last frames."""
        with self._lock:
            frames = prepared.pop("frames", [])
            self._final_written = True
        for frame in frames:
            self.frames.publish(frame)
        self.frames.close()
        outputs: dict[str, Any] = {"ledger_behind": False}
        if frames:
            outputs["last_frame"] = as_frame(self._run_id, frames[-1])
        self._set_outputs(**outputs)
        log.warning("paper session %s: final batch committed late", self.paper_run_id)

    def _wake_runner(self) -> None:
        """Wake the session's task if it waits between bars (it then sees it finished)."""
        loop = self._loop
        if loop is not None and self._pacer is not None and not loop.is_closed():
            # the wait in progress when the loop runs this (none: it sees it finished)
            loop.call_soon_threadsafe(lambda: wake(self._waiter))

    def _finish(self, status: str, reason: str, mode: str = "cancel", error: str = "") -> bool:
        prepared = self._prepare_finish(status, reason, mode, error)
        if prepared is None:
            return False
        committed = self._write_final(prepared)
        self._complete_finish(prepared, committed=committed)
        return True

    def _write_final(self, prepared: dict[str, Any], *, retry: bool = False) -> bool:
        """Commit the final batch; True once it (or the final row alone) is committed.

        While the ledger is out of reach :meth:`_complete_finish` hands the batch to
        :func:`~alphaswarm.paper.final_writes.final_writes`, which calls this again
        (``retry``) until it commits, then publishes the last frames. A batch the
        ledger rejects for its content is replaced by the final row alone, its
        counters recounted from the fills the ledger holds: a run row never counts a
        fill the ledger does not have, and never stays ``running``.
        """
        try:
            self.ledger_.write_batch(self.paper_run_id, **prepared["batch"])
        except LedgerUnavailable as exc:
            if not retry:
                log.warning(
                    "final batch of %s: ledger unavailable (%s); retrying in the background",
                    self.paper_run_id,
                    exc,
                )
            return False
        except Exception:  # noqa: BLE001 - never leave a running row behind
            log.exception(
                "final batch of %s failed; writing the final row alone", self.paper_run_id
            )
            if not self._write_final_row_only(prepared):
                return False
        if retry:
            self._final_committed(prepared)
        return True

    def _write_final_row_only(self, prepared: dict[str, Any]) -> bool:
        """The final status alone, counters recounted from the ledger; False if not written."""
        update = {
            k: v
            for k, v in prepared["batch"]["run_update"].items()
            if k in ("status", "stop_reason", "ended_at", "error")
        }
        try:
            self.ledger_.finalize_paper_run(self.paper_run_id, recount=True, **update)
        except LedgerUnavailable:
            return False
        except Exception:  # noqa: BLE001
            log.exception("could not finalise paper run %s", self.paper_run_id)
        prepared["batch"] = {"run_update": {}}  # a retry only checks the row exists
        return True

    @staticmethod
    def finish_many(
        sessions: list[PaperSession],
        status: str,
        reason: str,
        mode: str = "cancel",
        on_committed: Callable[[int], None] | None = None,
        on_closed: Callable[[int], None] | None = None,
    ) -> int:
        """Stop several sessions: their stop first, then their closing rows.

        1. Every session is marked finished (it processes no bar after this) and one
           transaction per ledger sets their run rows' final ``status``,
           ``stop_reason`` and ``ended_at`` and cancels their open orders in the
           ledger. ``on_committed(count)`` is called at its commit.
        2. Each session then cancels (or flattens) in memory and builds its closing
           batch (the bars not committed yet, the cancelled orders, its last frames,
           counters and state), all written in one more transaction per ledger;
           ``on_closed(count)`` is called at that commit. The sessions then publish
           their last frames and update their outputs.

        A stop that step 1 could not commit is committed by step 2 with the rest.

        The ledger never delays the stop itself: each session shows its final
        ``status`` as soon as it is marked finished, its writes here wait at most
        :data:`HALT_WRITE_WAIT` for a lock held elsewhere (what the ledger does not
        take then is retried in the background by
        :func:`~alphaswarm.paper.final_writes.final_writes`), and a session whose own
        write is waiting for the ledger (it holds its lock meanwhile) is finished by a
        helper thread once that write returns.
        """
        with tuning.latency_critical():  # no collection on the halt's clock, if tuned
            claimed = [s for s in sessions if s._claim_finish()]
            for s in claimed:  # halted: no bar from now on, and the status says so
                s._set_outputs(status=status, stop_reason=reason)
            at = datetime.now(UTC)
            with bounded_writes(HALT_WRITE_WAIT):
                stopped = _commit_stops(claimed, status, reason, mode, at)
                if on_committed is not None and claimed and stopped:
                    on_committed(len(claimed))
                prepared = []
                busy = []
                lock_deadline = time.monotonic() + HALT_LOCK_WAIT  # for all of them
                for s in claimed:
                    wait = max(0.0, lock_deadline - time.monotonic())
                    if not s._lock.acquire(timeout=wait):
                        busy.append(s)  # its own write waits for the ledger: finished later
                        continue
                    try:
                        prepared.append(
                            (
                                s,
                                s._prepare_finish(
                                    status, reason, mode, announce=False, claimed=True, at=at
                                ),
                            )
                        )
                    finally:
                        s._lock.release()
                late: set[int] = set()  # sessions whose ledger did not take the final batch
                for group in _by_ledger(prepared):
                    late |= _write_final_group(group)
            if busy:
                _finish_later(busy, status, reason, mode, at)
            closed = len(prepared) - len(late)  # the others' rows wait for their ledger
            if on_committed is not None and closed and not stopped:
                on_committed(closed)
            if on_closed is not None and closed:
                on_closed(closed)
        loops: dict[int, tuple[asyncio.AbstractEventLoop, list[PaperSession]]] = {}
        for s, p in prepared:
            s._complete_finish(p, wake_loop=False, notify=False, committed=id(s) not in late)
            if s._loop is not None and not s._loop.is_closed():
                loops.setdefault(id(s._loop), (s._loop, []))[1].append(s)
        for loop, group in loops.values():  # one wake-up per loop, not one per session
            loop.call_soon_threadsafe(_wake_all, group)
        ended: dict[int, PaperSession] = {}
        for s, _ in prepared:
            ended.setdefault(id(s.runtime), s)
        for s in ended.values():  # one version bump per registry for the whole stop
            s.runtime.registry.ended(s)
        return len(claimed)


#: Seconds a halt's writes wait for a lock held elsewhere (then retried in the background).
HALT_WRITE_WAIT = 0.05
#: Seconds a halt waits for the locks of its sessions (all together); a session whose
#: lock is still held then (by its own write, waiting for the ledger) is finished on a
#: helper thread.
HALT_LOCK_WAIT = 0.05


def _finish_later(
    sessions: list[PaperSession], status: str, reason: str, mode: str, at: datetime
) -> None:
    """Finish claimed sessions on a helper thread once their own writes return."""

    def finish() -> None:
        for s in sessions:
            try:
                prepared = s._prepare_finish(
                    status, reason, mode, announce=False, claimed=True, at=at
                )
                if prepared is not None:
                    s._complete_finish(prepared, committed=s._write_final(prepared))
            except Exception:  # noqa: BLE001 - the others still finish
                log.exception("could not finish paper session %s", s.paper_run_id)

    threading.Thread(target=finish, name="alphaswarm-halt-finish", daemon=True).start()


def _cancel_code(status: str) -> str:
    """The ``reason_code`` of the orders a session ending with ``status`` cancels."""
    return "kill_switch" if status == "killed" else "session_end"


def _by_ledger(items: list[tuple[PaperSession, Any]]) -> list[list[tuple[PaperSession, Any]]]:
    """``(session, value)`` pairs grouped by the session's ledger, in order."""
    groups: dict[int, list[tuple[PaperSession, Any]]] = {}
    for session, value in items:
        groups.setdefault(id(session.ledger_), []).append((session, value))
    return list(groups.values())


def _commit_stops(
    sessions: list[PaperSession], status: str, reason: str, mode: str, at: datetime
) -> bool:
    """Step 1 of :meth:`PaperSession.finish_many`; False if a ledger could not take it."""
    code = _cancel_code(status)
    done = True
    for group in _by_ledger([(s, None) for s in sessions]):
        try:
            group[0][0].ledger_.stop_runs(
                [s.paper_run_id for s, _ in group],
                status=status,
                reason=reason,
                at=at,
                cancel_orders=(code, reason) if mode in ("cancel", "flatten") else None,
            )
        except Exception:  # noqa: BLE001 - the closing batch commits the stop instead
            log.exception("could not commit the stop of %d sessions first", len(group))
            done = False
    return done


def _write_final_group(group: list[tuple[PaperSession, dict[str, Any]]]) -> set[int]:
    """Commit the final batches of sessions sharing one ledger; alone if that fails.

    Returns the ``id()`` of the sessions whose final batch is not committed (their
    ledger is out of reach): the caller queues them for :func:`final_writes`.
    """
    ledger = group[0][0].ledger_
    try:
        ledger.write_batches([(s.paper_run_id, p["batch"]) for s, p in group])
        return set()
    except LedgerUnavailable as exc:  # the others would wait as long again, each
        log.warning("final write of %d sessions: ledger unavailable (%s)", len(group), exc)
        return {id(s) for s, _ in group}
    except Exception:  # noqa: BLE001
        log.exception("combined final write failed; writing each run alone")
    return {id(s) for s, p in group if not s._write_final(p)}


def _wake_all(sessions: list[PaperSession]) -> None:
    for session in sessions:
        wake(session._waiter)


#: Seconds between looks at whether a kill or stop-all is still stopping sessions.
_HALT_POLL = 0.001


def _halts_pending(runtime: Runtime) -> bool:
    """True while ``runtime``'s kill switch engages or a stop-all stops its sessions."""
    return runtime.registry.halting.is_set() or runtime.kill_switch.engaging.is_set()


async def _yield_to_halts(runtime: Runtime) -> None:
    """While a kill or stop-all is stopping sessions, take no new bar: it gets the CPU."""
    if _halts_pending(runtime):
        await _HaltWait.of(asyncio.get_running_loop()).wait(runtime)


class _HaltWait(_PerLoop):
    """One poller per loop for the end of a halt, however many sessions wait for it.

    Hundreds of sessions polling each would keep the loop's thread, and so the
    interpreter lock, busy just when the halt needs them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        # per runtime: its end of halt, and the task polling for it
        self._over: dict[int, asyncio.Future[None]] = {}
        self._pollers: dict[int, asyncio.Task[None]] = {}

    async def wait(self, runtime: Runtime) -> None:
        """Return once no halt of ``runtime`` is pending."""
        key = id(runtime)
        over = self._over.get(key)
        if over is None or over.done():
            over = self._over[key] = self._loop.create_future()
            self._pollers[key] = self._loop.create_task(self._poll(runtime, over))
        await asyncio.shield(over)  # one waiter cancelled never cancels the others

    @staticmethod
    async def _poll(runtime: Runtime, over: asyncio.Future[None]) -> None:
        try:
            while _halts_pending(runtime):
                await asyncio.sleep(_HALT_POLL)
        finally:
            if not over.done():
                over.set_result(None)
