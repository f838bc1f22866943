"""Built-in strategies: SMA crossover, z-score mean reversion, buy and hold.

Indicators are kept incrementally (O(1) per bar), so the same code is fast in a
million-bar backtest and correct bar by bar in a paper session.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from alphaswarm.model import ModelError
from alphaswarm.strategies.base import Strategy
from alphaswarm.strategies.vectorized import (
    RESYNC_EVERY,
    buy_and_hold_signals,
    mean_reversion_signals,
    sma_cross_signals,
)

if TYPE_CHECKING:
    import numpy as np

    from alphaswarm.model import Bar
    from alphaswarm.strategies.base import StrategyContext

_RESYNC_EVERY = RESYNC_EVERY  # the vectorized replicas re-sum on the same bars


class _Window:
    """Ring buffer of the last ``size`` closes with running sums."""

    __slots__ = ("buf", "n", "size", "sum", "sumsq")

    def __init__(self, size: int) -> None:
        self.buf = [0.0] * size
        self.size, self.n, self.sum, self.sumsq = size, 0, 0.0, 0.0

    def push(self, x: float) -> float:
        """Add ``x``; return the value that left the window (0.0 while filling)."""
        p = self.n % self.size
        old = self.buf[p] if self.n >= self.size else 0.0
        self.buf[p] = x
        self.n += 1
        self.sum += x - old
        self.sumsq += x * x - old * old
        if self.n % _RESYNC_EVERY == 0:
            self.sum = math.fsum(self.buf)
            self.sumsq = math.fsum(v * v for v in self.buf)
        return old

    def full(self) -> bool:
        return self.n >= self.size


class SmaCross(Strategy):
    """Long when the fast simple moving average has crossed above the slow one.

    Emits ``buy`` when the fast SMA crosses above the slow SMA and ``sell`` when it
    crosses below (``sell`` means flat unless shorting is allowed).

    A cross is a change of sign of ``fast SMA - slow SMA`` between two readings: a
    reading exists from the ``slow``-th bar on (both averages defined), a reading
    of exactly 0 is skipped (the sign remembered is that of the last non-zero
    reading), and the first non-zero reading only sets that memory -- it is not a
    cross, whatever its sign. So the first bar where both averages exist never
    trades, as in a plain loop comparing two consecutive readings.
    """

    name: ClassVar[str] = "sma_cross"
    uses_history: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {"fast": 10, "slow": 30}

    def validate(self) -> None:
        """Check the parameters and reset per-symbol state."""
        fast, slow = self.params["fast"], self.params["slow"]
        for key, value in (("fast", fast), ("slow", slow)):
            if float(value) != int(value) or value < 1:
                raise ModelError(f"params.{key}: must be a whole number >= 1, got {value}")
        if fast >= slow:
            raise ModelError(f"params.fast: must be < slow ({slow}), got {fast}")
        self._fast, self._slow = int(fast), int(slow)
        self._state: dict[str, list[Any]] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> str | None:
        """Update the indicator with this bar and return a signal on a change."""
        st = self._state.get(bar.symbol)
        if st is None:
            # ring of slow closes, count, fast sum, slow sum, previous diff sign, windows
            st = self._state[bar.symbol] = [
                [0.0] * self._slow, 0, 0.0, 0.0, 0, self._slow, self._fast
            ]  # fmt: skip
        buf, n, sf, ss, prev, slow, fast = st
        c = bar.close
        p = n % slow
        if n >= slow:
            ss -= buf[p]
        if n >= fast:
            sf -= buf[(n - fast) % slow]
        buf[p] = c
        ss += c
        sf += c
        n += 1
        if n % _RESYNC_EVERY == 0:
            ss = math.fsum(buf)
            sf = math.fsum(buf[(n - k) % slow] for k in range(1, fast + 1))
        st[1], st[2], st[3] = n, sf, ss
        if n < slow:
            return None
        diff = sf * slow - ss * fast
        sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
        if sign == 0 or sign == prev:
            return None
        st[4] = sign
        if prev == 0:
            return None  # the first reading: no earlier one to cross from
        return "buy" if sign > 0 else "sell"

    def signals(self, close: np.ndarray) -> np.ndarray:
        """The codes :meth:`on_bar` returns over one symbol's closes (same arithmetic)."""
        return sma_cross_signals(close, self._fast, self._slow)


class MeanReversion(Strategy):
    """Buy when the close is ``entry_z`` standard deviations below its rolling mean.

    Exits (``flat``) when the z-score recovers above ``-exit_z``. With
    ``short: true`` it also sells above ``+entry_z`` and covers below ``exit_z``.
    """

    name: ClassVar[str] = "mean_reversion"
    uses_history: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {
        "window": 20,
        "entry_z": 2.0,
        "exit_z": 0.5,
        "short": False,
    }

    def validate(self) -> None:
        """Check the parameters and reset per-symbol state."""
        window = self.params["window"]
        if float(window) != int(window) or window < 2:
            raise ModelError(f"params.window: must be a whole number >= 2, got {window}")
        if not self.params["entry_z"] > self.params["exit_z"] >= 0:
            raise ModelError("params.entry_z: must be > exit_z >= 0")
        if not isinstance(self.params["short"], bool):
            raise ModelError(f"params.short: expected true/false, got {self.params['short']!r}")
        self._windows: dict[str, _Window] = {}
        self._side: dict[str, int] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> str | None:
        """Update the indicator with this bar and return a signal on a change."""
        win = self._windows.get(bar.symbol)
        if win is None:
            win = self._windows[bar.symbol] = _Window(int(self.params["window"]))
        win.push(bar.close)
        if not win.full():
            return None
        n = win.size
        mean = win.sum / n
        var = max(win.sumsq / n - mean * mean, 0.0)
        if var <= 1e-18:
            return None
        z = (bar.close - mean) / math.sqrt(var)
        side = self._side.get(bar.symbol, 0)
        entry, exit_ = self.params["entry_z"], self.params["exit_z"]
        if side == 0:
            if z < -entry:
                self._side[bar.symbol] = 1
                return "buy"
            if self.params["short"] and z > entry:
                self._side[bar.symbol] = -1
                return "sell"
        elif (side > 0 and z > -exit_) or (side < 0 and z < exit_):
            self._side[bar.symbol] = 0
            return "flat"
        return None

    def signals(self, close: np.ndarray) -> np.ndarray:
        """The codes :meth:`on_bar` returns over one symbol's closes (same arithmetic)."""
        p = self.params
        return mean_reversion_signals(
            close, int(p["window"]), p["entry_z"], p["exit_z"], p["short"]
        )


class BuyAndHold(Strategy):
    """Buy the position size on the first bar of each symbol and hold it."""

    name: ClassVar[str] = "buy_and_hold"
    uses_history: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}

    def validate(self) -> None:
        """Check the parameters and reset per-symbol state."""
        self._bought: set[str] = set()

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> str | None:
        """Update the indicator with this bar and return a signal on a change."""
        if bar.symbol in self._bought:
            return None
        self._bought.add(bar.symbol)
        return "buy"

    def signals(self, close: np.ndarray) -> np.ndarray:
        """The codes :meth:`on_bar` returns over one symbol's closes: a buy on the first."""
        return buy_and_hold_signals(close)
