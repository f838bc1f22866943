"""Domain model: bars, order requests, orders, fills and positions.

Small slotted dataclasses with validating constructors. Every error names the
field that was wrong and what is allowed, so a notebook user sees at once what
to fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def field_values(record: Any) -> dict[str, Any]:
    """The fields of a dataclass instance by name, in declaration order (not copied).

    JSON-ready when every field holds a plain value (str, number, bool, None).
    """
    return {f.name: getattr(record, f.name) for f in fields(record)}


class Side(StrEnum):
    """Direction of an order or fill.

    Attributes
    ----------
    sign : int
        +1 for buys, -1 for sells.
    opposite : Side
        The other side.
    """

    BUY = "buy"
    SELL = "sell"

    sign: int
    opposite: Side


# Plain attributes of the two members, not properties: the broker reads them for every
# order and fill, and a property call (or an enum member looked up on its class) costs
# several times an attribute read.
Side.BUY.sign, Side.SELL.sign = 1, -1
Side.BUY.opposite, Side.SELL.opposite = Side.SELL, Side.BUY


class OrderType(StrEnum):
    """Order types the simulated broker understands."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    """How long an order stays working.

    ``day`` expires when the trading day of the bar ts changes, ``gtc`` works until
    filled or cancelled, ``ioc`` cancels whatever the first eligible bar does not fill.
    """

    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"


class OrderStatus(StrEnum):
    """Order lifecycle: new → accepted → partially_filled → filled | cancelled | rejected."""

    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill."""
        return self in _OPEN_STATUSES


_OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})


class ModelError(ValueError):
    """Raised when a domain object is constructed with nonsense values."""


