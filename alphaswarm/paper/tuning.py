"""Interpreter tuning, an explicit opt-in of the process the kit owns.

Library calls (``backtest``, ``sweep``, ``reconcile``, :class:`~alphaswarm.PaperSession`)
never touch interpreter-wide state: the cyclic garbage collector, its frozen
generation, the switch interval. A notebook, a script or someone else's server
keeps its own settings.

``alphaswarm serve --tune-interpreter`` (:func:`alphaswarm.server.app.serve` with
``tune_interpreter=True``) owns its process and may trade some memory for latency
there. :func:`enable` then

* sets the interpreter's switch interval (:func:`sys.setswitchinterval`, 1 ms by
  default): a thread busy with Python code hands the interpreter lock to a waiting
  one (a kill-switch request) sooner;
* freezes what paper sessions are made of shortly after they start
  (:class:`~alphaswarm.paper.gcfreeze.HeapFreezer`), so full collections walk less, and
  unfreezes and collects everything when no session runs any more: no object of
  the process stays frozen once its sessions have ended;
* holds the collector off and shortens the switch interval further while a kill
  switch halts sessions (:func:`latency_critical`).

:func:`disable` undoes all of it: the switch interval comes back, the heap is
unfrozen and collected, the collector resumes.
"""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alphaswarm.paper.gcfreeze import HeapFreezer

__all__ = [
    "DEFAULT_SWITCH_INTERVAL_MS",
    "HALT_SWITCH_INTERVAL_S",
    "disable",
    "enable",
    "enabled",
    "heap_freezer",
    "latency_critical",
    "long_lived_made",
    "session_ended",
    "session_started",
]

#: The switch interval :func:`enable` sets unless told otherwise (Python's is 5 ms).
DEFAULT_SWITCH_INTERVAL_MS = 1.0
#: The switch interval while a halt runs (:func:`latency_critical`): the halting thread
#: releases the lock at each database call and gets it back sooner.
HALT_SWITCH_INTERVAL_S = 0.0005

_lock = threading.Lock()
_enabled = False
_switch_interval: float | None = None  # the value :func:`enable` set
_previous_interval: float | None = None  # the value before :func:`enable`
_freezer: HeapFreezer | None = None
# latency_critical(): how many blocks run, and what the collector was before the first
_critical = 0
_collector_was_on = False


def enabled() -> bool:
    """True between :func:`enable` and :func:`disable`."""
    return _enabled


def enable(switch_interval_ms: float = DEFAULT_SWITCH_INTERVAL_MS) -> None:
    """Tune this interpreter for many paper sessions and fast halts (see the module).

    Parameters
    ----------
    switch_interval_ms : float
        The interpreter's switch interval in milliseconds, in (0, 100].

    Raises
    ------
    ValueError
        A switch interval out of range.
    """
    global _enabled, _switch_interval, _previous_interval
    if isinstance(switch_interval_ms, bool) or not 0 < switch_interval_ms <= 100:
        raise ValueError(f"switch_interval_ms must be in (0, 100], got {switch_interval_ms}")
    with _lock:
        if _previous_interval is None:
            _previous_interval = sys.getswitchinterval()
        _switch_interval = switch_interval_ms / 1000
        sys.setswitchinterval(_switch_interval)
        _enabled = True


def disable() -> None:
    """Undo :func:`enable`: switch interval restored, heap unfrozen and collected."""
    global _enabled, _switch_interval, _previous_interval, _freezer
    with _lock:
        _enabled = False
        freezer, _freezer = _freezer, None
        previous, _previous_interval = _previous_interval, None
        _switch_interval = None
        if previous is not None:
            sys.setswitchinterval(previous)
    if freezer is not None:
        freezer.close()


def heap_freezer() -> HeapFreezer | None:
    """The heap freezer of the tuned process (None unless tuning is on and a session ran)."""
    return _freezer


def _get_freezer() -> HeapFreezer | None:
    global _freezer
    if not _enabled:
        return None
    from alphaswarm.paper.runtime import engine_loop

    loop = engine_loop()  # before the lock: starting it may import
    with _lock:
        if _enabled and _freezer is None:
            from alphaswarm.paper.gcfreeze import HeapFreezer

            _freezer = HeapFreezer(loop, _no_session_running)
        return _freezer


def session_started() -> None:
    """A paper session started (a no-op unless tuning is on)."""
    if _enabled:
        freezer = _get_freezer()
        if freezer is not None:
            freezer.session_started()


def long_lived_made() -> None:
    """Many long-lived objects were just made (the server built its dashboard).

    In a tuned process whose sessions run, they are frozen shortly after, as after a
    session start; otherwise nothing happens.
    """
    freezer = _freezer
    if freezer is not None:
        freezer.settle()


def session_ended() -> None:
    """A paper session ended (a no-op unless tuning is on)."""
    freezer = _freezer
    if freezer is not None:
        freezer.session_ended()


def _no_session_running() -> bool:
    from alphaswarm.paper.registry import registry

    return not registry().running()


@contextmanager
def latency_critical() -> Iterator[None]:
    """Around a halt: no collection and a short switch interval, when tuning is on.

    Without tuning it changes nothing. With it, the first of overlapping blocks (any
    threads) turns the collector off and the last turns it back on if it was on,
    and the switch interval is :data:`HALT_SWITCH_INTERVAL_S` meanwhile.
    """
    global _critical, _collector_was_on
    with _lock:
        if not _enabled:
            tuned = False
        else:
            tuned = True
            _critical += 1
            if _critical == 1:
                _collector_was_on = gc.isenabled()
                gc.disable()
                sys.setswitchinterval(min(sys.getswitchinterval(), HALT_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        if tuned:
            with _lock:
                _critical -= 1
                if _critical == 0:
                    if _collector_was_on:
                        gc.enable()
                    if _enabled and _switch_interval is not None:
                        sys.setswitchinterval(_switch_interval)
