"""Run a coroutine on an event loop of its own, whatever the test's thread already runs.

A browser test leaves Playwright's event loop running in the test process's main
thread, so ``asyncio.run`` there fails for every later test of the same process; the
order of test files differs between the suite's worker processes. A thread of its own
gives each coroutine a fresh loop in every order.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")


def run_on_fresh_loop(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` in a new thread; its result, or its exception re-raised."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="fresh-loop")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
