"""A paper session's ledger writes: its batches, group commit per loop, write-behind retries."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alphaswarm.broker.ledger_ids import with_broker_order_ids
from alphaswarm.frame_records import as_frame
from alphaswarm.ledger.store import LedgerUnavailable
from alphaswarm.paper.halts import _HALT_POLL, _by_ledger, _halts_pending
from alphaswarm.paper.per_loop import _PerLoop

if TYPE_CHECKING:
    from alphaswarm.paper.session import PaperSession

log = logging.getLogger("alphaswarm.paper.session")

# A session whose ledger is out of reach retries its write after this many seconds,
# doubling the wait after each failure up to _RETRY_MAX.
_RETRY_FIRST = 0.2
_RETRY_MAX = 5.0


class SessionCommits:
    """Batches and their commits (a mixin of :class:`PaperSession`)."""

    def _batch(
        self,
        run_update: dict[str, Any] | None = None,
        flush_state: bool = False,
        positions: dict[str, dict[str, float]] | None = None,
        summary: dict[str, Any] | None = None,
    ) -> dict:
        """Under the lock: everything not committed yet, as one ``write_batch``.

        Nothing is consumed here: :meth:`_consume` drops what the batch held once its
        transaction has committed, so a failed write loses nothing and the next batch
        (or the final one) carries it again.
        """
        engine = self._engine
        broker = engine.broker
        # Kinds with nothing new stay the shared empty tuple: a group commit holds every
        # session's batch until it has committed (see _GroupCommit).
        dirty = broker.dirty_orders
        orders: list[dict[str, Any]] | tuple[()] = ()
        if dirty:
            orders = [o.to_dict() for o in dirty.values()]
            for o, order in zip(orders, dirty.values(), strict=True):
                o["updated_at"] = order.updated_at
                o["created_at"] = order.created_at
            with_broker_order_ids(broker, orders)  # a real broker's ids beside ours
        n_fills = len(broker.fills)
        fills = (
            [{**f.to_dict(), "filled_at": f.ts} for f in broker.fills[self._fills_written :]]
            if n_fills > self._fills_written
            else ()
        )
        risk_events = tuple(engine.risk_events)
        if summary is None:
            summary = engine.summary()
        update = {
            "bars_seen": summary["bars_seen"],
            "orders_submitted": summary["orders_submitted"],
            "num_fills": summary["num_fills"],
            "total_pnl": summary["total_pnl"],
            "realized_pnl": summary["realized_pnl"],
            "final_equity": summary["final_equity"],
            "max_drawdown": summary["max_drawdown"],
            "last_heartbeat_at": datetime.now(UTC),
        }
        if flush_state:
            update["state"] = self._state_snapshot(positions)
        update.update(run_update or {})
        equity = self._equity_points.copy()
        self._mark = (
            tuple(dirty),
            n_fills,
            len(equity),
            len(risk_events),
            engine.bar_index // self.state_flush_every if flush_state else self._state_flushed_at,
        )
        if engine.last_ts is not None:  # the latest value (after a flatten, say) wins
            equity.set_last(engine.last_ts, summary["final_equity"], broker.cash)
        return {
            "orders": orders,
            "fills": fills,
            "equity": equity,
            "frames": list(self._pending),
            "risk_events": tuple({**r, "paper_run_id": self.paper_run_id} for r in risk_events),
            "run_update": update,
        }

    def _state_snapshot(
        self, positions: dict[str, dict[str, float]] | None = None
    ) -> dict[str, Any]:
        engine = self._engine
        broker = engine.broker
        return {
            "cash": broker.cash,
            "equity": broker.equity,
            "positions": self._positions_snapshot() if positions is None else positions,
            "bars_seen": engine.bars_seen,
            "orders_submitted": engine.orders_submitted,
            "num_fills": len(broker.fills),
            "open_orders": [o.id for o in broker.open_orders],
            "last_bar_ts": engine.last_ts.isoformat() if engine.last_ts else None,
            "peak_equity": engine.state.peak_equity,
            "mode": engine.trading_mode(),
            # a real broker: its order ids beside ours
            **({"broker": broker.to_dict()} if hasattr(broker, "to_dict") else {}),
        }

    def _consume(self) -> None:
        """Under the lock, after the commit of the last :meth:`_batch`: drop what it held."""
        mark, self._mark = self._mark, None
        if mark is None:
            return
        order_ids, n_fills, n_equity, n_risk, state_at = mark
        engine = self._engine
        dirty = engine.broker.dirty_orders
        for order_id in order_ids:
            dirty.pop(order_id, None)
        self._fills_written = max(self._fills_written, n_fills)
        self._equity_points.drop_first(n_equity)
        del engine.risk_events[:n_risk]
        self._state_flushed_at = max(self._state_flushed_at, state_at)
        self._unflushed = 0
        self._last_flush = time.monotonic()

    def _write(self, batch: dict[str, Any]) -> bool:
        """Under the lock: commit ``batch``; False when the ledger is out of reach.

        Then nothing is consumed and the session falls behind (see :meth:`_catch_up`);
        any other failure raises.
        """
        try:
            self.ledger_.write_batch(self.paper_run_id, **batch)
        except LedgerUnavailable as exc:
            self._fall_behind(exc)
            return False
        return True

    def _fall_behind(self, exc: BaseException) -> None:
        """The ledger refused a write it may take later: pause trading until it does.

        A ``ledger.behind`` frame is queued (it is published with the catch-up commit,
        like every frame, after its row); ``ledger_behind`` shows it at once.
        """
        with self._lock:
            self._ledger_error = f"{type(exc).__name__}: {exc}"
            if self._behind_since is not None or self._finished:
                return
            self._behind_since = time.monotonic()
            log.warning(
                "paper session %s: the ledger refused a write (%s); trading paused, retrying",
                self.paper_run_id,
                exc,
            )
            self._frame(
                "ledger.behind",
                "ledger unavailable: trading paused until the session's rows are committed",
                error=self._ledger_error,
                outage_limit_seconds=self.ledger_outage_seconds,
            )
        self._set_outputs(ledger_behind=True)

    async def _catch_up(self) -> None:
        """While the ledger is behind: no bar, no order; retry with backoff, or fail closed.

        The write runs on a worker thread (a locked SQLite file blocks it for the busy
        timeout); a stop or kill wakes the wait. Past ``ledger_outage_seconds`` the
        session ends ``failed``; its final batch is then retried in the background.
        """
        loop = asyncio.get_running_loop()
        delay = _RETRY_FIRST
        while self._behind_since is not None and not self._finished:
            behind = time.monotonic() - self._behind_since
            if behind >= self.ledger_outage_seconds:
                self._finish(
                    "failed",
                    f"ledger unavailable for {behind:.0f} s "
                    f"(limit {self.ledger_outage_seconds:g} s)",
                    error=self._ledger_error,
                )
                return
            wait = min(delay, self.ledger_outage_seconds - behind)
            waiter = self._waiter = self._pacer.wait_until(loop.time() + wait)
            try:
                await waiter
            finally:
                self._waiter = None
            if self._finished:
                return
            await loop.run_in_executor(None, self._write_behind)
            delay = min(delay * 2, _RETRY_MAX)

    def _write_behind(self) -> None:
        """Retry the write of everything the ledger has not taken yet (one transaction)."""
        with self._lock:
            if self._finished or self._behind_since is None:
                return
            if not self._write(self._batch(flush_state=True)):
                return
            self._consume()
            behind = time.monotonic() - self._behind_since
            self._behind_since = None
            self._bars_committed()  # publishes ledger.behind and the rest, after their rows
            self._frame(
                "ledger.caught_up",
                f"ledger available again after {behind:.1f} s: trading resumed",
                behind_seconds=behind,
            )
        self._set_outputs(ledger_behind=False)
        log.warning("paper session %s: ledger caught up after %.1f s", self.paper_run_id, behind)

    def _flush(self, flush_state: bool = False) -> None:
        if self._write(self._batch(flush_state=flush_state)):
            self._consume()
            self._publish_pending()

    def _bars_batch(self) -> dict[str, Any]:
        """Under the lock: the batch of the bars processed since the last commit.

        It carries the state snapshot every ``state_flush_every`` bars.
        """
        engine = self._engine
        state_at = engine.bar_index // self.state_flush_every
        return self._batch(flush_state=state_at > self._state_flushed_at)

    def _bars_committed(self) -> None:
        """Under the lock, after the commit of :meth:`_bars_batch`: publish, update outputs."""
        frames = self._take_committed()
        self.frames.publish_many(frames)
        values = self._output_values()
        if frames:
            values["last_frame"] = as_frame(self._run_id, frames[-1])
        self._last_output = self._last_flush
        self._set_outputs(**values)

    def _flush_bars(self) -> None:
        """Under the lock: commit the bars processed so far on their own, then publish."""
        if self._write(self._bars_batch()):
            self._consume()
            self._bars_committed()

    def _output_values(self) -> dict[str, Any]:
        engine = self._engine
        if engine is None:
            return {}
        broker = engine.broker
        equity = broker.equity
        return {
            "equity": equity,
            "cash": broker.cash,
            "positions": self._positions_snapshot(),
            "num_fills": len(broker.fills),
            "bars_seen": engine.bars_seen,
            "total_pnl": equity - self.starting_cash,
            "realized_pnl": broker.realized_pnl,
        }

    def _update_outputs(self) -> None:
        values = self._output_values()
        if values:
            self._set_outputs(**values)


class _GroupCommit(_PerLoop):
    """Commits the bars of one loop's paced sessions together, once per loop turn.

    A paced session that processed a bar (or made a heartbeat) adds itself; in the
    next turn of the loop the rows of every session added meanwhile go into one
    ``write_batches`` transaction (one per ledger), so many sessions cost one commit
    instead of one each. Each session's lock is held from building its batch until its
    frames are published: a stop or kill on another thread waits, then finds the bars
    committed, or finishes first and its final batch takes them (the session is then
    skipped here).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._sessions: list[PaperSession] = []

    def add(self, session: PaperSession) -> None:
        """Commit ``session``'s bars in the next loop turn (call on the loop's thread)."""
        if not self._sessions:
            self._loop.call_soon(self._commit)
        self._sessions.append(session)

    def _commit(self) -> None:
        runtimes = {id(s.runtime): s.runtime for s in self._sessions}
        if any(_halts_pending(rt) for rt in runtimes.values()):
            # a kill or stop-all takes these bars in its final rows
            self._loop.call_later(_HALT_POLL, self._commit)
            return
        # a session that added itself twice (a heartbeat, then a bar) is written once
        sessions = list({id(s): s for s in self._sessions}.values())
        self._sessions = []
        failed: list[tuple[PaperSession, Exception]] = []
        committed: list[PaperSession] = []
        with ExitStack() as locks:
            batches: list[tuple[PaperSession, dict[str, Any]]] = []
            for s in sessions:
                locks.enter_context(s._lock)
                if s._finished or not (s._unflushed or s._pending):  # a final batch took them
                    continue
                try:
                    batch = s._bars_batch()
                except Exception as exc:  # noqa: BLE001 - that session fails, not the others
                    failed.append((s, exc))
                    continue
                batches.append((s, batch))
            for group in _by_ledger(batches):
                failed += _write_group(group)
            bad = {id(s) for s, _ in failed}
            for s, _ in batches:
                if id(s) not in bad:
                    s._consume()
                    s._unpublished += s._pending  # committed: a stop from now on skips them
                    s._pending.clear()
                    committed.append(s)
        # The locks are free again: a kill waits for the commit, not for the publishing.
        for s in committed:
            with s._lock:
                if s._finished:  # its stop publishes them, before its own frames
                    continue
                try:
                    s._bars_committed()
                except Exception as exc:  # noqa: BLE001
                    failed.append((s, exc))
        for s, exc in failed:  # as when the session's own task raises: it fails
            if isinstance(exc, LedgerUnavailable):  # unless its ledger may take it later
                s._fall_behind(exc)
                continue
            log.error("paper session %s failed", s.paper_run_id, exc_info=exc)
            s._finish(
                "failed", f"error: {type(exc).__name__}", error=f"{type(exc).__name__}: {exc}"
            )


def _write_group(
    group: list[tuple[PaperSession, dict[str, Any]]],
) -> list[tuple[PaperSession, Exception]]:
    """Write the batches of sessions sharing one ledger in one transaction.

    If that fails, each is written alone; returns the sessions whose own write failed.
    """
    ledger = group[0][0].ledger_
    try:
        ledger.write_batches([(s.paper_run_id, batch) for s, batch in group])
        return []
    except Exception as exc:  # noqa: BLE001 - one bad batch must not fail the others
        if len(group) == 1:
            return [(group[0][0], exc)]
        log.warning("group commit of %d sessions failed (%s); writing each alone", len(group), exc)
    failed = []
    for s, batch in group:
        try:
            ledger.write_batch(s.paper_run_id, **batch)
        except Exception as exc:  # noqa: BLE001
            failed.append((s, exc))
    return failed
