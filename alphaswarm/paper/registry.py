"""The registry of paper sessions in this process, and its kill-switch targets."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import param

from alphaswarm.paper import tuning

if TYPE_CHECKING:
    from alphaswarm.paper.killswitch import KillSwitch
    from alphaswarm.paper.session import PaperSession

log = logging.getLogger(__name__)


class SessionRegistry(param.Parameterized):
    """Every paper session of this process, live and recently finished.

    ``version`` increments whenever a session starts or ends, so views can
    watch one number. Each :class:`~alphaswarm.paper.runtime.Runtime` has one,
    wired to its kill switch (``kill_switch``).
    """

    version = param.Integer(default=0, constant=True, doc="Bumped on every start and end.")
    keep_finished = param.Integer(
        default=500, bounds=(0, None), doc="Finished sessions kept in memory for the views."
    )
    account_max_daily_loss = param.Number(
        default=None,
        allow_None=True,
        bounds=(0, None),
        doc="Engage the kill switch when the running sessions together lose more than this "
        "since their start.",
    )
    account_max_drawdown_pct = param.Number(
        default=None,
        allow_None=True,
        bounds=(0, 1),
        doc="Engage the kill switch when the combined equity of running sessions falls this "
        "fraction below its peak.",
    )

    def __init__(self, kill_switch: KillSwitch | None = None, **params: Any) -> None:
        super().__init__(**params)
        if kill_switch is None:
            from alphaswarm.paper.killswitch import KillSwitch

            kill_switch = KillSwitch(name="kill_switch")
        #: The kill switch whose ``paper`` and ``bots`` targets this registry answers.
        self.kill_switch = kill_switch
        self._lock = threading.RLock()
        self._sessions: OrderedDict[str, PaperSession] = OrderedDict()
        self._combined_peak = 0.0
        #: Set while sessions are being stopped in bulk; running sessions pause meanwhile.
        self.halting = threading.Event()
        self._halt_all_lock = threading.Lock()
        self._halting_lock = threading.Lock()
        self._bump_lock = threading.RLock()
        self._halts_in_progress = 0
        self._peak_key: frozenset[str] = frozenset()
        # whether an account limit is set, read by check_account after every bar
        self._limits_set = False
        self.param.watch(
            self._limits_changed, ["account_max_daily_loss", "account_max_drawdown_pct"]
        )
        self._limits_changed()

    def _limits_changed(self, *_: Any) -> None:
        self._limits_set = (
            self.account_max_daily_loss is not None or self.account_max_drawdown_pct is not None
        )

    def _bump(self) -> None:
        # starts and ends come from several threads at once: one unlock at a time
        with self._bump_lock:
            p = self.param["version"]
            p.constant = False
            try:
                self.version += 1
            finally:
                p.constant = True

    def add(self, session: PaperSession) -> None:
        """Register a started session."""
        with self._lock:
            self._sessions[session.paper_run_id] = session
            finished = [k for k, s in self._sessions.items() if s.finished]
            for key in finished[: max(len(finished) - self.keep_finished, 0)]:
                del self._sessions[key]
        self._bump()
        tuning.session_started()

    def ended(self, session: PaperSession) -> None:
        """Called by a session when it has finished."""
        self._bump()
        tuning.session_ended()

    def get(self, run_id: str) -> PaperSession | None:
        """The session with ``run_id`` if it lives in this process."""
        return self._sessions.get(run_id)

    def why_open(self, run_id: str, order_id: str) -> str | None:
        """Why order ``order_id`` of run ``run_id`` is still open, from its live broker.

        None when the run does not trade in this registry (finished, or another
        process's) or its broker does not know the order.
        """
        session = self.get(run_id)
        return session.why_open(order_id) if session is not None else None

    def sessions(self) -> list[PaperSession]:
        """All known sessions, oldest first."""
        with self._lock:
            return list(self._sessions.values())

    def running(self, bot_id: str | None = None) -> list[PaperSession]:
        """Sessions that have not finished (of ``bot_id`` when given)."""
        return [
            s for s in self.sessions() if not s.finished and (bot_id is None or s.bot_id == bot_id)
        ]

    def stop_many(
        self, sessions: list[PaperSession], status: str, reason: str, mode: str = "cancel"
    ) -> int:
        """Stop ``sessions`` at once, their final rows written in one transaction.

        While it runs, ``halting`` is set so sessions take no new bar.
        """
        from alphaswarm.paper.session import PaperSession

        with self._halting_lock:
            self._halts_in_progress += 1
            self.halting.set()
        try:
            ks = self.kill_switch
            return PaperSession.finish_many(
                sessions,
                status,
                reason,
                mode,
                on_committed=ks.note_commit,
                on_closed=ks.note_closed,
            )
        finally:
            with self._halting_lock:
                self._halts_in_progress -= 1
                if not self._halts_in_progress:
                    self.halting.clear()

    # -- kill-switch targets ----------------------------------------------------------
    def halt_all(self, reason: str, mode: str) -> int:
        """Kill-switch target ``paper``: stop (or restrict) every running session."""
        with self._halt_all_lock:  # the paper and bots targets run at once: one does the work
            running = self.running()
            if mode in ("reduce_only", "freeze"):
                return len(running)  # they keep running; the order gate restricts them
            return self.stop_many(running, "killed", reason, mode)

    def halt_bot(self, bot_id: str, reason: str, mode: str) -> int:
        """Per-bot target: stop every running session of ``bot_id``."""
        running = self.running(bot_id)
        if mode in ("reduce_only", "freeze"):
            return len(running)
        return self.stop_many(running, "stopped", reason, mode)

    def check_account(self) -> None:
        """Engage the kill switch when the account-level limits are broken."""
        if not self._limits_set:
            return
        running = self.running()
        if not running:
            return
        start = sum(s.starting_cash for s in running)
        equity = sum(s.engine.broker.equity if s.engine else s.equity for s in running)
        key = frozenset(s.paper_run_id for s in running)
        if key != self._peak_key:  # a session started or ended: the combined curve restarts
            self._peak_key, self._combined_peak = key, equity
        self._combined_peak = max(self._combined_peak, equity)
        loss = start - equity
        dd = (self._combined_peak - equity) / self._combined_peak if self._combined_peak else 0
        reason = None
        if self.account_max_daily_loss is not None and loss > self.account_max_daily_loss:
            reason = f"account loss {loss:,.2f} > {self.account_max_daily_loss:,.2f}"
        elif self.account_max_drawdown_pct is not None and dd > self.account_max_drawdown_pct:
            reason = f"account drawdown {dd:.2%} > {self.account_max_drawdown_pct:.2%}"
        if reason is not None and not self.kill_switch.engaged:
            log.warning("account limit broken: %s", reason)
            self.kill_switch.engage(f"account limit: {reason}", actor="account-risk")


def registry() -> SessionRegistry:
    """The session registry of the process's runtime (:meth:`Runtime.default`)."""
    from alphaswarm.paper.runtime import current

    return current().registry
