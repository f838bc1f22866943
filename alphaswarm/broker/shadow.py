"""Shadow simulation: the fill model running beside a real broker on the same orders.

With ``broker: {kind: alpaca_paper, shadow: true}`` a paper session's
:class:`~alphaswarm.broker.bridge.EngineBroker` hands every order it sends to the
broker, every cancel and every bar to a :class:`ShadowSimulator` as well: a
:class:`~alphaswarm.engine.broker.SimulatedBroker` with the bot's fill-model
settings (``slippage_bps``, commission, fill rule), trading an account of its own.
What it did to each order (its fills, with the price before slippage) is kept
under our order id, recorded in the run's state (``state.broker.shadow``) and
compared with the broker's fills by :func:`alphaswarm.research.shadow_report.shadow_report`.

The shadow never sends anything anywhere and never affects the run: it answers
"what would the simulator have done with these orders".
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from alphaswarm.engine.broker import BrokerConfig, SimulatedBroker
from alphaswarm.model import ModelError

if TYPE_CHECKING:
    from datetime import datetime

    from alphaswarm.model import Bar, Fill, Order, OrderRequest

__all__ = ["ShadowSimulator"]


class ShadowSimulator:
    """The fill model fed the orders and bars a real broker gets.

    Parameters
    ----------
    starting_cash : float
        Cash of the shadow account (the run's starting cash).
    config : BrokerConfig, optional
        The fill-model settings (the bot's ``broker:`` block).
    id_prefix : str
        Prefix of the shadow's own order ids.
    """

    def __init__(
        self, starting_cash: float, config: BrokerConfig | None = None, id_prefix: str = ""
    ) -> None:
        self.sim = SimulatedBroker(starting_cash, config or BrokerConfig(), f"{id_prefix}shadow-")
        self._ours: dict[str, str] = {}  # shadow order id -> our order id
        self._shadow_of: dict[str, str] = {}  # our order id -> shadow order id

    # -- fed by the engine's broker ---------------------------------------------------
    def begin_bar(self, ts: datetime) -> None:
        """A new bar time: the fill model's day bookkeeping."""
        self.sim.begin_bar(ts)

    def process_bar(self, bar: Bar, bar_index: int) -> None:
        """Let the fill model fill the shadow orders on ``bar``."""
        self.sim.process_bar(bar, bar_index)
        self.sim.mark(bar.symbol, bar.close)

    def mark(self, symbol: str, price: float) -> None:
        """The last price of ``symbol`` (values the shadow's positions)."""
        self.sim.mark(symbol, price)

    def submit(self, order: Order, request: OrderRequest, ts: datetime, bar_index: int) -> None:
        """Place the shadow twin of our order ``order`` (its own copy of the request)."""
        twin = self.sim.submit(copy.copy(request), ts, bar_index)
        self._ours[twin.id] = order.id
        self._shadow_of[order.id] = twin.id

    def cancel(self, order_id: str, code: str, reason: str) -> None:
        """Cancel the shadow twin of our order ``order_id``."""
        twin = self._shadow_of.get(order_id)
        if twin is not None:
            self.sim.cancel(twin, code, reason)

    def cancel_all(self, code: str, reason: str) -> None:
        """Cancel every open shadow order."""
        self.sim.cancel_all(code, reason)

    def fill_now(self, order: Order, bar: Bar, price: float) -> None:
        """Fill the twin of a flattening market order at ``price`` (as the simulator would)."""
        twin = self.sim.orders.get(self._shadow_of.get(order.id, ""))
        if twin is not None and twin.is_open:
            try:
                self.sim.fill_now(twin, bar, price)
            except ModelError:
                pass  # the shadow could not flatten: its order stays as it is

    # -- what it did ------------------------------------------------------------------
    def our_id(self, twin: Order, legs: dict[tuple[str, str], str]) -> str:
        """Our order id of a shadow order (a bracket exit leg: the broker's matching leg)."""
        if twin.id in self._ours:
            return self._ours[twin.id]
        parent = self._ours.get(twin.parent_id or "")
        if parent is not None:
            return legs.get((parent, twin.request.type.value), twin.id)
        return twin.id

    def to_dict(self, orders: dict[str, Order] | None = None) -> dict[str, Any]:
        """JSON-ready record: the settings, last marks and each shadow order under our id.

        Parameters
        ----------
        orders : dict, optional
            Our orders by id (to name a bracket's exit legs after the broker's legs).
        """
        legs = {
            (o.parent_id, o.request.type.value): o.id
            for o in (orders or {}).values()
            if o.parent_id is not None
        }
        fills_of: dict[str, list[Fill]] = {}
        for fill in self.sim.fills:
            fills_of.setdefault(fill.order_id, []).append(fill)
        out: dict[str, Any] = {}
        for twin in self.sim.orders.values():
            out[self.our_id(twin, legs)] = {
                "shadow_id": twin.id,
                "type": twin.request.type.value,
                "status": twin.status.value,
                "reason_code": twin.reason_code,
                "reason": twin.reason,
                "filled_qty": twin.filled_qty,
                "avg_fill_price": twin.avg_fill_price,
                "created_at": twin.created_at.isoformat(),
                "fills": [
                    {
                        "ts": f.ts.isoformat(),
                        "qty": f.qty,
                        "price": f.price,
                        # the price before the fill model's slippage
                        "ref_price": f.price - f.side.sign * f.slippage / f.qty,
                        "commission": f.commission,
                    }
                    for f in fills_of.get(twin.id, [])
                ],
            }
        return {
            "config": self.sim.config.to_dict(),
            "marks": {s: p.last_price for s, p in self.sim.positions.items() if p.last_price},
            "orders": out,
        }
