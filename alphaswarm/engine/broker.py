"""SimulatedBroker: the fill model shared by backtests and paper sessions.

An order placed while bar *t* is processed can fill from bar *t + 1* on (no
look-ahead). Market orders fill at the next open plus adverse slippage; limit
orders when the bar trades through the limit, at the limit or better (a gap
fills at the open); stops trigger on the bar's range. Fills can be capped by a
share of bar volume, shared by all orders of a symbol on one bar in time priority.
Everything is deterministic: the same bars and the same orders give the same fills.
The rules are stated in ``docs/fill-model.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from alphaswarm.model import (
    Fill,
    ModelError,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)

if TYPE_CHECKING:
    from datetime import date, datetime

    from alphaswarm.model import Bar


class MinCommissionPer(StrEnum):
    """What ``commission_min`` is a minimum of.

    ``order`` (default): the commission of a whole order is at least the minimum,
    however many fills it takes; the first fill pays the minimum (or its computed
    fee when higher) and later fills pay only what their fees add above it.
    ``fill``: every fill pays at least the minimum.
    """

    ORDER = "order"
    FILL = "fill"


class IntrabarRule(StrEnum):
    """What happens first inside one bar when several prices are within its range.

    ``pessimistic`` (default): the outcome worst for the account (a bracket's
    stop-loss before its take-profit). ``optimistic``: the best one.
    ``open_distance``: the price nearest the bar's open is reached first.
    """

    PESSIMISTIC = "pessimistic"
    OPTIMISTIC = "optimistic"
    OPEN_DISTANCE = "open_distance"


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Settings of the fill model, recorded with every backtest and paper run.

    Parameters
    ----------
    slippage_bps : float
        Adverse slippage on market and stop fills, in basis points of the price.
    commission_per_share : float
        Commission per unit filled.
    commission_bps : float
        Commission in basis points of the fill notional.
    commission_min : float
        Minimum commission (applies whenever it is above the computed one), per
        order or per fill as ``min_commission_per`` says.
    min_commission_per : str
        A :class:`MinCommissionPer` value: ``order`` (default) or ``fill``.
    max_participation : float or None
        Largest share of a bar's volume the orders of one symbol may take together
        on that bar (earliest order first); ``None`` = no cap.
    allow_short : bool
        Whether sells beyond the held quantity may open a short position.
    allow_margin : bool
        Whether buys may spend more cash than the account holds.
    intrabar_rule : str
        An :class:`IntrabarRule` value.
    """

    slippage_bps: float = 0.0
    commission_per_share: float = 0.0
    commission_bps: float = 0.0
    commission_min: float = 0.0
    min_commission_per: str = MinCommissionPer.ORDER.value
    max_participation: float | None = None
    allow_short: bool = False
    allow_margin: bool = False
    intrabar_rule: str = IntrabarRule.PESSIMISTIC.value

    def __post_init__(self) -> None:
        for name in ("slippage_bps", "commission_per_share", "commission_bps", "commission_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ModelError(f"{name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ModelError(f"{name}: must be a finite number >= 0, got {value}")
        mp = self.max_participation
        if mp is not None and (
            isinstance(mp, bool) or not isinstance(mp, int | float) or not 0 < mp <= 1
        ):
            raise ModelError(f"max_participation: must be in (0, 1] or null, got {mp!r}")
        for name, choices in (("min_commission_per", MinCommissionPer),
                              ("intrabar_rule", IntrabarRule)):  # fmt: skip
            value = getattr(self, name)
            try:
                choices(value)
            except ValueError:
                allowed = ", ".join(r.value for r in choices)
                raise ModelError(f"{name}: {value!r} is not one of {allowed}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BrokerConfig:
        """Build from a bot's ``broker:`` block, naming unknown keys."""
        data = dict(data or {})
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ModelError(
                f"broker: unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return asdict(self)


@dataclass(slots=True)
class BrokerEvent:
    """Something the broker did to an order while processing a bar."""

    kind: str  # "filled" | "cancelled" | "rejected"
    order: Order
    fill: Fill | None = None


class CashAccount:
    """Cash, positions and order books of a trading account, valued at the last marks.

    What the simulated broker and :class:`~alphaswarm.broker.bridge.EngineBroker`
    (a real broker seen by the engine) share: the starting cash is checked once, here.

    Parameters
    ----------
    starting_cash : float
        Cash at the start of the run (a finite number > 0).
    config : BrokerConfig, optional
        The fill model settings (``allow_short``/``allow_margin`` also size orders).
    id_prefix : str
        Prefix of order and fill ids, so ids are unique across runs in one ledger.

    Raises
    ------
    ModelError
        When ``starting_cash`` is not a finite positive number.
    """

    def __init__(
        self, starting_cash: float, config: BrokerConfig | None = None, id_prefix: str = ""
    ) -> None:
        if isinstance(starting_cash, bool) or not isinstance(starting_cash, int | float):
            raise ModelError(f"starting_cash: expected a number, got {starting_cash!r}")
        if not math.isfinite(starting_cash) or starting_cash <= 0:
            raise ModelError(f"starting_cash: must be a finite number > 0, got {starting_cash}")
        self.config = config or BrokerConfig()
        self.starting_cash = float(starting_cash)
        self.cash = float(starting_cash)
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.dirty_orders: dict[str, Order] = {}
        self.total_commission = 0.0
        self._prefix = id_prefix

    def position(self, symbol: str) -> Position:
        """The position in ``symbol`` (created flat on first use)."""
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def mark(self, symbol: str, price: float) -> None:
        """Set the last price used to value ``symbol``."""
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        pos.last_price = price

    @property
    def equity(self) -> float:
        """Cash plus the market value of every position."""
        return self.cash + sum(p.qty * p.last_price for p in self.positions.values())

    @property
    def gross_exposure(self) -> float:
        """Sum of absolute position values."""
        return sum(abs(p.qty * p.last_price) for p in self.positions.values())

    @property
    def realized_pnl(self) -> float:
        """Realised P&L of all positions, net of commission."""
        return sum(p.realized_pnl for p in self.positions.values()) - self.total_commission


class SimulatedBroker(CashAccount):
    """Deterministic simulated execution with cash and position accounting.

    Parameters
    ----------
    starting_cash : float
        Cash at the start of the run.
    config : BrokerConfig, optional
        The fill model settings.
    id_prefix : str
        Prefix of order and fill ids, so ids are unique across runs in one ledger.
    """

    def __init__(
        self, starting_cash: float, config: BrokerConfig | None = None, id_prefix: str = ""
    ) -> None:
        super().__init__(starting_cash, config, id_prefix)
        self.open_orders: list[Order] = []
        self._order_seq = 0
        self._fill_seq = 0
        self._bar_index = 0
        # bracket entry id -> its exit legs (every pair ever created, in order)
        self._legs: dict[str, list[Order]] = {}
        # bracket entry id -> exposure found already closed by other orders
        self._written_off: dict[str, float] = {}
        # order id -> trading day of the first bar a DAY order could fill on
        self._live_day: dict[str, date] = {}
        self._rule = IntrabarRule(self.config.intrabar_rule)
        self._slip = self.config.slippage_bps / 1e4
        self._min_per_order = self.config.min_commission_per == MinCommissionPer.ORDER
        # shares of the current bar's volume still free for its symbol (None = no cap)
        self._volume_left: float | None = None
        self._has_commission = bool(
            self.config.commission_per_share
            or self.config.commission_bps
            or self.config.commission_min
        )

    def _fee(self, qty: float, price: float) -> float:
        """The scheduled fee of a fill, before any minimum."""
        cfg = self.config
        return cfg.commission_per_share * qty + cfg.commission_bps * 1e-4 * qty * price

    def commission_for(self, qty: float, price: float) -> float:
        """Commission of one fill standing alone (an order's first fill)."""
        if not self._has_commission:
            return 0.0
        return max(self._fee(qty, price), self.config.commission_min)

    def commission_of(self, order: Order, qty: float, price: float) -> float:
        """Commission of the next fill of ``order`` (``qty`` at ``price``).

        With ``min_commission_per="order"`` the order's fills together pay
        ``max(sum of their fees, commission_min)``: the first fill pays the minimum
        (or its fee when higher), later fills only what their fees add above it.
        With ``"fill"`` every fill pays ``max(fee, commission_min)``.
        """
        if not self._has_commission:
            return 0.0
        fee = self._fee(qty, price)
        minimum = self.config.commission_min
        if not self._min_per_order or not minimum or order.filled_qty <= 0:
            return max(fee, minimum)
        # order.commission is max(fees so far, minimum): pay what the new fee adds above it
        return max(max(order.fee_total + fee, minimum) - order.commission, 0.0)

    # -- orders -----------------------------------------------------------------------
    def _next_order_id(self) -> str:
        self._order_seq += 1
        return f"{self._prefix}o{self._order_seq}"

    def pending_qty(self, symbol: str, side: Side | None = None) -> float:
        """Signed remaining quantity of open orders on ``symbol`` (children excluded)."""
        total = 0.0
        for o in self.open_orders:
            if o.request.symbol == symbol and o.parent_id is None:
                if side is None or o.request.side is side:
                    total += o.remaining * o.request.side.sign
        return total

    def submit(self, request: OrderRequest, ts: datetime, bar_index: int) -> Order:
        """Accept (or reject) an order; it may fill from the bar after ``bar_index``."""
        order = Order(self._next_order_id(), request, ts, bar_index, updated_at=ts)
        self.orders[order.id] = order
        if request.side is Side.SELL and not self.config.allow_short:
            held = self.position(request.symbol).qty
            selling = -self.pending_qty(request.symbol, Side.SELL)
            if request.qty > held - selling + 1e-9:
                return self._reject(
                    order,
                    "short_disabled",
                    f"short selling disabled: holding {held:g}, open sells {selling:g}, "
                    f"sell {request.qty:g} would go short",
                )
        if request.type is OrderType.TRAILING_STOP:
            last = self.position(request.symbol).last_price
            order.trail_anchor = last if last > 0 else None
        order.status = OrderStatus.ACCEPTED
        order.reason = f"waiting for the next bar (placed on bar {bar_index})"
        self.open_orders.append(order)
        self.dirty_orders[order.id] = order
        return order

    def _reject(self, order: Order, code: str, reason: str) -> Order:
        order.status = OrderStatus.REJECTED
        order.reason_code, order.reason = code, reason
        self.dirty_orders[order.id] = order
        return order

    def cancel(self, order_id: str, code: str = "user_cancel", reason: str = "") -> Order | None:
        """Cancel an open order; returns it, or None when it is unknown or already done."""
        order = self.orders.get(order_id)
        if order is None or not order.is_open:
            return None
        self._close(order, OrderStatus.CANCELLED, code, reason or "cancelled on request")
        return order

    def cancel_all(self, code: str, reason: str, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of ``symbol`` when given)."""
        done = []
        for order in list(self.open_orders):
            if symbol is None or order.request.symbol == symbol:
                self._close(order, OrderStatus.CANCELLED, code, reason)
                done.append(order)
        return done

    def _close(self, order: Order, status: OrderStatus, code: str, reason: str) -> None:
        self._live_day.pop(order.id, None)
        order.status = status
        order.reason_code, order.reason = code, reason
        if order in self.open_orders:
            self.open_orders.remove(order)
        self.dirty_orders[order.id] = order

    def why_open(self, order_id: str) -> str:
        """Explain why an order is still open (or what became of it)."""
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(f"unknown order id {order_id!r}")
        if order.is_open:
            return order.reason or "working"
        return f"{order.status.value}: {order.reason}" if order.reason else order.status.value

    # -- bars -------------------------------------------------------------------------
    def begin_bar(self, ts: datetime) -> list[BrokerEvent]:
        """Expire DAY orders whose trading day ended before ``ts``.

        A DAY order's day is the day of the first bar it could fill on (the bar after
        placement), so an order placed on the last bar of a day -- every order, with
        daily bars -- works for the whole of the next day instead of expiring unseen.
        """
        events: list[BrokerEvent] = []
        if not self.open_orders:
            return events
        day = ts.date()
        live = self._live_day
        for order in list(self.open_orders):
            if order.request.time_in_force is not TimeInForce.DAY:
                continue
            order_day = live.get(order.id)
            if order_day is None:
                # every open order was placed on an earlier step: this bar is its first
                live[order.id] = day
            elif order_day < day:
                del live[order.id]
                self._close(
                    order,
                    OrderStatus.CANCELLED,
                    "day_expired",
                    f"day order expired at the end of {order_day.isoformat()} "
                    f"with {order.remaining:g} unfilled",
                )
                events.append(BrokerEvent("cancelled", order))
        return events

    def process_bar(self, bar: Bar, bar_index: int) -> list[BrokerEvent]:
        """Fill, trigger or expire the open orders of ``bar.symbol`` against this bar."""
        events: list[BrokerEvent] = []
        if not self.open_orders:
            return events
        self._bar_index = bar_index
        candidates = [
            o
            for o in self.open_orders
            if o.request.symbol == bar.symbol and o.placed_index < bar_index
        ]
        if not candidates:
            return events
        if len(candidates) > 1:
            candidates = self._order_for_bar(candidates, bar)
        mp = self.config.max_participation
        # one volume budget per symbol and bar, taken in time priority
        self._volume_left = None if mp is None else mp * bar.volume
        for order in candidates:
            if not order.is_open:
                continue  # cancelled by an OCO sibling earlier in this bar
            self._work(order, bar, events)
            if order.is_open and order.request.time_in_force is TimeInForce.IOC:
                self._close(
                    order,
                    OrderStatus.CANCELLED,
                    "ioc_remainder",
                    f"immediate-or-cancel: {order.remaining:g} unfilled on the first bar",
                )
                events.append(BrokerEvent("cancelled", order))
        self._volume_left = None
        return events

    def _order_for_bar(self, orders: list[Order], bar: Bar) -> list[Order]:
        """Time priority, with OCO siblings in the order the intrabar rule reaches them.

        ``orders`` is in placement order (a bracket's legs count from their
        creation). A group of OCO siblings keeps the slot of its earliest member;
        inside the group the intrabar rule decides which leg is worked first.
        """
        if self._rule is IntrabarRule.PESSIMISTIC:

            def key(o: Order) -> float:
                return 1.0 if o.request.type is OrderType.LIMIT else 0.0

        elif self._rule is IntrabarRule.OPTIMISTIC:

            def key(o: Order) -> float:
                return 0.0 if o.request.type is OrderType.LIMIT else 1.0

        else:

            def key(o: Order) -> float:
                r = o.request
                price = r.limit_price or r.stop_price
                return 0.0 if price is None else abs(price - bar.open)

        slot: dict[str, int] = {}
        ranked = []
        for n, o in enumerate(orders):
            if o.oco_group is None:
                ranked.append((n, 0.0, o))
            else:
                ranked.append((slot.setdefault(o.oco_group, n), key(o), o))
        ranked.sort(key=lambda t: (t[0], t[1]))
        return [o for _, _, o in ranked]

    def _work(self, order: Order, bar: Bar, events: list[BrokerEvent]) -> None:
        req = order.request
        kind = req.type
        buy = req.side is Side.BUY
        price: float | None = None
        slip = False
        if kind is OrderType.MARKET:
            price, slip = bar.open, True
        elif kind is OrderType.LIMIT:
            price = self._limit_price(req.limit_price, bar, buy, order)
        elif kind is OrderType.STOP:
            price = self._stop_price(req.stop_price, bar, buy, order)
            slip = price is not None
        elif kind is OrderType.STOP_LIMIT:
            price = self._stop_limit_price(order, bar, buy)
        else:
            price = self._trailing_price(order, bar, buy)
            slip = price is not None
        if price is None:
            order.updated_at = bar.ts
            return
        ref = price
        if slip and self._slip:
            price = price * (1 + self._slip) if buy else price * (1 - self._slip)
        self._execute(order, bar, price, ref, events)

    def _limit_price(self, limit: float, bar: Bar, buy: bool, order: Order) -> float | None:
        if buy:
            if bar.open <= limit:
                return bar.open
            if bar.low <= limit:
                return limit
            order.reason = f"limit {limit:.2f} not reached: bar low {bar.low:.2f}"
        else:
            if bar.open >= limit:
                return bar.open
            if bar.high >= limit:
                return limit
            order.reason = f"limit {limit:.2f} not reached: bar high {bar.high:.2f}"
        order.reason_code = "limit_not_reached"
        return None

    def _stop_price(self, stop: float, bar: Bar, buy: bool, order: Order) -> float | None:
        if buy:
            if bar.open >= stop:
                return bar.open
            if bar.high >= stop:
                return stop
            order.reason = f"stop {stop:.2f} not triggered: bar high {bar.high:.2f}"
        else:
            if bar.open <= stop:
                return bar.open
            if bar.low <= stop:
                return stop
            order.reason = f"stop {stop:.2f} not triggered: bar low {bar.low:.2f}"
        order.reason_code = "stop_not_triggered"
        return None

    def _stop_limit_price(self, order: Order, bar: Bar, buy: bool) -> float | None:
        req = order.request
        limit = req.limit_price
        if not order.triggered:
            trigger = self._stop_price(req.stop_price, bar, buy, order)
            if trigger is None:
                return None
            order.triggered = True
            order.history.append(f"triggered at {trigger:.2f} on {bar.ts.isoformat()}")
            if (buy and trigger <= limit) or (not buy and trigger >= limit):
                return trigger
            order.reason_code = "limit_not_reached"
            order.reason = (
                f"stop triggered at {trigger:.2f} beyond limit {limit:.2f}; "
                "working as a limit order from the next bar"
            )
            return None
        return self._limit_price(limit, bar, buy, order)

    def _trailing_price(self, order: Order, bar: Bar, buy: bool) -> float | None:
        trail = order.request.trail_pct
        anchor = order.trail_anchor
        if anchor is None:
            order.trail_anchor = bar.high if not buy else bar.low
            order.reason_code = "stop_not_triggered"
            order.reason = f"trailing anchor set to {order.trail_anchor:.2f}"
            return None
        stop = anchor * (1 + trail) if buy else anchor * (1 - trail)
        price = self._stop_price(stop, bar, buy, order)
        if price is None:
            order.trail_anchor = min(anchor, bar.low) if buy else max(anchor, bar.high)
        return price

    def _execute(
        self,
        order: Order,
        bar: Bar,
        price: float,
        ref: float,
        events: list[BrokerEvent],
        volume_cap: bool = True,
    ) -> None:
        req = order.request
        qty = order.remaining
        cap_note = ""
        cancel_rest: tuple[str, str] | None = None
        mp = self.config.max_participation
        if mp is not None and volume_cap:
            left = self._volume_left
            if left is None:  # outside process_bar: this order alone
                left = mp * bar.volume
            cap = math.floor(left + 1e-9) if float(req.qty).is_integer() else left
            if cap <= 1e-12:
                order.reason_code = "volume_cap"
                order.reason = (
                    f"no volume to take: bar volume {bar.volume:g}"
                    if left >= mp * bar.volume - 1e-9
                    else f"volume cap: the {mp:g} of bar volume {bar.volume:g} "
                    "went to earlier orders"
                )
                return
            if qty > cap:
                qty, cap_note = cap, f"capped at {mp:g} of bar volume {bar.volume:g}"
        pos = self.position(req.symbol)
        if req.side is Side.SELL and not self.config.allow_short:
            if pos.qty <= 1e-12:
                self._write_off(order)
                self._cancel_event(order, "short_disabled", "nothing left to sell", events)
                return
            if qty > pos.qty:
                # the rest could only fill by going short: it must not wait for a new position
                qty = pos.qty
                cap_note = f"reduced to {qty:g}, the held quantity: short selling disabled"
                cancel_rest = ("short_disabled", cap_note)
        if order.parent_id is not None:
            # a bracket's exit leg only closes: it never takes the position past flat
            closable = max(-req.side.sign * pos.qty, 0.0)
            if closable <= 1e-12:
                self._write_off(order)
                self._cancel_event(
                    order, "position_closed", "nothing left to close: the position is flat",
                    events,
                )  # fmt: skip
                return
            if qty > closable + 1e-12:
                qty = closable
                cap_note = f"reduced to {qty:g}, the open position: an exit never reverses it"
                cancel_rest = ("position_closed", cap_note)
        if req.side is Side.BUY and not self.config.allow_margin:
            cost = qty * price + self.commission_of(order, qty, price)
            if cost > self.cash + 1e-9:
                affordable = self._affordable_qty(price, whole=float(req.qty).is_integer())
                if order.parent_id is not None:
                    # an exit leg keeps protecting the position: its rest waits for cash
                    if affordable <= 0:
                        order.reason_code = "insufficient_cash"
                        order.reason = f"insufficient cash {self.cash:.2f} to buy back {qty:g}"
                        return
                    cap_note = f"reduced to {affordable:g} by available cash {self.cash:.2f}"
                    qty = affordable
                elif affordable <= 0:
                    self._cancel_event(
                        order,
                        "insufficient_cash",
                        f"insufficient cash: {qty:g} @ {price:.2f} needs {cost:.2f}, "
                        f"cash {self.cash:.2f}",
                        events,
                    )
                    return
                else:
                    qty = affordable
                    cap_note = f"reduced to {qty:g} by available cash {self.cash:.2f}"
                    cancel_rest = ("insufficient_cash", cap_note)
        if mp is not None and volume_cap and self._volume_left is not None:
            self._volume_left -= qty
        commission = self.commission_of(order, qty, price)
        self._fill_seq += 1
        fill = Fill(
            id=f"{self._prefix}f{self._fill_seq}",
            order_id=order.id,
            symbol=req.symbol,
            side=req.side,
            qty=qty,
            price=price,
            commission=commission,
            ts=bar.ts,
            slippage=abs(price - ref) * qty,
        )
        if self._has_commission:
            order.fee_total += self._fee(qty, price)
        self._apply(order, fill, pos)
        if cap_note:
            order.history.append(cap_note)
            if order.is_open:
                order.reason_code, order.reason = "partial", cap_note
        events.append(BrokerEvent("filled", order, fill))
        if order.is_open and cancel_rest is not None:
            if order.parent_id is not None:
                self._write_off(order)
            self._cancel_event(order, *cancel_rest, events)
        if req.is_bracket and order.parent_id is None:
            self._sync_children(order, bar)
        if order.oco_group is not None:
            self._settle_oco(order, events)

    def _affordable_qty(self, price: float, whole: bool) -> float:
        cfg = self.config
        per_unit = price * (1 + cfg.commission_bps * 1e-4) + cfg.commission_per_share
        qty = max(self.cash - cfg.commission_min, 0.0) / per_unit
        return math.floor(qty) if whole else qty * (1 - 1e-12)

    def _cancel_event(
        self, order: Order, code: str, reason: str, events: list[BrokerEvent]
    ) -> None:
        self._close(order, OrderStatus.CANCELLED, code, reason)
        events.append(BrokerEvent("cancelled", order))

    def _apply(self, order: Order, fill: Fill, pos: Position) -> None:
        self.cash -= fill.side.sign * fill.qty * fill.price + fill.commission
        self.total_commission += fill.commission
        pos.apply_fill(fill.side, fill.qty, fill.price)
        new_filled = order.filled_qty + fill.qty
        order.avg_fill_price = (
            order.avg_fill_price * order.filled_qty + fill.price * fill.qty
        ) / new_filled
        order.filled_qty = new_filled
        order.commission += fill.commission
        order.updated_at = fill.ts
        if order.remaining <= 1e-9:
            order.status = OrderStatus.FILLED
            order.reason_code, order.reason = "", ""
            self.open_orders.remove(order)
            self._live_day.pop(order.id, None)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
            order.reason_code = "partial"
            order.reason = f"partially filled {order.filled_qty:g} of {order.qty:g}"
        self.fills.append(fill)
        self.dirty_orders[order.id] = order

    def fill_now(self, order: Order, bar: Bar, price: float) -> Fill:
        """Fill the whole remainder of ``order`` at ``price`` (used to flatten on a halt)."""
        events: list[BrokerEvent] = []
        ref = price
        if self._slip:
            price = price * (1 + self._slip) if order.side is Side.BUY else price * (1 - self._slip)
        self._execute(order, bar, price, ref, events, volume_cap=False)
        fills = [e.fill for e in events if e.fill is not None]
        if not fills:
            raise ModelError(f"could not flatten {order.symbol}: {order.reason}")
        return fills[0]

    # -- brackets ---------------------------------------------------------------------
    def bracket_exposure(self, parent: Order) -> float:
        """Open quantity a bracket entry created that its exit legs have not closed.

        It is the entry's filled quantity less what its legs filled, and nothing
        once a leg found the position already flat (it was closed by other orders).
        Every open leg of the bracket has exactly this quantity remaining.
        """
        closed = sum(leg.filled_qty for leg in self._legs.get(parent.id, ()))
        exposure = parent.filled_qty - closed - self._written_off.get(parent.id, 0.0)
        return exposure if exposure > 1e-9 else 0.0

    def _write_off(self, leg: Order) -> None:
        """The position under ``leg``'s bracket is gone: its exposure becomes 0."""
        if leg.parent_id is None:
            return
        parent = self.orders[leg.parent_id]
        exposure = self.bracket_exposure(parent)
        if exposure:
            self._written_off[parent.id] = self._written_off.get(parent.id, 0.0) + exposure

    def _resize_legs(self, parent: Order) -> bool:
        """Give every open leg of ``parent`` the exposure as its remaining quantity.

        Closed legs are never touched. Returns whether any leg is open.
        """
        exposure = self.bracket_exposure(parent)
        any_open = False
        for leg in self._legs.get(parent.id, ()):
            if not leg.is_open:
                continue
            any_open = True
            qty = leg.filled_qty + exposure
            if qty != leg.request.qty and qty > 0:
                leg.request.qty = qty
                self.dirty_orders[leg.id] = leg
        return any_open

    def _sync_children(self, parent: Order, bar: Bar) -> None:
        """Keep a bracket entry's exit legs covering exactly its open quantity.

        Open legs are resized; when none is open (none yet, or the previous pair
        closed) and the entry has added exposure, a new take-profit / stop-loss
        pair is created for it.
        """
        if self._resize_legs(parent):
            return
        exposure = self.bracket_exposure(parent)
        if not exposure:
            return
        req = parent.request
        exit_side = req.side.opposite
        legs = []
        if req.take_profit is not None:
            legs.append(("tp", OrderType.LIMIT, {"limit_price": req.take_profit}))
        if req.stop_loss is not None:
            legs.append(("sl", OrderType.STOP, {"stop_price": req.stop_loss}))
        pair = self._legs.setdefault(parent.id, [])
        # at most one pair is open at a time, so the entry id names its group
        group = parent.id if len(legs) > 1 else None
        for leg, kind, prices in legs:
            child_req = OrderRequest(
                req.symbol,
                exit_side,
                exposure,
                kind,
                time_in_force=TimeInForce.GTC,
                tag=f"{req.tag}:{leg}" if req.tag else leg,
                **prices,
            )
            # children become eligible from the bar after the entry fill
            child = Order(
                self._next_order_id(),
                child_req,
                bar.ts,
                self._bar_index,
                status=OrderStatus.ACCEPTED,
                parent_id=parent.id,
                oco_group=group,
                updated_at=bar.ts,
            )
            self.orders[child.id] = child
            self.open_orders.append(child)
            self.dirty_orders[child.id] = child
            pair.append(child)

    def _settle_oco(self, order: Order, events: list[BrokerEvent]) -> None:
        """After a leg's fill: cancel its siblings when it is done, else resize them."""
        if order.is_open:  # partially filled: the siblings cover what is still open
            if order.parent_id is not None:
                self._resize_legs(self.orders[order.parent_id])
            return
        for sibling in list(self.open_orders):
            if sibling.oco_group != order.oco_group or sibling is order:
                continue
            self._cancel_event(
                sibling,
                "oco_cancelled",
                f"one-cancels-other: {order.id} {order.status.value}",
                events,
            )
