"""RiskLimits: pre-trade checks on every order and post-bar checks on the account.

``check_order`` runs before the broker sees an order and returns a
:class:`RiskDecision` (a denial naming the limit, the value and the threshold)
or ``None``. ``check_state`` runs after each bar and returns a breach that halts
the run. A limit set to ``None`` is off.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import param

from alphaswarm.model import ModelError, OrderType, field_values

if TYPE_CHECKING:
    from datetime import datetime

    from alphaswarm.model import OrderRequest, Position


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """A denial (pre-trade) or breach (post-bar) of one limit."""

    limit: str
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return field_values(self)


@dataclass(slots=True)
class AccountState:
    """What the risk checks look at: the account after the latest bar.

    The engine keeps one of these up to date; tests can build one by hand.
    """

    equity: float
    cash: float
    positions: dict[str, Position] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)
    peak_equity: float = 0.0
    day_start_equity: float = 0.0
    day: Any = None
    now: datetime | None = None
    order_times: deque = field(default_factory=deque)
    last_equity: float = 0.0
    max_drawdown: float = 0.0
    _day_starts: Any = None
    _day_ends: Any = None

    def __post_init__(self) -> None:
        self.peak_equity = max(self.peak_equity, self.equity)
        if not self.day_start_equity:
            self.day_start_equity = self.equity

    def update(self, equity: float, cash: float, now: datetime) -> None:
        """Record the equity after a bar: peak, trading day and daily start."""
        self.equity = equity
        self.cash = cash
        self.now = now
        peak = self.peak_equity
        if equity > peak:
            self.peak_equity = equity
        elif peak > 0:
            dd = (peak - equity) / peak
            if dd > self.max_drawdown:
                self.max_drawdown = dd
        ends = self._day_ends
        if ends is None or now >= ends or now < self._day_starts:
            self.roll_day(now)
        self.last_equity = equity

    def roll_day(self, now: datetime) -> None:
        """Move to the trading day of ``now`` (outside the current one).

        A new day starts from the equity of the last update before it. Called by
        :meth:`update` (and by a loop that inlines it) before ``last_equity`` is set.
        """
        day = now.date()
        if day != self.day:
            if self.day is not None:
                self.day_start_equity = self.last_equity
            self.day = day
        self._day_starts = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self._day_ends = self._day_starts + timedelta(days=1)

    @property
    def drawdown(self) -> float:
        """Fractional drop from the equity peak."""
        return (self.peak_equity - self.equity) / self.peak_equity if self.peak_equity > 0 else 0.0

    @property
    def daily_loss(self) -> float:
        """Loss since the start of the trading day (positive = loss)."""
        return self.day_start_equity - self.equity

    def qty(self, symbol: str) -> float:
        """Held quantity of ``symbol``."""
        pos = self.positions.get(symbol)
        return pos.qty if pos is not None else 0.0

    def gross_exposure(self) -> float:
        """Sum of absolute position values at the latest prices."""
        return sum(abs(p.qty) * self.prices.get(s, p.last_price) for s, p in self.positions.items())

    def orders_in_last_minute(self) -> int:
        """Orders placed within the 60 s of session time up to ``now``."""
        if self.now is None:
            return len(self.order_times)
        horizon = self.now - timedelta(seconds=60)
        times = self.order_times
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)


def _positive(doc: str, *, integer: bool = False, bounds: tuple | None = None) -> param.Parameter:
    cls = param.Integer if integer else param.Number
    return cls(
        default=None,
        allow_None=True,
        bounds=bounds or (0, None),
        inclusive_bounds=(False, True),
        doc=doc,
    )


class RiskLimits(param.Parameterized):
    """The bot's ``risk:`` block, enforced before every order and after every bar.

    Every limit is optional (``None`` = off). Pre-trade limits deny one order
    with a reason; account limits (drawdown, daily loss) halt the run.
    """

    max_order_qty = _positive("Largest quantity of one order.")
    max_order_notional = _positive("Largest value (qty x price) of one order.")
    max_position_qty = _positive("Largest absolute position quantity per symbol.")
    max_position_notional = _positive("Largest absolute position value per symbol.")
    max_position_pct = _positive("Largest position value per symbol as a fraction of equity.")
    max_gross_exposure = _positive(
        "Largest sum of absolute position values, as a multiple of equity (1.0 = no leverage)."
    )
    max_concentration_pct = _positive(
        "Largest share of gross exposure in one symbol (checked when the universe has "
        "more than one symbol).",
        bounds=(0, 1),
    )
    max_orders_per_minute = _positive("Most orders in any 60 s of session time.", integer=True)
    max_drawdown_pct = _positive(
        "Largest drop from the equity peak, as a fraction; breaking it halts the run.",
        bounds=(0, 1),
    )
    max_daily_loss = _positive(
        "Largest loss since the start of the trading day, in cash; breaking it halts the run."
    )
    max_daily_loss_pct = _positive(
        "Largest loss since the start of the trading day as a fraction of that day's "
        "starting equity; breaking it halts the run.",
        bounds=(0, 1),
    )
    price_collar_bps = _positive(
        "Refuse a limit or stop price further than this many basis points from the last close."
    )
    kill_switch_attached = param.Boolean(
        default=False,
        doc="Whether the process kill switch stops this bot; the paper gate requires it.",
    )
    on_breach = param.Selector(
        default="flatten",
        objects=["flatten", "hold"],
        doc="On a halt: close every position at the last price (flatten) or keep them (hold).",
    )
    universe = param.List(
        default=[], item_type=str, doc="Symbols the bot may trade; others are refused."
    )

    LIMIT_KEYS: ClassVar[tuple[str, ...]] = (
        "max_order_qty",
        "max_order_notional",
        "max_position_qty",
        "max_position_notional",
        "max_position_pct",
        "max_gross_exposure",
        "max_concentration_pct",
        "max_orders_per_minute",
        "max_drawdown_pct",
        "max_daily_loss",
        "max_daily_loss_pct",
        "price_collar_bps",
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._compile()

    def __setattr__(self, name: str, value: Any) -> None:
        """Set an attribute; a limit or the universe set anew recompiles the thresholds.

        Every way of setting a parameter (``risk.max_order_qty = 5``,
        ``risk.param.update(...)``) comes through here. A watcher would do the same at
        about thirty objects per instance (one per session), which every full garbage
        collection walks.
        """
        object.__setattr__(self, name, value)
        if name in _COMPILED_FROM and "_t" in self.__dict__:
            self._compile()

    def _compile(self, *_: Any) -> None:
        """Cache the set limits as plain values: param lookups are too slow per bar."""
        self._t = {k: getattr(self, k) for k in self.LIMIT_KEYS}
        self._universe = list(self.universe)
        self._universe_set = frozenset(self._universe)
        self._state_checks = [
            (k, getattr(self, k))
            for k in ("max_drawdown_pct", "max_daily_loss", "max_daily_loss_pct")
            if getattr(self, k) is not None
        ]
        # which groups of pre-trade checks can deny at all (the rest are skipped)
        t = self._t
        self._order_limits = any(t[k] is not None for k in ("max_order_qty", "max_order_notional"))
        self._position_limits = any(
            t[k] is not None
            for k in (
                "max_position_qty",
                "max_position_notional",
                "max_position_pct",
                "max_gross_exposure",
                "max_concentration_pct",
            )
        )

    @classmethod
    def from_spec(cls, risk: dict[str, Any] | None, universe: list[str]) -> RiskLimits:
        """Build from a bot's ``risk:`` block, naming unknown keys and bad values."""
        risk = dict(risk or {})
        allowed = (*cls.LIMIT_KEYS, "kill_switch_attached", "on_breach")
        unknown = sorted(set(risk) - set(allowed))
        if unknown:
            raise ModelError(
                f"risk: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )
        for key in cls.LIMIT_KEYS:
            value = risk.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ModelError(f"risk.{key}: expected a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ModelError(f"risk.{key}: must be a finite number > 0, got {value}")
            if key == "max_orders_per_minute":
                if float(value) != int(value):
                    raise ModelError(f"risk.{key}: expected a whole number, got {value}")
                risk[key] = int(value)
        try:
            return cls(universe=list(universe), **risk)
        except ValueError as exc:
            raise ModelError(f"risk: {exc}") from None

    def to_spec(self) -> dict[str, Any]:
        """The limits that are set, as a ``risk:`` block."""
        spec = {k: getattr(self, k) for k in self.LIMIT_KEYS if getattr(self, k) is not None}
        spec["kill_switch_attached"] = self.kill_switch_attached
        spec["on_breach"] = self.on_breach
        return spec

    # -- pre-trade ------------------------------------------------------------------
    def check_order(
        self, request: OrderRequest, state: AccountState, mode: str = "active"
    ) -> RiskDecision | None:
        """Return a denial if ``request`` must not reach the broker, else ``None``.

        Parameters
        ----------
        request : OrderRequest
            The order to check.
        state : AccountState
            The account after the latest bar.
        mode : str
            ``active``; ``reduce_only`` (only orders that shrink exposure pass);
            ``frozen`` or ``halted`` (nothing passes).
        """
        symbol = request.symbol
        held = state.qty(symbol)
        signed = request.qty * request.side.sign
        pending = state.pending.get(symbol, 0.0)
        new_pos = held + pending + signed
        current = held + pending
        # reducing = moving toward zero without crossing it (a flip opens a new position)
        reduces = (
            abs(new_pos) < abs(current) - 1e-12 and current * signed < 0 and new_pos * current >= 0
        )
        if mode in ("frozen", "halted"):
            return RiskDecision(mode, 1.0, 0.0, f"trading is {mode}: no new orders")
        if mode == "reduce_only" and not reduces:
            return RiskDecision(
                "reduce_only",
                abs(new_pos),
                abs(held + pending),
                f"reduce-only: {request.side.value} {request.qty:g} {symbol} would not "
                f"shrink the position {held + pending:g}",
            )
        t = self._t
        if self._universe_set and symbol not in self._universe_set:
            return RiskDecision(
                "universe", 1.0, 0.0, f"{symbol} is not in the universe {self._universe}"
            )
        last = state.prices.get(symbol)
        price = request.limit_price or request.stop_price or last
        if price is None:
            return RiskDecision("no_price", 0.0, 0.0, f"no price seen yet for {symbol}")
        if self._order_limits:
            checks = (
                ("max_order_qty", request.qty, "order qty"),
                ("max_order_notional", request.qty * price, "order notional"),
            )
            for limit, value, what in checks:
                denial = self._above(limit, value, what)
                if denial is not None:
                    return denial
        if not reduces and self._position_limits:
            gross_other = state.gross_exposure() - abs(held) * state.prices.get(symbol, price)
            new_value = abs(new_pos) * price
            equity = state.equity if state.equity > 0 else float("nan")
            checks = [
                ("max_position_qty", abs(new_pos), "position qty"),
                ("max_position_notional", new_value, "position notional"),
                ("max_position_pct", new_value / equity, "position / equity"),
                ("max_gross_exposure", (gross_other + new_value) / equity, "gross / equity"),
            ]
            if len(self._universe) > 1 and gross_other + new_value > 0:
                share = new_value / (gross_other + new_value)
                checks.append(("max_concentration_pct", share, "share of gross exposure"))
            for limit, value, what in checks:
                denial = self._above(limit, value, what)
                if denial is not None:
                    return denial
        if t["max_orders_per_minute"] is not None:
            count = state.orders_in_last_minute()
            if count >= t["max_orders_per_minute"]:
                return RiskDecision(
                    "max_orders_per_minute",
                    count + 1,
                    t["max_orders_per_minute"],
                    f"orders per minute {count + 1} > {t['max_orders_per_minute']}",
                )
        if t["price_collar_bps"] is not None and last and request.type is not OrderType.MARKET:
            ref = request.limit_price or request.stop_price
            if ref is not None:
                bps = abs(ref - last) / last * 1e4
                if bps > t["price_collar_bps"]:
                    return RiskDecision(
                        "price_collar_bps",
                        bps,
                        t["price_collar_bps"],
                        f"price {ref:.2f} is {bps:.0f} bps from the last close {last:.2f} "
                        f"(collar {t['price_collar_bps']:g} bps)",
                    )
        return None

    def checks(
        self, request: OrderRequest, state: AccountState, mode: str = "active"
    ) -> list[dict[str, Any]]:
        """Every pre-trade check :meth:`check_order` makes, with its value and threshold.

        The same checks in the same order, stopping after the first failure (as
        ``check_order`` does); limits that are off are left out. Engines with a
        listener record this list on ``order.placed`` and risk-denied
        ``order.rejected`` frames, so an order's explanation can cite it.

        Parameters
        ----------
        request : OrderRequest
            The order checked.
        state : AccountState
            The account after the latest bar.
        mode : str
            The trading mode the order was checked under.

        Returns
        -------
        list of dict
            ``{limit, what, value, threshold, passed}`` per check.
        """
        out: list[dict[str, Any]] = []

        def add(limit: str, what: str, value: Any, threshold: Any, passed: bool) -> bool:
            out.append(
                {"limit": limit, "what": what, "value": value, "threshold": threshold,
                 "passed": bool(passed)}
            )  # fmt: skip
            return bool(passed)

        symbol = request.symbol
        held = state.qty(symbol)
        pending = state.pending.get(symbol, 0.0)
        current = held + pending
        signed = request.qty * request.side.sign
        new_pos = current + signed
        reduces = (
            abs(new_pos) < abs(current) - 1e-12 and current * signed < 0 and new_pos * current >= 0
        )
        ok_mode = mode == "active" or (mode == "reduce_only" and reduces)
        if not add("trading_mode", "trading mode", mode, "active", ok_mode):
            return out
        if self._universe_set and not add(
            "universe", "symbol in universe", symbol, list(self._universe),
            symbol in self._universe_set,
        ):  # fmt: skip
            return out
        last = state.prices.get(symbol)
        price = request.limit_price or request.stop_price or last
        if not add("no_price", "price known", price, None, price is not None):
            return out
        t = self._t
        limits = [
            ("max_order_qty", "order qty", request.qty),
            ("max_order_notional", "order notional", request.qty * price),
        ]
        if not reduces:
            gross_other = state.gross_exposure() - abs(held) * state.prices.get(symbol, price)
            new_value = abs(new_pos) * price
            equity = state.equity if state.equity > 0 else float("nan")
            limits += [
                ("max_position_qty", "position qty", abs(new_pos)),
                ("max_position_notional", "position notional", new_value),
                ("max_position_pct", "position / equity", new_value / equity),
                ("max_gross_exposure", "gross / equity", (gross_other + new_value) / equity),
            ]
            if len(self._universe) > 1 and gross_other + new_value > 0:
                share = new_value / (gross_other + new_value)
                limits.append(("max_concentration_pct", "share of gross exposure", share))
        for limit, what, value in limits:
            threshold = t[limit]
            if threshold is None:
                continue
            if not add(limit, what, value, threshold, value <= threshold):  # NaN fails
                return out
        if t["max_orders_per_minute"] is not None:
            count = state.orders_in_last_minute() + 1
            threshold = t["max_orders_per_minute"]
            if not add("max_orders_per_minute", "orders per minute", count, threshold,
                       count <= threshold):  # fmt: skip
                return out
        if t["price_collar_bps"] is not None and last and request.type is not OrderType.MARKET:
            ref = request.limit_price or request.stop_price
            if ref is not None:
                bps = abs(ref - last) / last * 1e4
                add("price_collar_bps", "bps from the last close", bps, t["price_collar_bps"],
                    bps <= t["price_collar_bps"])  # fmt: skip
        return out

    def _above(self, limit: str, value: float, what: str) -> RiskDecision | None:
        threshold = self._t[limit]
        if threshold is None or not value > threshold:
            if threshold is not None and math.isnan(value):
                return RiskDecision(limit, value, threshold, f"{what} undefined (equity <= 0)")
            return None
        return RiskDecision(limit, value, threshold, f"{what} {value:,.4g} > {threshold:,.4g}")

    # -- post-bar -------------------------------------------------------------------
    def check_state(self, state: AccountState) -> RiskDecision | None:
        """Return the first account-level limit ``state`` breaks, else ``None``."""
        for limit, threshold in self._state_checks:
            if limit == "max_drawdown_pct":
                peak = state.peak_equity
                value, what = ((peak - state.equity) / peak if peak > 0 else 0.0), "drawdown"
            elif limit == "max_daily_loss":
                value, what = state.day_start_equity - state.equity, "daily loss"
            else:
                start = state.day_start_equity
                value = (start - state.equity) / start if start > 0 else 0.0
                what = "daily loss / day start equity"
            if value > threshold:
                return RiskDecision(
                    limit, value, threshold, f"{what} {value:,.4g} > {threshold:,.4g}"
                )
        return None

    def utilisation(self, state: AccountState) -> list[dict[str, Any]]:
        """Each set limit with its current value and the fraction of it used.

        Order-level limits report the largest position or rate seen now; the
        risk panel of the dashboard renders this list.
        """
        gross = state.gross_exposure()
        equity = state.equity if state.equity > 0 else float("nan")
        biggest_qty = max((abs(p.qty) for p in state.positions.values()), default=0.0)
        biggest_value = max(
            (abs(p.qty) * state.prices.get(s, p.last_price) for s, p in state.positions.items()),
            default=0.0,
        )
        current = {
            "max_position_qty": biggest_qty,
            "max_position_notional": biggest_value,
            "max_position_pct": biggest_value / equity,
            "max_gross_exposure": gross / equity,
            "max_concentration_pct": biggest_value / gross if gross > 0 else 0.0,
            "max_orders_per_minute": float(state.orders_in_last_minute()),
            "max_drawdown_pct": state.drawdown,
            "max_daily_loss": max(state.daily_loss, 0.0),
            "max_daily_loss_pct": max(state.daily_loss, 0.0) / state.day_start_equity
            if state.day_start_equity > 0
            else 0.0,
        }
        rows = []
        for limit in self.LIMIT_KEYS:
            threshold = getattr(self, limit)
            if threshold is None:
                continue
            value = current.get(limit)
            rows.append(
                {
                    "limit": limit,
                    "value": value,
                    "threshold": threshold,
                    "used": (value / threshold) if value is not None else None,
                }
            )
        return rows


#: The parameters :meth:`RiskLimits._compile` reads.
_COMPILED_FROM = frozenset((*RiskLimits.LIMIT_KEYS, "universe"))
