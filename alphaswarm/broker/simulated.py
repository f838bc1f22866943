"""The simulated broker behind the :class:`~alphaswarm.broker.base.Broker` interface.

:class:`SimulatedBrokerAdapter` wraps a
:class:`~alphaswarm.engine.broker.SimulatedBroker` (the engine keeps
driving that object bar by bar) and reports what it does to orders as
:class:`~alphaswarm.broker.base.OrderUpdate` records, so code written against
the interface reads a simulated and a real broker alike.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from alphaswarm.broker.base import (
    Broker,
    BrokerAccount,
    BrokerError,
    CancelConfirmation,
    OrderChange,
    OrderUpdate,
    UpdateKind,
)
from alphaswarm.model import OrderStatus

if TYPE_CHECKING:
    from datetime import datetime

    from alphaswarm.engine.broker import BrokerEvent, SimulatedBroker
    from alphaswarm.model import Bar, Order, OrderRequest, Position

_EVENT_KINDS = {
    "filled": None,  # decided by the order's status after the fill
    "cancelled": UpdateKind.CANCELLED,
    "rejected": UpdateKind.REJECTED,
}


class SimulatedBrokerAdapter(Broker):
    """A :class:`SimulatedBroker` seen through the broker interface.

    Parameters
    ----------
    sim : SimulatedBroker
        The fill model and account; bars reach it through :meth:`process_bar`
        (or the engine, which calls the wrapped object directly).
    """

    kind = "simulated"

    def __init__(self, sim: SimulatedBroker) -> None:
        self.sim = sim
        self._updates: list[OrderUpdate] = []
        self._bar_index = 0
        self._last_ts: datetime | None = None

    def _record(self, event: BrokerEvent) -> None:
        order = event.order
        kind = _EVENT_KINDS.get(event.kind)
        if kind is None:
            kind = UpdateKind.FILLED if not order.is_open else UpdateKind.PARTIALLY_FILLED
        if kind is UpdateKind.CANCELLED and order.reason_code == "day_expired":
            kind = UpdateKind.EXPIRED
        self._updates.append(
            OrderUpdate(kind, order, event.fill, order.id, order.reason, order.updated_at)
        )

    def process_bar(self, bar: Bar, bar_index: int) -> None:
        """Hand one bar to the fill model, recording what it does to orders."""
        self._bar_index, self._last_ts = bar_index, bar.ts
        for event in self.sim.begin_bar(bar.ts):
            self._record(event)
        for event in self.sim.process_bar(bar, bar_index):
            self._record(event)

    def submit(self, request: OrderRequest, ts: datetime | None = None) -> Order:
        """Place an order in the fill model (it may fill from the next bar)."""
        when = ts or self._last_ts
        if when is None:
            raise BrokerError("submit: the simulated broker needs a time (no bar seen yet)")
        order = self.sim.submit(request, when, self._bar_index)
        kind = UpdateKind.REJECTED if order.status is OrderStatus.REJECTED else UpdateKind.ACCEPTED
        self._updates.append(OrderUpdate(kind, order, None, order.id, order.reason, when))
        return order

    def cancel(self, order_id: str) -> Order | None:
        """Cancel an open order."""
        order = self.sim.cancel(order_id)
        if order is not None:
            self._updates.append(
                OrderUpdate(UpdateKind.CANCELLED, order, None, order.id, order.reason)
            )
        return order

    def _replace(self, order_id: str, change: OrderChange) -> Order:
        """Change an open order in place (quantity not below what has filled)."""
        order = self.sim.orders.get(order_id)
        if order is None or not order.is_open:
            raise BrokerError(f"replace: {order_id!r} is not an open order")
        qty = change.qty
        if qty is not None and not qty > order.filled_qty:
            raise BrokerError(f"replace: qty {qty:g} must exceed the filled {order.filled_qty:g}")
        change.apply_to(order.request)
        self.sim.dirty_orders[order.id] = order
        self._updates.append(OrderUpdate(UpdateKind.REPLACED, order, None, order.id))
        return order

    def cancel_all(self, reason: str = "cancel all") -> list[CancelConfirmation]:
        """Cancel every open order; the simulator confirms at once."""
        start = time.perf_counter()
        out = []
        for order in self.sim.cancel_all("kill_switch", reason):
            self._updates.append(
                OrderUpdate(UpdateKind.CANCELLED, order, None, order.id, order.reason)
            )
            out.append(
                CancelConfirmation(
                    order.id, order.id, True, order.status.value, time.perf_counter() - start
                )
            )
        return out

    def open_orders(self) -> list[Order]:
        """Orders that may still fill."""
        return list(self.sim.open_orders)

    def positions(self) -> dict[str, Position]:
        """Non-flat positions by symbol."""
        return {s: p for s, p in self.sim.positions.items() if abs(p.qty) > 1e-12}

    def account(self) -> BrokerAccount:
        """Cash and equity of the simulated account."""
        sim = self.sim
        buying_power = float("inf") if sim.config.allow_margin else sim.cash
        return BrokerAccount(sim.cash, sim.equity, buying_power)

    def poll_updates(self) -> list[OrderUpdate]:
        """Order changes since the last call."""
        out, self._updates = self._updates, []
        return out
