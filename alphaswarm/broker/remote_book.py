"""The kit's side of a remote broker's orders, shared by the Alpaca and ccxt adapters.

A remote adapter keeps our :class:`~alphaswarm.model.Order` objects in ``orders``,
the fills it has seen in ``fills``, positions built from them in ``_positions`` and
the changes still to report in ``_updates``; these methods read and write those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alphaswarm.broker.base import OrderUpdate, UpdateKind
from alphaswarm.model import Fill, Order, OrderStatus, Position

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["RemoteOrderBook"]


class RemoteOrderBook:
    """Orders, fills and positions as a remote broker adapter tracks them (a mixin)."""

    _prefix: str
    orders: dict[str, Order]
    fills: list[Fill]
    _positions: dict[str, Position]
    _fill_seq: int
    _updates: list[OrderUpdate]

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
