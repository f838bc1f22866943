"""The runtime of paper sessions: their ledger, kill switch, registry and engine loop.

A :class:`Runtime` holds the four collaborators a :class:`~alphaswarm.PaperSession`
works with. Each process has a default one (:meth:`Runtime.default`), which
``aw.get_ledger()``, ``aw.set_ledger()``, ``aw.kill_switch()`` and ``aw.registry()``
read and write; it is replaceable (:func:`set_runtime`, or :func:`use_runtime` for a
block). A session keeps the runtime it was made with (``PaperSession(runtime=...)``,
the default one otherwise), so two runtimes, with two ledgers and two kill
switches, live side by side in one process: engaging one kill switch halts that
runtime's sessions only.

Paper sessions started from a thread without a running asyncio loop (a script,
the server) run on their runtime's background loop, so the engine never competes
with the web server's loop and a notebook's loop stays free.

Nothing here starts before it is needed: the default ledger opens (and recovers
orphaned runs) on first use, the engine loop's thread on the first session that
needs it. Neither touches the garbage collector or the switch interval; a process
that wants that opts in (:mod:`alphaswarm.paper.tuning`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from alphaswarm.paper import tuning

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.gcfreeze import HeapFreezer
    from alphaswarm.paper.killswitch import KillSwitch
    from alphaswarm.paper.registry import SessionRegistry

log = logging.getLogger(__name__)


class Runtime:
    """The ledger, kill switch, session registry and engine loop of paper sessions.

    Parameters
    ----------
    ledger
        The ledger (or its URL). None: the default ledger (``ALPHASWARM_DB_URL`` or
        ``~/.alphaswarm/ledger.db``), opened on first use.
    name
        A label, shown in ``repr``.

    Examples
    --------
    >>> rt = Runtime(ledger="sqlite:///my.db")      # doctest: +SKIP
    >>> s = aw.PaperSession(bot, runtime=rt).start()  # doctest: +SKIP
    >>> rt.kill_switch.engage("enough")             # halts rt's sessions only  # doctest: +SKIP
    >>> rt.close()                                  # doctest: +SKIP
    """

    def __init__(self, ledger: Ledger | str | None = None, *, name: str = "runtime") -> None:
        self.name = name
        # Held while a ledger is opened and attached to the kill switch (its
        # ``_ensure_ledger`` takes it before its own lock, never after).
        self._lock = threading.RLock()
        # Guards the lazy creation of the kill switch and registry only.
        self._make_lock = threading.RLock()
        self._ledger: Ledger | None = None
        self._kill_switch: KillSwitch | None = None
        self._registry: SessionRegistry | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if ledger is not None:
            self.set_ledger(ledger)

    def __repr__(self) -> str:
        return f"Runtime({self.name!r})"

    # -- the process default ----------------------------------------------------------
    @classmethod
    def default(cls) -> Runtime:
        """The process's runtime, made on first use (replace it with :func:`set_runtime`)."""
        return current()

    # -- the ledger -------------------------------------------------------------------
    @property
    def ledger(self) -> Ledger:
        """The ledger of this runtime; the default one is opened (and recovered) on first use."""
        with self._lock:
            if self._ledger is None:
                from alphaswarm.ledger import Ledger

                self._ledger = Ledger()
                self._attach(self._ledger)
            return self._ledger

    @property
    def ledger_opened(self) -> bool:
        """True once this runtime holds a ledger (nothing is opened to answer)."""
        return self._ledger is not None

    def set_ledger(self, ledger: Ledger | str | None) -> Ledger | None:
        """Make ``ledger`` (or a URL) this runtime's ledger; None reopens the default lazily.

        The kill switch follows the new ledger, and runs it left orphaned are recovered.
        """
        from alphaswarm.ledger import Ledger

        if isinstance(ledger, str):
            ledger = Ledger(url=ledger)
        with self._lock:
            self._ledger = ledger
            self._attach(ledger)
        return ledger

    def _attach(self, ledger: Ledger | None) -> None:
        from alphaswarm.paper.recovery import recover_orphans

        self.kill_switch.attach_ledger(ledger)
        if ledger is not None:
            recover_orphans(ledger)

    # -- the kill switch and the registry -----------------------------------------------
    @property
    def kill_switch(self) -> KillSwitch:
        """The kill switch of this runtime (it halts this runtime's sessions only)."""
        with self._make_lock:
            if self._kill_switch is None:
                from alphaswarm.paper.killswitch import KillSwitch

                switch = KillSwitch(name="kill_switch")
                switch._runtime = self  # attaches itself to this runtime's ledger on first use
                switch._auto_attach = True
                self._kill_switch = switch
            return self._kill_switch

    @property
    def registry(self) -> SessionRegistry:
        """The session registry of this runtime (the ``paper`` and ``bots`` kill targets)."""
        with self._make_lock:
            if self._registry is None:
                from alphaswarm.paper.registry import SessionRegistry

                switch = self.kill_switch
                sessions = SessionRegistry(name="sessions", kill_switch=switch)
                switch.register("paper", sessions.halt_all)
                switch.register("bots", lambda reason, mode: sessions.halt_all(reason, mode))
                switch.register_bot_halt(sessions.halt_bot)
                self._registry = sessions
            return self._registry

    # -- the engine loop ----------------------------------------------------------------
    def engine_loop(self) -> asyncio.AbstractEventLoop:
        """The background loop this runtime's sessions run on when the caller has none."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or loop.is_closed() or thread is None or not thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="alphaswarm-engine", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return loop

    # -- the end ------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Stop this runtime's running sessions, its switch's threads and its engine loop.

        The ledger stays open (it may be shared); close it yourself when done.
        """
        registry, switch = self._registry, self._kill_switch
        if registry is not None:
            running = registry.running()
            if running:
                registry.stop_many(running, "stopped", "runtime closed")
            for session in running:
                session.wait(timeout)
        if switch is not None:
            switch.close()
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and not loop.is_closed() and thread is not None and thread.is_alive():
            # its executor's threads (blocking calls of the sessions) end with it
            done = asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop)
            try:
                done.result(timeout)
            except Exception:  # noqa: BLE001 - a stuck call must not keep the loop alive
                log.warning("runtime %s: the engine loop's executor did not shut down", self.name)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_process_lock = threading.Lock()