def _coerce_enum(enum_cls: type[StrEnum], value: Any, field_name: str) -> Any:
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(str(value).lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise ModelError(f"{field_name}: {value!r} is not one of {allowed}") from None


def _check_price(value: Any, field_name: str, *, optional: bool = False) -> float | None:
    if value is None:
        if optional:
            return None
        raise ModelError(f"{field_name}: a price is required")
    return _check_qty(value, field_name)  # the same rule: a finite number above zero


def _check_qty(value: Any, field_name: str = "qty") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{field_name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ModelError(f"{field_name}: must be a finite number, got {value}")
    if value <= 0:
        raise ModelError(f"{field_name}: must be > 0, got {value}")
    return value


def _check_symbol(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"symbol: expected a non-empty string, got {value!r}")
    return value


def to_utc(ts: Any) -> datetime:
    """Return ``ts`` as a timezone-aware UTC datetime.

    Parameters
    ----------
    ts
        A datetime (naive values are taken as UTC), a pandas Timestamp, an ISO string
        or epoch seconds.
    """
    if isinstance(ts, datetime):
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return datetime.fromtimestamp(float(ts), tz=UTC)
    if isinstance(ts, str):
        try:
            return to_utc(datetime.fromisoformat(ts.replace("Z", "+00:00")))
        except ValueError:
            raise ModelError(f"ts: {ts!r} is not an ISO-8601 timestamp") from None
    to_pydatetime = getattr(ts, "to_pydatetime", None)
    if to_pydatetime is not None:
        return to_utc(to_pydatetime())
    raise ModelError(f"ts: cannot interpret {ts!r} as a timestamp")


@dataclass(slots=True)
class Bar:
    """One OHLCV bar of one symbol.

    Parameters
    ----------
    symbol : str
        Instrument symbol.
    ts : datetime
        Bar open time (UTC).
    open, high, low, close : float
        Prices, all > 0, with ``low <= open, close <= high``.
    volume : float
        Traded volume, >= 0.
    """

    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        if not isinstance(self.ts, datetime):
            self.ts = to_utc(self.ts)
        for name in ("open", "high", "low", "close"):
            _check_price(getattr(self, name), name)
        if isinstance(self.volume, bool) or not isinstance(self.volume, int | float):
            raise ModelError(f"volume: expected a number, got {type(self.volume).__name__}")
        if not math.isfinite(self.volume) or self.volume < 0:
            raise ModelError(f"volume: must be a finite number >= 0, got {self.volume}")
        if self.low > min(self.open, self.close) or self.high < max(self.open, self.close):
            raise ModelError(
                f"high/low: bar range [{self.low}, {self.high}] does not contain "
                f"open {self.open} and close {self.close}"
            )

    @classmethod
    def trusted(
        cls,
        symbol: str,
        ts: datetime,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> Bar:
        """Build a bar without per-field checks.

        For feeds that have already validated their data as whole arrays; it keeps
        the per-bar cost of a million-bar backtest down to one allocation.
        """
        bar = object.__new__(cls)
        bar.symbol, bar.ts = symbol, ts
        bar.open, bar.high, bar.low, bar.close, bar.volume = open, high, low, close, volume
        return bar

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return {
            "symbol": self.symbol,
            "ts": self.ts.isoformat(),
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }


@dataclass(slots=True)
class OrderRequest:
    """What a strategy asks the broker to do.

    Parameters
    ----------
    symbol : str
        Instrument.
    side : Side
        ``buy`` or ``sell``.
    qty : float
        Quantity, > 0.
    type : OrderType
        ``market``, ``limit``, ``stop``, ``stop_limit`` or ``trailing_stop``.
    limit_price : float, optional
        Required for ``limit`` and ``stop_limit``.
    stop_price : float, optional
        Required for ``stop`` and ``stop_limit``.
    trail_pct : float, optional
        Trailing distance as a fraction (0.02 = 2 %), for ``trailing_stop``.
    time_in_force : TimeInForce
        ``day`` (default), ``gtc`` or ``ioc``.
    take_profit : float, optional
        Bracket child: limit price of the take-profit leg.
    stop_loss : float, optional
        Bracket child: stop price of the stop-loss leg.
    tag : str
        Free text carried to the order, fills and frames.
    """

    symbol: str
    side: Side
    qty: float
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    trail_pct: float | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    take_profit: float | None = None
    stop_loss: float | None = None
    tag: str = ""

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        self.side = _coerce_enum(Side, self.side, "side")
        self.type = _coerce_enum(OrderType, self.type, "type")
        self.time_in_force = _coerce_enum(TimeInForce, self.time_in_force, "time_in_force")
        self.qty = _check_qty(self.qty)
        needs_limit = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        self.limit_price = _check_price(self.limit_price, "limit_price", optional=not needs_limit)
        self.stop_price = _check_price(self.stop_price, "stop_price", optional=not needs_stop)
        if self.limit_price is not None and not needs_limit:
            raise ModelError(f"limit_price: not allowed on a {self.type.value} order")
        if self.stop_price is not None and not needs_stop:
            raise ModelError(f"stop_price: not allowed on a {self.type.value} order")
        if self.type is OrderType.TRAILING_STOP:
            if self.trail_pct is None:
                raise ModelError("trail_pct: required for a trailing_stop order")
            trail = _check_price(self.trail_pct, "trail_pct")
            if trail is None or trail >= 1:
                raise ModelError(f"trail_pct: must be in (0, 1), got {self.trail_pct}")
            self.trail_pct = trail
        elif self.trail_pct is not None:
            raise ModelError(f"trail_pct: only allowed on a trailing_stop order, not {self.type}")
        self.take_profit = _check_price(self.take_profit, "take_profit", optional=True)
        self.stop_loss = _check_price(self.stop_loss, "stop_loss", optional=True)
        if self.take_profit is not None and self.stop_loss is not None:
            low, high = sorted((self.take_profit, self.stop_loss))
            expected_tp_high = self.side is Side.BUY
            if (self.take_profit == high) != expected_tp_high:
                raise ModelError(
                    f"take_profit/stop_loss: for a {self.side.value} bracket the take-profit "
                    "must be "
                    f"{'above' if expected_tp_high else 'below'} the stop-loss "
                    f"(got take_profit={self.take_profit}, stop_loss={self.stop_loss})"
                )
        if not isinstance(self.tag, str):
            raise ModelError(f"tag: expected a string, got {type(self.tag).__name__}")

    @classmethod
    def market(cls, symbol: str, side: Side, qty: float, tag: str = "") -> OrderRequest:
        """A market order built by the engine from checked values (no per-field checks).

        ``qty`` must be a finite number > 0 and ``symbol`` a known symbol; strategies
        use the validating constructor through the context's ``buy``/``sell``.
        """
        if not qty > 0 or qty == float("inf"):
            raise ModelError(f"qty: must be a finite number > 0, got {qty}")
        req = object.__new__(cls)
        req.symbol, req.side, req.qty, req.type = symbol, side, float(qty), OrderType.MARKET
        req.limit_price = req.stop_price = req.trail_pct = None
        req.take_profit = req.stop_loss = None
        req.time_in_force, req.tag = TimeInForce.DAY, tag
        return req

    @property
    def is_bracket(self) -> bool:
        """True when the request carries take-profit or stop-loss children."""
        return self.take_profit is not None or self.stop_loss is not None


@dataclass(slots=True)
class Order:
    """An order the broker holds, with its status lifecycle.

    ``reason_code`` and ``reason`` explain a rejection or cancellation;
    ``placed_index`` is the engine bar index at submission, so the broker can
    refuse to fill it before the next bar. ``commission`` is what the order's fills
    paid; ``fee_total`` the sum of their scheduled fees before any minimum.
    """

    id: str
    request: OrderRequest
    created_at: datetime
    placed_index: int
    status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    avg_fill_price: float = 0.0
    commission: float = 0.0
    fee_total: float = 0.0
    reason_code: str = ""
    reason: str = ""
    parent_id: str | None = None
    oco_group: str | None = None
    triggered: bool = False
    trail_anchor: float | None = None
    updated_at: datetime | None = None
    history: list[str] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        """Instrument of the order."""
        return self.request.symbol

    @property
    def side(self) -> Side:
        """Order side."""
        return self.request.side

    @property
    def qty(self) -> float:
        """Ordered quantity."""
        return self.request.qty

    @property
    def remaining(self) -> float:
        """Quantity still to fill."""
        return self.request.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        """True while the order may still fill."""
        return self.status.is_open

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        r = self.request
        return {
            "order_id": self.id,
            "symbol": r.symbol,
            "side": r.side.value,
            "type": r.type.value,
            "qty": r.qty,
            "limit_price": r.limit_price,
            "stop_price": r.stop_price,
            "trail_pct": r.trail_pct,
            "time_in_force": r.time_in_force.value,
            "tag": r.tag,
            "status": self.status.value,
            "filled_qty": self.filled_qty,
            "avg_fill_price": self.avg_fill_price,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "parent_id": self.parent_id,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True, frozen=True)
class Fill:
    """One execution of (part of) an order."""

    id: str
    order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    commission: float
    ts: datetime
    slippage: float = 0.0
    liquidity: str = "taker"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return {
            "fill_id": self.id,
            "order_id": self.order_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "qty": self.qty,
            "price": self.price,
            "commission": self.commission,
            "slippage": self.slippage,
            "filled_at": self.ts.isoformat(),
        }


@dataclass(slots=True)
class Position:
    """Net position in one symbol with average price and P&L.

    ``qty`` is signed (negative = short). ``realized_pnl`` is gross of commission.
    """

    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    last_price: float = 0.0

    @property
    def unrealized_pnl(self) -> float:
        """Mark-to-market P&L of the open quantity at ``last_price``."""
        if self.qty == 0 or self.last_price <= 0:
            return 0.0
        return (self.last_price - self.avg_price) * self.qty

    @property
    def market_value(self) -> float:
        """Signed value of the position at ``last_price``."""
        return self.qty * self.last_price

    def apply_fill(self, side: Side, qty: float, price: float) -> float:
        """Update the position with one fill and return the realised P&L of it."""
        signed = qty * side.sign
        realized = 0.0
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            new_qty = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + price * qty) / abs(new_qty)
            self.qty = new_qty
        else:
            closing = min(abs(signed), abs(self.qty))
            direction = 1 if self.qty > 0 else -1
            realized = (price - self.avg_price) * closing * direction
            new_qty = self.qty + signed
            if abs(new_qty) < 1e-12:
                self.qty, self.avg_price = 0.0, 0.0
            elif (new_qty > 0) != (self.qty > 0):
                self.qty, self.avg_price = new_qty, price
            else:
                self.qty = new_qty
        self.realized_pnl += realized
        if self.last_price <= 0:
            self.last_price = price
        return realized

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return {
            "symbol": self.symbol,
            "qty": self.qty,
            "avg_price": self.avg_price,
            "last_price": self.last_price,
            "market_value": self.market_value,
            "unrealized_pnl": self.unrealized_pnl,
            "realized_pnl": self.realized_pnl,
        }
