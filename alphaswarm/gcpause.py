"""Hold off Python's cyclic garbage collector around short, latency-bound work."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the block runs.

    A full collection walks every object of the process (the whole heap of a
    notebook or a server) while it holds the GIL; inside a backtest that can cost
    more than the run itself, inside a kill-switch halt it lands on the halt's clock.
    Reference counting frees memory as usual meanwhile. The collector resumes
    afterwards if it was on; nested and concurrent uses leave it on at the end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