_process: Runtime | None = None


def current() -> Runtime:
    """The process's runtime (made on first use; nothing is opened until asked for)."""
    global _process
    with _process_lock:
        if _process is None:
            _process = Runtime(name="default")
        return _process


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Make ``runtime`` the process's runtime; return the one it replaces.

    None: a fresh default runtime is made on next use.
    """
    global _process
    with _process_lock:
        previous, _process = _process, runtime
    return previous


@contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Make ``runtime`` the process's runtime inside the ``with`` block.

    Sessions made inside keep it after the block; the previous one is restored.
    """
    previous = set_runtime(runtime)
    try:
        yield runtime
    finally:
        set_runtime(previous)


# -- the default runtime's collaborators, as functions (the tutorial's spelling) ------
def get_ledger() -> Ledger:
    """The process's default ledger (``ALPHASWARM_DB_URL`` or ``~/.alphaswarm/ledger.db``)."""
    return current().ledger


def set_ledger(ledger: Ledger | str | None) -> Ledger | None:
    """Make ``ledger`` (or a URL) the default for sessions, backtests and the kill switch."""
    return current().set_ledger(ledger)


def engine_loop() -> asyncio.AbstractEventLoop:
    """The default runtime's background loop, for sessions whose caller has none."""
    return current().engine_loop()


def heap_freezer() -> HeapFreezer | None:
    """The tuned process's heap freezer (None unless :mod:`alphaswarm.paper.tuning` is on)."""
    return tuning.heap_freezer()


def session_started() -> None:
    """A session started: tell the interpreter tuning, if the process opted in."""
    tuning.session_started()


def session_ended() -> None:
    """A session ended: tell the interpreter tuning, if the process opted in."""
    tuning.session_ended()
