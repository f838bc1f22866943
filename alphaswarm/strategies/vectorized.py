"""Array forms of the built-in strategies' signals, bit-identical to their ``on_bar``.

A strategy may define ``signals(close) -> ndarray``: for one symbol's closes, the
signal ``on_bar`` would return on each bar, as an int8 code (0 none, then
:data:`~alphaswarm.strategies.base.SIGNAL_CODES`). The vectorized backtest path uses
it to skip the per-bar loop.

Equality is exact, not approximate: ``on_bar`` keeps running sums updated one bar
at a time (and re-summed with :func:`math.fsum` every :data:`RESYNC_EVERY` bars),
so the helpers here replay the *same* floating-point additions in the same order.
``numpy.cumsum`` adds strictly left to right in IEEE double precision, so a
cumulative sum over the interleaved ``(-leaving, +entering)`` operations of one
resync segment, started from the segment's ``fsum``, reproduces every intermediate
rounding of the incremental loop.
"""

from __future__ import annotations

import math

import numpy as np

from alphaswarm.strategies.base import SIGNAL_CODES

__all__ = [
    "RESYNC_EVERY",
    "buy_and_hold_signals",
    "mean_reversion_signals",
    "running_sums",
    "sma_cross_signals",
    "window_sums",
]

#: Bars between exact re-sums of the running windows (shared with ``on_bar``).
RESYNC_EVERY = 10_000

_BUY, _SELL, _FLAT = SIGNAL_CODES["buy"], SIGNAL_CODES["sell"], SIGNAL_CODES["flat"]


def _resynced(x: np.ndarray, window: int, end: int, square: bool = False) -> float:
    """``math.fsum`` of the last ``window`` values (squared) before index ``end``."""
    values = x[max(0, end - window) : end].tolist()
    return math.fsum(v * v for v in values) if square else math.fsum(values)


def running_sums(x: np.ndarray, window: int, every: int | None = None) -> np.ndarray:
    """Running window sums as ``SmaCross.on_bar`` keeps them, bar by bar.

    Per bar ``i``: ``s -= x[i - window]`` (once the window is full), then
    ``s += x[i]``; after every ``every``-th bar ``s`` is replaced by the exact sum
    of the window.

    Parameters
    ----------
    x : ndarray
        float64 values, oldest first.
    window : int
        Window length, >= 1.
    every : int, optional
        Resync period in bars (default :data:`RESYNC_EVERY`).

    Returns
    -------
    ndarray
        The sum after each bar (the value ``on_bar`` reads on that bar).
    """
    every = RESYNC_EVERY if every is None else every
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = len(x)
    out = np.empty(n)
    ops = np.empty(2 * min(n, every) + 1)
    for a in range(0, n, every):
        b = min(a + every, n)
        seg = ops[: 2 * (b - a) + 1]
        seg[0] = 0.0 if a == 0 else _resynced(x, window, a)
        leaving = seg[1::2]  # -x[i - window], or + 0.0 while the window fills
        first = min(max(window - a, 0), b - a)  # bars of the segment before it is full
        leaving[:first] = 0.0  # s + 0.0 == s (the sum of positive prices is never -0.0)
        np.negative(x[a + first - window : b - window], out=leaving[first:])
        seg[2::2] = x[a:b]
        np.cumsum(seg, out=seg)
        out[a:b] = seg[2::2]
        if b % every == 0:
            out[b - 1] = _resynced(x, window, b)
    return out


