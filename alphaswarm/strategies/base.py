"""The Strategy base class and the context a strategy trades through."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from alphaswarm.model import ModelError

if TYPE_CHECKING:
    import numpy as np

    from alphaswarm.model import Bar, Fill, Order, Position

SIGNALS = ("buy", "sell", "flat")

#: Codes of the signals in a vectorized strategy's ``signals`` array; 0 means none.
SIGNAL_CODES = {signal: code for code, signal in enumerate(SIGNALS, start=1)}


class StrategyContext(Protocol):
    """What a strategy sees and does on each bar (implemented by the engine)."""

    params: dict[str, Any]

    @property
    def cash(self) -> float:
        """Cash in the account."""

    @property
    def equity(self) -> float:
        """Cash plus positions at the latest prices."""

    @property
    def now(self) -> Any:
        """Bar time of the current step."""

    def position(self, symbol: str | None = None) -> Position:
        """Position in ``symbol`` (the current bar's symbol by default)."""

    def history(self, n: int, field: str = "close", symbol: str | None = None) -> np.ndarray:
        """The last ``n`` values of ``field`` (open/high/low/close/volume), oldest first."""

    def buy(self, qty: float, symbol: str | None = None, **order: Any) -> Order | None:
        """Place a buy order (market unless ``type=`` says otherwise)."""

    def sell(self, qty: float, symbol: str | None = None, **order: Any) -> Order | None:
        """Place a sell order."""

    def target_position(self, qty: float, symbol: str | None = None) -> Order | None:
        """Trade toward holding ``qty`` (signed), net of open orders."""

    def flat(self, symbol: str | None = None) -> Order | None:
        """Close the position in ``symbol``."""

    def cancel(self, order_id: str) -> None:
        """Cancel an open order."""


class Strategy:
    """Base class of every strategy.

    Subclasses set ``name`` and ``defaults`` (every accepted parameter with its
    default) and implement :meth:`on_bar`. ``on_bar`` may trade through the
    context or return a signal: ``"buy"`` (hold the long size), ``"sell"`` (go
    short when shorting is allowed, else flat) or ``"flat"``.

    Common parameters: ``qty`` (fixed order size) or ``allocation`` (fraction of
    equity per position, used when ``qty`` is not set).

    A strategy whose signals depend only on each symbol's closes may also define
    ``signals(self, close: np.ndarray) -> np.ndarray``: the int8 code
    (:data:`SIGNAL_CODES`, 0 = none) ``on_bar`` would return on every bar of one
    symbol, computed with the same floating-point operations so the codes are
    identical. ``backtest(engine="auto")`` then runs it on the vectorized path
    (:mod:`alphaswarm.engine.vectorized`); ``on_bar`` stays the reference and the
    only path of paper sessions.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    common: ClassVar[dict[str, Any]] = {"qty": None, "allocation": 0.2}
    #: Whether the engine must keep bar history for ``ctx.history`` (off saves time).
    uses_history: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        allowed = {**self.common, **self.defaults}
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ModelError(
                f"params: unknown parameter(s) {', '.join(unknown)} for strategy "
                f"{self.name or type(self).__name__}; allowed: {', '.join(sorted(allowed))}"
            )
        merged = {**allowed, **params}
        for key, value in merged.items():
            default = allowed[key]
            if isinstance(default, int | float) and not isinstance(default, bool):
                if value is None and key in self.common:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ModelError(f"params.{key}: expected a number, got {value!r}")
                if not math.isfinite(value):
                    raise ModelError(f"params.{key}: must be finite, got {value}")
        qty, alloc = merged["qty"], merged["allocation"]
        if qty is not None and (
            isinstance(qty, bool) or not isinstance(qty, int | float) or not qty > 0
        ):
            raise ModelError(f"params.qty: must be a number > 0, got {qty!r}")
        if alloc is not None and not 0 < alloc <= 10:
            raise ModelError(f"params.allocation: must be in (0, 10], got {alloc!r}")
        self.params = merged
        self.validate()

    def validate(self) -> None:
        """Check parameter relationships; raise :class:`ModelError` naming the field."""

    def on_start(self, ctx: StrategyContext) -> None:
        """Called once before the first bar."""

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> str | None:
        """Called for every bar; trade through ``ctx`` or return a signal."""
        raise NotImplementedError

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        """Called after each fill of one of this strategy's orders."""

    def on_stop(self, ctx: StrategyContext) -> None:
        """Called once when the run ends."""

    def size(self, bar: Bar, ctx: StrategyContext) -> float:
        """Quantity of one position: ``qty``, or ``allocation`` x equity / price, whole units."""
        qty = self.params.get("qty")
        if qty is not None:
            return float(qty)
        return float(math.floor(self.params["allocation"] * ctx.equity / bar.close))

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for the ledger and frames."""
        return {"strategy": self.name or type(self).__name__, "params": dict(self.params)}
