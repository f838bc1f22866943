"""The one bar loop shared by backtests and paper sessions.

Per bar group (all symbols at one timestamp): expire day orders → for each bar,
fill what the broker holds and mark to market → the strategy → pre-trade risk →
broker → equity → post-bar risk. Each step is reported as an event
``(stage, message, extras)`` to the listener, if there is one; with no listener
no event is built. A recorder, when given, takes the two per-bar events (bar
received, equity) as plain values instead. The engine reads no wall clock: time is
the bars' time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from alphaswarm.engine.broker import BrokerEvent
from alphaswarm.model import (
    ModelError,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
)
from alphaswarm.risk.limits import AccountState, RiskDecision, RiskLimits
from alphaswarm.strategies.base import SIGNALS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from alphaswarm.engine.broker import SimulatedBroker
    from alphaswarm.model import Bar, Fill, Position
    from alphaswarm.strategies.base import Strategy

    Listener = Callable[[str, str, dict[str, Any]], None]

_FIELDS = {"open": 0, "high": 1, "low": 2, "close": 3, "volume": 4}


class FrameRecorder(Protocol):
    """Takes the per-bar events of an :class:`Engine` as plain values."""

    def bar_received(self, bar: Bar) -> None:
        """One bar, before the broker and the strategy see it."""

    def equity_update(self, equity: float, cash: float) -> None:
        """The account after the bar group (before post-bar risk checks)."""


class History:
    """Per-symbol ring of the last ``window`` bars as a numpy array (no per-bar objects)."""

    __slots__ = ("_data", "_pos", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self._data: dict[str, np.ndarray] = {}
        self._pos: dict[str, int] = {}

    def push(self, bar: Bar) -> None:
        """Append one bar."""
        arr = self._data.get(bar.symbol)
        if arr is None:
            arr = self._data[bar.symbol] = np.empty((2 * self.window, 5))
            self._pos[bar.symbol] = 0
        pos = self._pos[bar.symbol]
        if pos == len(arr):
            arr[: self.window] = arr[pos - self.window : pos]
            pos = self.window
        arr[pos] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        self._pos[bar.symbol] = pos + 1

    def get(self, symbol: str, n: int, field: str = "close") -> np.ndarray:
        """The last ``n`` values of ``field`` for ``symbol``, oldest first."""
        if field not in _FIELDS:
            raise ModelError(f"field: {field!r} is not one of {', '.join(_FIELDS)}")
        if not 0 < n <= self.window:
            raise ModelError(f"n: must be in 1..{self.window} (the history window), got {n}")
        arr = self._data.get(symbol)
        if arr is None:
            return np.empty(0)
        pos = self._pos[symbol]
        return arr[max(pos - n, 0) : pos, _FIELDS[field]]


class EngineContext:
    """The :class:`~alphaswarm.strategies.base.StrategyContext` the engine hands to strategies."""

    __slots__ = ("_bar", "_engine", "params")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._bar: Bar | None = None
        self.params = engine.strategy.params

    @property
    def bar(self) -> Bar | None:
        """The bar being processed."""
        return self._bar

    @property
    def now(self) -> datetime | None:
        """Bar time of the current step."""
        return self._bar.ts if self._bar is not None else None

    @property
    def cash(self) -> float:
        """Cash in the account."""
        return self._engine.broker.cash

    @property
    def equity(self) -> float:
        """Cash plus positions at the latest prices."""
        return self._engine.broker.equity

    @property
    def positions(self) -> dict[str, Position]:
        """All positions by symbol."""
        return self._engine.broker.positions

    def _symbol(self, symbol: str | None) -> str:
        if symbol is not None:
            return symbol
        if self._bar is None:
            raise ModelError("symbol: required outside on_bar")
        return self._bar.symbol

    def position(self, symbol: str | None = None) -> Position:
        """Position in ``symbol`` (the current bar's symbol by default)."""
        return self._engine.broker.position(self._symbol(symbol))

    def history(self, n: int, field: str = "close", symbol: str | None = None) -> np.ndarray:
        """The last ``n`` values of ``field`` for ``symbol``, oldest first."""
        return self._engine.history.get(self._symbol(symbol), n, field)

    def order(self, request: OrderRequest) -> Order | None:
        """Send a fully specified order through risk to the broker."""
        return self._engine.place(request)

    def buy(self, qty: float, symbol: str | None = None, **order: Any) -> Order | None:
        """Place a buy order; keyword arguments are :class:`OrderRequest` fields."""
        return self._engine.place(OrderRequest(self._symbol(symbol), Side.BUY, qty, **order))

    def sell(self, qty: float, symbol: str | None = None, **order: Any) -> Order | None:
        """Place a sell order; keyword arguments are :class:`OrderRequest` fields."""
        return self._engine.place(OrderRequest(self._symbol(symbol), Side.SELL, qty, **order))

    def target_position(self, qty: float, symbol: str | None = None) -> Order | None:
        """Trade at market toward holding ``qty`` (signed), net of open orders."""
        sym = self._symbol(symbol)
        broker = self._engine.broker
        if qty < 0 and not broker.config.allow_short:
            qty = 0.0
        current = broker.position(sym).qty + broker.pending_qty(sym)
        delta = qty - current
        if abs(delta) < 1e-9:
            return None
        side = Side.BUY if delta > 0 else Side.SELL
        return self._engine.place(OrderRequest.market(sym, side, abs(delta)))

    def flat(self, symbol: str | None = None) -> Order | None:
        """Close the position in ``symbol``."""
        return self.target_position(0.0, symbol)

    def cancel(self, order_id: str) -> None:
        """Cancel an open order."""
        self._engine.cancel(order_id, "strategy_cancel", "cancelled by the strategy")

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders, of ``symbol`` when given."""
        return [o for o in self._engine.broker.open_orders if symbol is None or o.symbol == symbol]


class Engine:
    """Drive a strategy, risk limits and a simulated broker bar by bar.

    Parameters
    ----------
    strategy : Strategy
        The strategy instance (fresh per run).
    broker : SimulatedBroker
        The fill model and account.
    risk : RiskLimits, optional
        Limits checked before each order and after each bar.
    listener : callable, optional
        ``listener(stage, message, extras)`` for every engine event.
    recorder : FrameRecorder, optional
        Takes the ``bar.received`` and ``equity.update`` events from the listener:
        ``recorder.bar_received(bar)`` for each bar, ``recorder.equity_update(equity,
        cash)`` after each bar (a paper session records them, see
        :mod:`alphaswarm.frame_records`).
    order_gate : callable, optional
        Returns the trading mode imposed from outside (the kill switch):
        ``None``/``"active"``, ``"reduce_only"`` or ``"frozen"``. If it raises,
        the engine fails closed and treats trading as frozen.
    history_window : int
        Bars of history kept per symbol for ``ctx.history``.
    record_equity : bool
        Keep the equity curve in memory (backtests need it).
    """

    def __init__(
        self,
        strategy: Strategy,
        broker: SimulatedBroker,
        risk: RiskLimits | None = None,
        *,
        listener: Listener | None = None,
        recorder: FrameRecorder | None = None,
        order_gate: Callable[[], str | None] | None = None,
        history_window: int = 500,
        record_equity: bool = True,
    ) -> None:
        self.strategy = strategy
        self.broker = broker
        # a broker that runs a shadow fill model needs every bar, open orders or not
        self._every_bar = bool(getattr(broker, "wants_every_bar", False))
        self.risk = risk or RiskLimits()
        self.listener = listener
        self.recorder = recorder
        self.order_gate = order_gate
        self.history = History(history_window)
        self._use_history = getattr(strategy, "uses_history", True)
        self.record_equity = record_equity
        # Share the broker's positions dict so pre-trade and utilisation checks see holdings.
        self.state = AccountState(
            equity=broker.equity, cash=broker.cash, positions=broker.positions
        )
        self.ctx = EngineContext(self)
        self.mode = "active"
        self.halted: RiskDecision | None = None
        self.halt_action: dict[str, Any] | None = None  # what the halt cancelled and flattened
        self.bar_index = -1
        self.bars_seen = 0
        self.orders_submitted = 0
        self.signals = 0
        self.requests_denied = 0
        # number of the signal being acted on (links order frames to their signal)
        self._signal_no: int | None = None
        self.bars_in_market = 0
        self.last_ts: datetime | None = None
        self.last_bars: dict[str, Bar] = {}
        self.equity_ts: list[datetime] = []
        self.equity_values: list[float] = []
        self.cash_values: list[float] = []
        self.risk_events: list[dict[str, Any]] = []
        # bound once: the bar loop calls them for every bar
        self._append_ts = self.equity_ts.append
        self._append_equity = self.equity_values.append
        self._append_cash = self.cash_values.append
        self._started = False
        self._stopped = False

    # -- events -----------------------------------------------------------------------
    def _emit(self, stage: str, message: str, **extras: Any) -> None:
        if self.listener is not None:
            self.listener(stage, message, extras)

    def _risk_event(self, decision: RiskDecision, action: str, order_id: str | None) -> None:
        self.risk_events.append(
            {
                "at": self.last_ts,
                "order_id": order_id,
                "limit": decision.limit,
                "value": decision.value,
                "threshold": decision.threshold,
                "action": action,
                "message": decision.message,
            }
        )

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Call the strategy's ``on_start`` (done by the first ``step`` otherwise)."""
        if not self._started:
            self._started = True
            self.strategy.on_start(self.ctx)

    def finish(self) -> None:
        """Call the strategy's ``on_stop`` once."""
        if self._started and not self._stopped:
            self._stopped = True
            self.strategy.on_stop(self.ctx)

    # -- the bar loop -----------------------------------------------------------------
    def step(self, bars: list[Bar]) -> None:
        """Process all bars that share one timestamp."""
        if not self._started:
            self.start()
        self.bar_index = idx = self.bar_index + 1
        broker = self.broker
        listener = self.listener
        recorder = self.recorder
        open_orders = broker.open_orders
        ts = bars[0].ts
        self.last_ts = ts
        if open_orders or self._every_bar:
            for event in broker.begin_bar(ts):
                self._on_broker_event(event)
        state = self.state
        prices = state.prices
        positions = broker.positions
        last_bars = self.last_bars
        push = self.history.push if self._use_history else None
        for bar in bars:
            self.bars_seen += 1
            if recorder is not None:
                recorder.bar_received(bar)
            elif listener is not None:
                listener(
                    "bar.received",
                    f"{bar.symbol} {bar.ts:%Y-%m-%d %H:%M} close {bar.close:.2f}",
                    {"bar": bar.to_dict()},
                )
            if open_orders or self._every_bar:
                for event in broker.process_bar(bar, idx):
                    self._on_broker_event(event)
            symbol = bar.symbol
            close = bar.close
            pos = positions.get(symbol)
            if pos is not None:
                pos.last_price = close
            else:  # first bar of the symbol: the broker must know its price too
                broker.mark(symbol, close)
            prices[symbol] = close
            last_bars[symbol] = bar
            if push is not None:
                push(bar)
        cash = broker.cash
        equity = cash
        invested = False
        for pos in positions.values():
            if pos.qty:
                equity += pos.qty * pos.last_price
                invested = True
        state.update(equity, cash, ts)
        if self.halted is None:
            ctx = self.ctx
            on_bar = self.strategy.on_bar
            for bar in bars:
                ctx._bar = bar
                signal = on_bar(bar, ctx)
                if signal is not None:
                    self._on_signal(signal, bar)
            cash = broker.cash
        if invested:
            self.bars_in_market += 1
        if self.record_equity:
            self._append_ts(ts)
            self._append_equity(equity)
            self._append_cash(cash)
        if recorder is not None:
            recorder.equity_update(equity, cash)
        elif listener is not None:
            self._emit("equity.update", f"equity {equity:,.2f}", equity=equity, cash=cash)
        if self.halted is None and self.risk._state_checks:
            breach = self.risk.check_state(state)
            if breach is not None:
                self.halt(breach)

    def run(self, groups: Iterable[list[Bar]]) -> None:
        """Step through ``groups`` until they run out or a risk limit halts trading.

        The same as calling :meth:`step` for each group and stopping once
        :attr:`halted` is set -- same fills, equity and events. Groups that need
        nothing but prices (and bar history) marked and the strategy called (no
        listener, no open order) take an inlined loop with everything it reads bound
        once, instead of a call to :meth:`step` each.

        Parameters
        ----------
        groups : iterable of list of Bar
            Bars sharing a timestamp, one list per timestamp, in time order.
        """
        if not self._started:
            self.start()
        step = self.step
        broker = self.broker
        open_orders = broker.open_orders
        positions = broker.positions
        pos_get = positions.get
        pos_values = positions.values
        state = self.state
        roll_day = state.roll_day
        prices = state.prices
        last_bars = self.last_bars
        risk = self.risk
        check_state = risk.check_state
        ctx = self.ctx
        on_bar = self.strategy.on_bar
        on_signal = self._on_signal
        record = self.record_equity
        append_ts, append_equity, append_cash = (
            self._append_ts,
            self._append_equity,
            self._append_cash,
        )
        push = self.history.push if self._use_history else None
        # set before the run and kept through it: every group then takes step()
        always_step = self._every_bar or self.listener is not None or self.recorder is not None
        state_checks = risk._state_checks  # the limits set, as (limit, threshold) pairs
        for bars in groups:
            if open_orders or always_step or self.halted is not None:
                step(bars)
                if self.halted is not None:
                    return
                continue
            self.bar_index += 1
            bar = bars[0]
            ts = bar.ts
            self.last_ts = ts
            n_bars = len(bars)
            self.bars_seen += n_bars
            for bar in bars:
                symbol = bar.symbol
                close = bar.close
                pos = pos_get(symbol)
                if pos is not None:
                    pos.last_price = close
                else:  # first bar of the symbol: the broker must know its price too
                    broker.mark(symbol, close)
                prices[symbol] = close
                last_bars[symbol] = bar
                if push is not None:
                    push(bar)
            equity = cash = broker.cash
            invested = False
            for pos in pos_values():
                if pos.qty:
                    equity += pos.qty * pos.last_price
                    invested = True
            # state.update(equity, cash, ts), inlined
            state.equity = equity
            state.cash = cash
            state.now = ts
            peak = state.peak_equity
            if equity > peak:
                state.peak_equity = equity
            elif peak > 0:
                dd = (peak - equity) / peak
                if dd > state.max_drawdown:
                    state.max_drawdown = dd
            ends = state._day_ends
            if ends is None or ts >= ends or ts < state._day_starts:
                roll_day(ts)
            state.last_equity = equity
            if n_bars == 1:  # ``bar`` is the group's one bar
                ctx._bar = bar
                signal = on_bar(bar, ctx)
                if signal is not None:
                    on_signal(signal, bar)
            else:
                for bar in bars:
                    ctx._bar = bar
                    signal = on_bar(bar, ctx)
                    if signal is not None:
                        on_signal(signal, bar)
            if invested:
                self.bars_in_market += 1
            if record:
                append_ts(ts)
                append_equity(equity)
                append_cash(broker.cash)
            if state_checks:
                breach = check_state(state)
                if breach is not None:
                    self.halt(breach)
                    return

    def _on_signal(self, signal: str, bar: Bar) -> None:
        if signal not in SIGNALS:
            raise ModelError(
                f"strategy {self.strategy.name!r} returned {signal!r}; "
                f"a signal is one of {', '.join(SIGNALS)} or None"
            )
        self.signals += 1
        size = self.strategy.size(bar, self.ctx)
        target = size if signal == "buy" else (-size if signal == "sell" else 0.0)
        if self.listener is not None:
            self._emit(
                "signal.emitted",
                f"{signal} {bar.symbol} @ {bar.close:.2f}",
                signal=signal,
                symbol=bar.symbol,
                target_qty=target,
                price=bar.close,
                signal_no=self.signals,
            )
        self._signal_no = self.signals
        try:
            self.ctx.target_position(target, bar.symbol)
        finally:
            self._signal_no = None

    def _on_broker_event(self, event: BrokerEvent) -> None:
        order = event.order
        if event.kind == "filled":
            fill = event.fill
            self.strategy.on_fill(fill, self.ctx)
            if self.listener is not None:
                self._emit(
                    "order.filled",
                    f"{fill.side.value.upper()} {fill.qty:g} {fill.symbol} @ {fill.price:.2f}",
                    fill=fill.to_dict(),
                    order=order.to_dict(),
                    cash=self.broker.cash,
                )
        elif self.listener is not None:
            self._emit(
                f"order.{event.kind}",
                f"{order.side.value.upper()} {order.remaining:g} {order.symbol} "
                f"{event.kind}: {order.reason}",
                order=order.to_dict(),
                reason=order.reason,
                reason_code=order.reason_code,
            )

    # -- orders -----------------------------------------------------------------------
    def trading_mode(self) -> str:
        """The mode orders are checked under: engine mode combined with the order gate."""
        if self.halted is not None:
            return "halted"
        mode = self.mode
        if self.order_gate is not None:
            try:
                imposed = self.order_gate()
            except Exception:  # noqa: BLE001 - fail closed on any store error
                imposed = "frozen"
            if imposed in ("frozen", "halted"):
                return "frozen"
            if imposed == "reduce_only" and mode == "active":
                mode = "reduce_only"
        return mode

    def place(self, request: OrderRequest) -> Order | None:
        """Check ``request`` against risk and hand it to the broker.

        Returns the broker's order (accepted or rejected by the broker), or ``None``
        when risk denied it.
        """
        state = self.state
        state.pending[request.symbol] = self.broker.pending_qty(request.symbol)
        mode = self.trading_mode()
        denial = self.risk.check_order(request, state, mode)
        if denial is not None:
            self.requests_denied += 1
            # denied requests never reach the broker; this id names them in the ledger
            request_id = f"{self.broker._prefix}d{self.requests_denied}"
            self._risk_event(denial, "denied", request_id)
            if self.listener is None:
                return None
            self._emit(
                "order.rejected",
                f"{request.side.value.upper()} {request.qty:g} {request.symbol} denied: "
                f"{denial.message}",
                request={
                    "symbol": request.symbol,
                    "side": request.side.value,
                    "qty": request.qty,
                    "type": request.type.value,
                    "limit_price": request.limit_price,
                    "stop_price": request.stop_price,
                },
                reason=denial.message,
                reason_code="risk_denied",
                limit=denial.limit,
                value=denial.value,
                threshold=denial.threshold,
                request_id=request_id,
                signal_no=self._signal_no,
                risk_checks=self.risk.checks(request, state, mode),
            )
            return None
        # what the checks saw, taken before the order counts against the rate limit
        checks = self.risk.checks(request, state, mode) if self.listener is not None else None
        ts = self.last_ts
        order = self.broker.submit(request, ts, self.bar_index)
        self.orders_submitted += 1
        state.order_times.append(ts)
        if self.listener is None:
            return order
        if order.status is OrderStatus.REJECTED:
            self._emit(
                "order.rejected",
                f"{request.side.value.upper()} {request.qty:g} {request.symbol} rejected: "
                f"{order.reason}",
                order=order.to_dict(),
                reason=order.reason,
                reason_code=order.reason_code,
                signal_no=self._signal_no,
            )
        else:
            self._emit(
                "order.placed",
                f"{request.side.value.upper()} {request.qty:g} {request.symbol} "
                f"{request.type.value}",
                order=order.to_dict(),
                signal_no=self._signal_no,
                risk_checks=checks,
            )
        return order

    def cancel(self, order_id: str, code: str, reason: str) -> Order | None:
        """Cancel one open order and report it."""
        order = self.broker.cancel(order_id, code, reason)
        if order is not None:
            self._on_broker_event(_cancel_event(order))
        return order

    def cancel_all(self, code: str, reason: str) -> list[Order]:
        """Cancel every open order and report each."""
        orders = self.broker.cancel_all(code, reason)
        for order in orders:
            self._on_broker_event(_cancel_event(order))
        return orders

    def flatten(self, reason: str) -> list[Fill]:
        """Close every position at its last close (plus slippage), now."""
        fills = []
        for symbol, pos in list(self.broker.positions.items()):
            bar = self.last_bars.get(symbol)
            if abs(pos.qty) < 1e-12 or bar is None:
                continue
            side = Side.SELL if pos.qty > 0 else Side.BUY
            request = OrderRequest(symbol, side, abs(pos.qty), tag="flatten")
            order = self.broker.submit(request, bar.ts, self.bar_index)
            self.orders_submitted += 1
            if order.status is OrderStatus.REJECTED:
                continue
            fill = self.broker.fill_now(order, bar, bar.close)
            fills.append(fill)
            self._emit(
                "order.filled",
                f"{fill.side.value.upper()} {fill.qty:g} {fill.symbol} @ {fill.price:.2f} "
                f"({reason})",
                fill=fill.to_dict(),
                order=order.to_dict(),
                cash=self.broker.cash,
                reason=reason,
            )
        if fills:
            equity = self.broker.equity
            self.state.update(equity, self.broker.cash, self.last_ts)
            if self.record_equity and self.equity_ts and self.equity_ts[-1] == self.last_ts:
                self.equity_values[-1] = equity
                self.cash_values[-1] = self.broker.cash
        return fills

    def halt(self, decision: RiskDecision) -> dict[str, Any]:
        """Stop trading on a risk breach: cancel open orders and flatten or hold.

        Causal order: ``risk.halted`` is emitted first, naming what the halt does
        (``action``: the open orders it cancels, the positions it flattens, and
        ``mode`` -- ``flatten`` or ``cancel`` with ``on_breach: hold``), then the
        ``order.cancelled`` and ``order.filled`` events that do it. The returned
        action (also :attr:`halt_action`) lists what was actually done.
        """
        self.halted = decision
        flatten = self.risk.on_breach == "flatten"
        plan = {
            "orders_cancelled": [o.id for o in self.broker.open_orders],
            "positions_flattened": [
                s
                for s, p in self.broker.positions.items()
                if flatten and abs(p.qty) >= 1e-12 and s in self.last_bars
            ],
            "on_breach": self.risk.on_breach,
            "mode": "flatten" if flatten else "cancel",
        }
        self._risk_event(decision, "halted", None)
        self._emit(
            "risk.halted",
            f"risk limit {decision.limit} broken: {decision.message}",
            limit=decision.limit,
            value=decision.value,
            threshold=decision.threshold,
            reason=decision.message,
            mode=plan["mode"],
            action=plan,
        )
        cancelled = self.cancel_all("risk_halt", f"risk halt: {decision.message}")
        flattened: list[Fill] = []
        if flatten:
            flattened = self.flatten(f"risk halt: {decision.limit}")
        self.halt_action = {
            **plan,
            "orders_cancelled": [o.id for o in cancelled],
            "positions_flattened": [f.symbol for f in flattened],
        }
        return self.halt_action

    def summary(self) -> dict[str, Any]:
        """Counters and account figures of the run so far."""
        broker = self.broker
        equity = broker.equity
        return {
            "bars_seen": self.bars_seen,
            "orders_submitted": self.orders_submitted,
            "num_fills": len(broker.fills),
            "final_equity": equity,
            "cash": broker.cash,
            "realized_pnl": broker.realized_pnl,
            "total_pnl": equity - broker.starting_cash,
            "max_drawdown": self.max_drawdown(),
        }

    def max_drawdown(self) -> float:
        """Largest peak-to-trough drop of the equity curve seen so far, as a fraction."""
        return self.state.max_drawdown


def _cancel_event(order: Order) -> BrokerEvent:
    return BrokerEvent("cancelled", order)
