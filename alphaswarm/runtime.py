"""Process-wide defaults: the ledger, and the engine loop that paces paper sessions.

Paper sessions started from a thread without a running asyncio loop (a script,
the server) run on one shared background loop, so the engine never competes
with the web server's loop and a notebook's loop stays free.

Starting that loop also moves every object alive at that moment (modules,
classes, the server's routes ...) out of the cyclic garbage collector's sight
(:func:`gc.freeze`): a full collection then walks only what was made since,
instead of pausing every thread, the engine's too, for a walk of the whole heap.
From then on a :class:`~alphaswarm.gcfreeze.HeapFreezer` does the same for the
objects of the sessions that start on it (see :mod:`alphaswarm.gcfreeze`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from alphaswarm.gcfreeze import HeapFreezer

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

_lock = threading.Lock()
_ledger: Ledger | None = None
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_freezer: HeapFreezer | None = None


def get_ledger() -> Ledger:
    """The process's default ledger (``ALPHASWARM_DB_URL`` or ``~/.alphaswarm/ledger.db``)."""
    global _ledger
    with _lock:
        if _ledger is None:
            from alphaswarm.ledger import Ledger

            _ledger = Ledger()
            _attach(_ledger)
        return _ledger


def set_ledger(ledger: Ledger | str | None) -> Ledger | None:
    """Make ``ledger`` (or a URL) the default for sessions, backtests and the kill switch."""
    global _ledger
    from alphaswarm.ledger import Ledger

    if isinstance(ledger, str):
        ledger = Ledger(url=ledger)
    with _lock:
        _ledger = ledger
    _attach(ledger)
    return ledger


def _attach(ledger: Ledger | None) -> None:
    from alphaswarm.killswitch import kill_switch
    from alphaswarm.recovery import recover_orphans

    kill_switch().attach_ledger(ledger)
    if ledger is not None:
        recover_orphans(ledger)


def engine_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop sessions run on when the caller has none."""
    global _loop, _thread, _freezer
    started = False
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=run, name="alphaswarm-engine", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
            _freezer = HeapFreezer(loop, _no_session_running)
            started = True
        current, freezer = _loop, _freezer
    if started and freezer is not None:  # outside the lock: the collection may run finalizers
        freezer.refreeze()
    return current


def heap_freezer() -> HeapFreezer | None:
    """The engine loop's :class:`~alphaswarm.gcfreeze.HeapFreezer` (None before it starts)."""
    return _freezer


def session_started() -> None:
    """Tell the engine loop's heap freezer that a session started (no-op without one)."""
    freezer = _freezer
    if freezer is not None:
        freezer.session_started()


def session_ended() -> None:
    """Tell the engine loop's heap freezer that sessions ended (no-op without one)."""
    freezer = _freezer
    if freezer is not None:
        freezer.session_ended()


def _no_session_running() -> bool:
    from alphaswarm.trading.registry import registry

    return not registry().running()
