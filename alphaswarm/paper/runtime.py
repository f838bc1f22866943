"""Process-wide defaults: the ledger, and the engine loop that paces paper sessions.

Paper sessions started from a thread without a running asyncio loop (a script,
the server) run on one shared background loop, so the engine never competes
with the web server's loop and a notebook's loop stays free.

Nothing here starts before it is needed: the default ledger opens (and recovers
orphaned runs) on the first :func:`get_ledger`, the engine loop's thread on the
first session that needs it. Neither touches the garbage collector or the switch
interval; a process that wants that opts in (:mod:`alphaswarm.paper.tuning`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from alphaswarm.paper import tuning

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.gcfreeze import HeapFreezer

_lock = threading.Lock()
_ledger: Ledger | None = None
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


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
    from alphaswarm.paper.killswitch import kill_switch
    from alphaswarm.paper.recovery import recover_orphans

    kill_switch().attach_ledger(ledger)
    if ledger is not None:
        recover_orphans(ledger)


def engine_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop sessions run on when the caller has none."""
    global _loop, _thread
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
        return _loop


def heap_freezer() -> HeapFreezer | None:
    """The tuned process's heap freezer (None unless :mod:`alphaswarm.paper.tuning` is on)."""
    return tuning.heap_freezer()


def session_started() -> None:
    """A session started: tell the interpreter tuning, if the process opted in."""
    tuning.session_started()


def session_ended() -> None:
    """A session ended: tell the interpreter tuning, if the process opted in."""
    tuning.session_ended()
