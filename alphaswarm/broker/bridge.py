"""A real broker seen by the bar engine as if it were the simulated one.

The :class:`~alphaswarm.engine.loop.Engine` drives a broker bar by bar
(``begin_bar``, ``process_bar``, ``submit``, ``cancel_all``, ``fill_now``) and
reads its account (``cash``, ``positions``, ``open_orders``). :class:`EngineBroker`
offers that surface over any :class:`~alphaswarm.broker.base.Broker`: orders go to
the broker after the engine's pre-trade risk checks, and the broker's updates
(fills, cancels, rejections with the broker's reason) reach the engine as
:class:`~alphaswarm.engine.broker.BrokerEvent` records at the next bar,
so the engine, the risk limits, the frames and the ledger stay as they are.

Differences from the simulator, by nature of a real broker: fills come when the
broker reports them (applied at the next bar, at the broker's price); a cancel is
final when the broker confirms it; ``fill_now`` (flatten on a halt) sends a market
order and waits a bounded time for the broker's fill.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from alphaswarm.broker.base import BrokerError, UpdateKind
from alphaswarm.broker.shadow import ShadowSimulator
from alphaswarm.engine.broker import BrokerConfig, BrokerEvent, CashAccount
from alphaswarm.model import ModelError, OrderStatus

if TYPE_CHECKING:
    from datetime import datetime

    from alphaswarm.broker.base import Broker, CancelConfirmation, OrderUpdate
    from alphaswarm.model import Bar, Fill, Order, OrderRequest, Position, Side

log = logging.getLogger(__name__)

_EVENT_OF = {
    UpdateKind.CANCELLED: "cancelled",
    UpdateKind.EXPIRED: "cancelled",
    UpdateKind.REJECTED: "rejected",
}


class EngineBroker(CashAccount):
    """The engine's broker surface over a :class:`~alphaswarm.broker.base.Broker`.

    Parameters
    ----------
    broker : Broker
        The broker orders go to.
    starting_cash : float
        Cash the run starts with (the account's cash is tracked from the broker's fills);
        a finite number > 0.
    config : BrokerConfig, optional
        ``allow_short`` and ``allow_margin`` are read by the engine's order sizing;
        fill-model settings do not apply to a real broker.
    id_prefix : str
        Prefix of ids of requests the risk limits deny (the broker names its orders).
    flatten_timeout : float
        Seconds ``fill_now`` waits for the broker's fill of a flattening order.
    sync_interval : float
        Wall seconds between REST reads of the open orders (what a dropped update
        stream missed), for brokers that offer ``sync_orders``.
    shadow : bool
        Run the fill model (``config``) beside the broker on the same orders and bars
        (:class:`~alphaswarm.broker.shadow.ShadowSimulator`), for
        :func:`~alphaswarm.research.shadow_report.shadow_report`.
    """

    def __init__(
        self,
        broker: Broker,
        starting_cash: float,
        config: BrokerConfig | None = None,
        id_prefix: str = "",
        flatten_timeout: float = 30.0,
        sync_interval: float = 5.0,
        shadow: bool = False,
    ) -> None:
        super().__init__(starting_cash, config, id_prefix)
        self.broker = broker
        #: The fill model run beside the broker on the same orders (``shadow: true``).
        self.shadow: ShadowSimulator | None = (
            ShadowSimulator(starting_cash, self.config, id_prefix) if shadow else None
        )
        self._open: list[Order] = []
        self.flatten_timeout = float(flatten_timeout)
        #: The confirmations of the last ``cancel_all`` (the kill switch's report).
        self.last_cancel: list[CancelConfirmation] = []
        self._pending: list[BrokerEvent] = []
        self.sync_interval = float(sync_interval)
        self._synced = time.monotonic()

    @property
    def wants_every_bar(self) -> bool:
        """True with a shadow: the engine hands over every bar, open orders or not."""
        return self.shadow is not None

    # -- accounting (cash, positions, marks: CashAccount) -----------------------------
    def broker_order_id(self, order_id: str) -> str:
        """The broker's id of our order ``order_id`` (empty until it acknowledged it)."""
        return self.broker.broker_order_id(order_id)

    def adopt_positions(self, positions: dict[str, Position]) -> None:
        """Start from positions read back from the broker (on restart)."""
        for symbol, pos in positions.items():
            mine = self.position(symbol)
            mine.qty, mine.avg_price = pos.qty, pos.avg_price
            mine.last_price = pos.last_price or pos.avg_price

    def adopt_orders(self, orders: list[Order]) -> None:
        """Track open orders read back from the broker (on restart)."""
        for order in orders:
            self.orders[order.id] = order
            if order.is_open and order not in self._open:
                self._open.append(order)
            self.dirty_orders[order.id] = order

    @property
    def open_orders(self) -> list[Order]:
        """Open orders, and orders whose final update the engine has not been told yet."""
        if not self._pending:
            return self._open
        out = list(self._open)
        for event in self._pending:
            if event.order not in out:
                out.append(event.order)
        return out

    def pending_qty(self, symbol: str, side: Side | None = None) -> float:
        """Signed remaining quantity of open orders on ``symbol``."""
        return sum(
            o.remaining * o.request.side.sign
            for o in self._open
            if o.request.symbol == symbol and (side is None or o.request.side is side)
        )

    # -- broker updates ---------------------------------------------------------------
    def _apply(self, update: OrderUpdate) -> BrokerEvent | None:
        order = update.order
        self.orders.setdefault(order.id, order)
        self.dirty_orders[order.id] = order
        if not order.is_open and order in self._open:
            self._open.remove(order)
        elif order.is_open and order not in self._open and update.kind is UpdateKind.ACCEPTED:
            self._open.append(order)  # an order the broker placed for us (a bracket's exit leg)
        if update.fill is not None:
            fill = update.fill
            self.cash -= fill.side.sign * fill.qty * fill.price + fill.commission
            self.total_commission += fill.commission
            pos = self.position(fill.symbol)
            pos.apply_fill(fill.side, fill.qty, fill.price)
            self.fills.append(fill)
            return BrokerEvent("filled", order, fill)
        kind = _EVENT_OF.get(update.kind)
        return BrokerEvent(kind, order) if kind is not None else None

    def _collect(self) -> None:
        for update in self.broker.poll_updates():
            event = self._apply(update)
            if event is not None:
                self._pending.append(event)

    def begin_bar(self, ts: datetime) -> list[BrokerEvent]:
        """Everything the broker reported since the last bar (the shadow starts the bar)."""
        if self.shadow is not None:
            self.shadow.begin_bar(ts)
        return self._reported()

    def _reported(self) -> list[BrokerEvent]:
        """Everything the broker reported since the last call.

        Every ``sync_interval`` seconds with orders open, the broker's open orders are
        read back (``sync_orders``); a broker refusing orders after an outage is
        reconciled instead, which lets it take orders again once it answers.
        """
        broker = self.broker
        due = self._open and time.monotonic() - self._synced >= self.sync_interval
        if due and hasattr(broker, "sync_orders"):
            self._synced = time.monotonic()
            try:
                if getattr(broker, "available", True):
                    broker.sync_orders()
                else:
                    broker.reconcile()
            except BrokerError as exc:  # the next read tries again; orders stay as they were
                log.warning("reading the broker's orders back failed: %s", exc)
        self._collect()
        out, self._pending = self._pending, []
        return out

    def process_bar(self, bar: Bar, bar_index: int) -> list[BrokerEvent]:
        """Updates that arrived while the bar group is processed (fills are the broker's)."""
        if self.shadow is not None:
            self.shadow.process_bar(bar, bar_index)
        return self._reported()

    def mark(self, symbol: str, price: float) -> None:
        """Set the last price used to value ``symbol`` (the shadow's too)."""
        super().mark(symbol, price)
        if self.shadow is not None:
            self.shadow.mark(symbol, price)

    # -- orders -----------------------------------------------------------------------
    def submit(self, request: OrderRequest, ts: datetime, bar_index: int) -> Order:
        """Send an order to the broker (after the engine's risk checks)."""
        order = self.broker.submit(request, ts)
        order.placed_index = bar_index
        if self.shadow is not None:
            self.shadow.submit(order, request, ts, bar_index)
        self.orders[order.id] = order
        self.dirty_orders[order.id] = order
        for update in self.broker.poll_updates():  # the submission's own answer
            if update.order is order and update.fill is None:
                continue
            event = self._apply(update)
            if event is not None:
                self._pending.append(event)
        if order.is_open and order not in self._open:
            self._open.append(order)
        return order

    def cancel(self, order_id: str, code: str = "user_cancel", reason: str = "") -> Order | None:
        """Ask the broker to cancel; the cancellation is reported when it confirms."""
        if self.shadow is not None:
            self.shadow.cancel(order_id, code, reason or "cancelled on request")
        try:
            self.broker.cancel(order_id)
        except BrokerError as exc:  # the order stays open; the strategy may ask again
            log.warning("cancel of %s failed: %s", order_id, exc)
        return None

    def cancel_all(self, code: str, reason: str, symbol: str | None = None) -> list[Order]:
        """Cancel every open order at the broker; returns those it confirmed.

        Each confirmed order's ``reason`` says how long the broker took; the full
        report is :attr:`last_cancel`.
        """
        self.last_cancel = self.broker.cancel_all(reason)
        if self.shadow is not None:
            self.shadow.cancel_all(code, reason)
        done = []
        for c in self.last_cancel:
            order = self.orders.get(c.order_id)
            if order is None:
                continue
            if c.confirmed and order.status is OrderStatus.CANCELLED:
                order.reason_code = code
                order.reason = f"{reason} (broker confirmed in {c.seconds:.3f}s)"
                done.append(order)
            elif not c.confirmed:
                order.history.append(f"cancel not confirmed: {c.detail}")
                log.warning("cancel of %s not confirmed by the broker: %s", order.id, c.detail)
        self._collect()  # the cancels' own updates: reported here, not again at the next bar
        self._pending = [e for e in self._pending if e.order not in done]
        for order in done:
            if order in self._open:
                self._open.remove(order)
            self.dirty_orders[order.id] = order
        return done

    def fill_now(self, order: Order, bar: Bar, price: float) -> Fill:
        """Wait (bounded) for the broker's fill of a market order sent to flatten."""
        if self.shadow is not None:
            self.shadow.fill_now(order, bar, price)
        deadline = time.monotonic() + self.flatten_timeout
        while time.monotonic() < deadline:
            self._collect()
            for i, event in enumerate(self._pending):
                if event.order is order and event.fill is not None:
                    del self._pending[i]
                    return event.fill
            if not order.is_open:
                break
            time.sleep(0.01)
        raise ModelError(
            f"could not flatten {order.symbol}: the broker reported no fill "
            f"({order.status.value}: {order.reason})"
        )

    def close(self) -> None:
        """Release the broker's connections (the session calls this when it ends)."""
        self.broker.close()

    def why_open(self, order_id: str) -> str:
        """Why an order is still open (or what became of it)."""
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(f"unknown order id {order_id!r}")
        return order.reason or order.status.value

    def to_dict(self) -> dict[str, Any]:
        """What the run records about its broker (its kind and order ids, and the shadow).

        With ``shadow: true``, ``shadow`` is what the fill model did with the same orders.
        """
        out = {"kind": self.broker.kind, "order_ids": getattr(self.broker, "id_map", dict)()}
        if self.shadow is not None:
            out["shadow"] = self.shadow.to_dict(self.orders)
        return out