def window_sums(
    x: np.ndarray, window: int, every: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Running sums and sums of squares as ``MeanReversion``'s window keeps them.

    Per bar ``i``: ``s += x[i] - old`` and ``q += x[i] * x[i] - old * old`` with
    ``old`` the value leaving the window (0.0 while it fills); after every
    ``every``-th bar both are replaced by exact sums of the window.

    Parameters
    ----------
    x : ndarray
        float64 values, oldest first.
    window : int
        Window length, >= 1.
    every : int, optional
        Resync period in bars (default :data:`RESYNC_EVERY`).

    Returns
    -------
    tuple of ndarray
        Sum and sum of squares after each bar.
    """
    every = RESYNC_EVERY if every is None else every
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = len(x)
    sq = x * x
    d_sum = x.copy()
    d_sq = sq.copy()
    if n > window:
        d_sum[window:] = x[window:] - x[: n - window]
        d_sq[window:] = sq[window:] - sq[: n - window]
    sums, squares = np.empty(n), np.empty(n)
    buf = np.empty(min(n, every) + 1)
    for out, inc, square in ((sums, d_sum, False), (squares, d_sq, True)):
        for a in range(0, n, every):
            b = min(a + every, n)
            seg = buf[: b - a + 1]
            seg[0] = 0.0 if a == 0 else _resynced(x, window, a, square)
            seg[1:] = inc[a:b]
            np.cumsum(seg, out=seg)
            out[a:b] = seg[1:]
            if b % every == 0:
                out[b - 1] = _resynced(x, window, b, square)
    return sums, squares


def sma_cross_signals(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """``SmaCross.on_bar``'s signals over one symbol's closes.

    A signal is a change of sign of ``fast SMA - slow SMA`` between two non-zero
    readings (zero readings skipped); the first reading is not a cross.

    Parameters
    ----------
    close : ndarray
        Closes, oldest first.
    fast, slow : int
        Window lengths, ``1 <= fast < slow``.

    Returns
    -------
    ndarray
        int8 signal code per bar.
    """
    n = len(close)
    codes = np.zeros(n, np.int8)
    if n < slow:
        return codes
    sf = running_sums(close, fast)[slow - 1 :]
    ss = running_sums(close, slow)[slow - 1 :]
    diff = sf * slow - ss * fast
    sign = np.sign(diff).astype(np.int8)
    at = np.flatnonzero(sign)  # a zero reading changes nothing
    if len(at) == 0:
        return codes
    s = sign[at]
    change = np.empty(len(s), bool)
    change[0] = False  # the first reading: no earlier one to cross from
    change[1:] = s[1:] != s[:-1]
    hits = at[change]
    codes[slow - 1 + hits] = np.where(sign[hits] > 0, _BUY, _SELL)
    return codes


def _next_true(mask: np.ndarray) -> np.ndarray:
    """For each index, the first index >= it where ``mask`` holds (``len`` if none)."""
    n = len(mask)
    idx = np.where(mask, np.arange(n), n)
    return np.minimum.accumulate(idx[::-1])[::-1] if n else idx


def mean_reversion_signals(
    close: np.ndarray, window: int, entry_z: float, exit_z: float, short: bool
) -> np.ndarray:
    """``MeanReversion.on_bar``'s signals over one symbol's closes.

    Parameters
    ----------
    close : ndarray
        Closes, oldest first.
    window : int
        Rolling window, >= 2.
    entry_z, exit_z : float
        Entry and exit z-score thresholds.
    short : bool
        Whether it also sells above ``+entry_z``.

    Returns
    -------
    ndarray
        int8 signal code per bar.
    """
    n = len(close)
    codes = np.zeros(n, np.int8)
    if n < window:
        return codes
    x = np.ascontiguousarray(close, dtype=np.float64)
    sums, squares = window_sums(x, window)
    mean = sums / window
    var = np.maximum(squares / window - mean * mean, 0.0)
    valid = np.zeros(n, bool)
    valid[window - 1 :] = True
    valid &= var > 1e-18
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - mean) / np.sqrt(var)
    enter_long = valid & (z < -entry_z)
    enter_short = valid & (z > entry_z) if short else np.zeros(n, bool)
    next_long, next_short = _next_true(enter_long), _next_true(enter_short)
    next_exit_long = _next_true(valid & (z > -exit_z))
    next_exit_short = _next_true(valid & (z < exit_z))
    i = 0
    while i < n:  # one iteration per signal, not per bar
        lo, sh = next_long[i], next_short[i]
        if lo >= n and sh >= n:
            break
        if lo <= sh:  # long entry is tested first on the same bar
            codes[lo] = _BUY
            i = next_exit_long[lo + 1] if lo + 1 < n else n
        else:
            codes[sh] = _SELL
            i = next_exit_short[sh + 1] if sh + 1 < n else n
        if i < n:
            codes[i] = _FLAT
            i += 1
    return codes


def buy_and_hold_signals(close: np.ndarray) -> np.ndarray:
    """``BuyAndHold.on_bar``'s signals: a buy on the first bar."""
    codes = np.zeros(len(close), np.int8)
    if len(codes):
        codes[0] = _BUY
    return codes
