"""What every route of the server reaches: its ledger, its runtime and its security.

The REST handlers and the paper WebSocket take the same route kwargs; a route given
no ledger (or runtime) uses the process's current runtime, looked up per request so a
replaced runtime is seen at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alphaswarm.paper.runtime import current
from alphaswarm.server.security import Security

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.runtime import Runtime

__all__ = ["RouteContext"]


class RouteContext:
    """The ledger, runtime and security of a route (a mixin of its handler)."""

    _ledger: Ledger | None
    _runtime: Runtime | None
    security: Security

    def _take_context(
        self, ledger: Ledger | None, runtime: Runtime | None, security: Security | None
    ) -> None:
        """Keep the route kwargs (``None``: the process's current runtime; open security)."""
        self._ledger = ledger
        self._runtime = runtime
        self.security = security or Security()

    @property
    def ledger(self) -> Ledger:
        """The ledger this route reads and writes (the runtime's when none was given)."""
        return self._ledger if self._ledger is not None else self.runtime.ledger

    @property
    def runtime(self) -> Runtime:
        """The runtime of the sessions this route starts, stops, kills or streams."""
        return self._runtime if self._runtime is not None else current()
