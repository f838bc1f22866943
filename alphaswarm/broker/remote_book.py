"""The kit's side of a remote broker's orders, shared by the Alpaca and ccxt adapters.

A remote adapter keeps our :class:`~alphaswarm.model.Order` objects in ``orders``,
the broker's id of each in ``_broker_ids``, the fills it has seen in ``fills``,
positions built from them in ``_positions`` and the changes still to report in
``_updates``; these methods read and write those. While the broker does not answer
(``available`` false) new orders are refused (fail closed).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from alphaswarm.broker.base import CancelConfirmation, OrderUpdate, UpdateKind
from alphaswarm.model import Fill, Order, OrderStatus, Position

if TYPE_CHECKING:
    from datetime import datetime

    from alphaswarm.model import OrderRequest

__all__ = ["CLIENT_ID_PREFIX", "RemoteOrderBook"]

log = logging.getLogger(__name__)

#: What every client order id the kit sends starts with (then our order id).
CLIENT_ID_PREFIX = "aw-"


class RemoteOrderBook:
    """Orders, fills and positions as a remote broker adapter tracks them (a mixin).

    ``_venue`` names the broker in messages (``alpaca``, ``ccxt sandbox``).
    """

    _venue: str = "broker"
    _prefix: str
    _seq: int
    orders: dict[str, Order]
    _broker_ids: dict[str, str]
    fills: list[Fill]
    _positions: dict[str, Position]
    _fill_seq: int
    _updates: list[OrderUpdate]
    available: bool
    unavailable_reason: str
    submissions: int

    def _init_book(self, id_prefix: str) -> None:
        """Empty books: no order, fill or position yet; new orders accepted."""
        self._prefix = id_prefix
        self._seq = 0
        self.orders = {}
        self._broker_ids = {}  # our order id -> broker order id
        self._positions = {}
        self.fills = []
        self._fill_seq = 0
        self._updates = []
        self.available = True
        self.unavailable_reason = ""
        self.submissions = 0  # order submissions sent

    # -- ids --------------------------------------------------------------------------
    def client_order_id(self, order_id: str) -> str:
        """The client order id sent with our order ``order_id``."""
        return f"{CLIENT_ID_PREFIX}{order_id}"

    def broker_order_id(self, order_id: str) -> str:
        """The broker's id of our order (empty until the broker acknowledged it)."""
        return self._broker_ids.get(order_id, "")

    def id_map(self) -> dict[str, str]:
        """Our order id → the broker's order id, for every acknowledged order."""
        return dict(self._broker_ids)

    def _next_order_id(self) -> str:
        self._seq += 1
        return f"{self._prefix}o{self._seq}"

    # -- orders -----------------------------------------------------------------------
    def _new_order(self, request: OrderRequest, at: datetime) -> Order:
        """A new order of ours, kept (rejected ``broker_unavailable`` while refusing)."""
        order = Order(self._next_order_id(), request, at, 0, updated_at=at)
        self.orders[order.id] = order
        if not self.available:
            self._refuse(
                order, "broker_unavailable",
                f"broker not answering, new orders refused: {self.unavailable_reason}",
            )  # fmt: skip
        return order

    def _cancellable(self, order_id: str) -> tuple[Order, str] | None:
        """Our open order ``order_id`` and its broker id, or None (unknown, done, unsent)."""
        order = self.orders.get(order_id)
        bid = self._broker_ids.get(order_id)
        if order is None or not order.is_open or not bid:
            return None
        return order, bid

    def cancel(self, order_id: str) -> Order | None:
        """Ask the broker to cancel an open order; ``None`` when unknown, done or unsent."""
        found = self._cancellable(order_id)
        return None if found is None else self._cancel_at_broker(*found)

    def _cancel_at_broker(self, order: Order, bid: str) -> Order | None:
        """Cancel our open ``order`` (broker id ``bid``) at the broker."""
        raise NotImplementedError

    def _fail_unless_confirmed(
        self, confirmations: list[CancelConfirmation]
    ) -> list[CancelConfirmation]:
        """A ``cancel_all``'s answers; new orders are refused when one is unconfirmed."""
        if any(not c.confirmed for c in confirmations):
            self._fail_closed("cancel all: not every cancel was confirmed")
        return confirmations

    def _fail_closed(self, reason: str) -> None:
        """Refuse new orders from now on, saying why (logged once)."""
        if self.available:
            log.warning("%s broker refuses new orders: %s", self._venue, reason)
        self.available, self.unavailable_reason = False, reason

    def _refuse(self, order: Order, code: str, reason: str) -> Order:
        """Reject ``order`` before sending it, with a reason code, and report that."""
        order.status, order.reason_code, order.reason = OrderStatus.REJECTED, code, reason
        self._updates.append(
            OrderUpdate(UpdateKind.REJECTED, order, None, "", reason, order.created_at)
        )
        return order

    def _record_fill(self, order: Order, qty: float, price: float, at: datetime) -> Fill:
        """A new fill of ``order``: numbered, applied to its position and kept."""
        self._fill_seq += 1
        fill = Fill(f"{self._prefix}f{self._fill_seq}", order.id, order.symbol, order.side,
                    qty, price, 0.0, at)  # fmt: skip
        pos = self._positions.get(order.symbol)
        if pos is None:
            pos = self._positions[order.symbol] = Position(order.symbol)
        pos.apply_fill(order.side, qty, price)
        pos.last_price = price
        self.fills.append(fill)
        return fill

    def open_orders(self) -> list[Order]:
        """Our orders that may still fill."""
        return [
            o for o in self.orders.values() if o.is_open and o.reason_code != "broker_unconfirmed"
        ]

    def positions(self) -> dict[str, Position]:
        """Positions by symbol, from the fills seen (or as :meth:`reconcile` read them)."""
        return {s: p for s, p in self._positions.items() if abs(p.qty) > 1e-12}
