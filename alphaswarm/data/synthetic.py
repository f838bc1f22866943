"""Seeded synthetic bars: geometric Brownian motion with regimes, gaps and wicks.

Bars are generated in fixed-size chunks of :data:`CHUNK` bars per symbol, each from
its own random stream seeded by ``(seed, symbol, chunk index)``. So

* the same seed gives the same bars, on every machine;
* the first N bars are the same whatever number of bars is asked for;
* adding a symbol does not change the bars of the others;
* an unbounded feed can be streamed lazily, chunk by chunk.
"""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from itertools import count
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaswarm.data.base import (
    DAY,
    SESSION_OPEN_SECONDS,
    Block,
    Feed,
    FeedError,
    bars_per_session,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["CHUNK", "SyntheticFeed"]

#: Generated chunks by (feed identity, chunk index), while any block still uses one:
#: sessions and backtests of one feed share its bars instead of each holding a copy.
_CHUNKS: weakref.WeakValueDictionary[tuple[Any, int], np.ndarray] = weakref.WeakValueDictionary()
#: The symbol column of a chunk by (symbols, chunk length), shared likewise.
_SYMBOL_COLUMNS: weakref.WeakValueDictionary[tuple[Any, int], np.ndarray] = (
    weakref.WeakValueDictionary()
)


def _symbol_column(symbols: tuple[str, ...], n: int) -> np.ndarray:
    """``symbols`` repeated ``n`` times (row-major ``(bar, symbol)``), shared while in use."""
    column = _SYMBOL_COLUMNS.get((symbols, n))
    if column is None:
        column = np.tile(np.array(symbols, dtype=object), n).copy()  # owns its data
        _SYMBOL_COLUMNS[(symbols, n)] = column
    return column


CHUNK = 1 << 16
"""Bars per generated chunk and symbol. Changing it changes every series."""

GENERATOR_VERSION = 1
"""Bumped whenever the generator's output changes; part of the fingerprint."""

_REGIME_MEAN_BARS = 1_500  # mean length of a trending stretch
_REGIME_STRENGTH = (0.03, 0.10)  # |drift| per bar of a trend, in per-bar sigmas
_REGIME_PROBS = (0.35, 0.30, 0.35)  # down, flat, up
_OPEN_NOISE = 0.05  # open = previous close * exp(N(0, _OPEN_NOISE * sigma))
_JUMP_PROB, _JUMP_SIZE = 0.002, 3.0  # occasional small gaps
_OVERNIGHT_GAP = 2.0  # gap sigma at the first bar of an equities session
_WICK = 0.6  # sigma of each wick beyond the open/close body, in per-bar sigmas
_T_DF = 5  # fat tails: Student t returns with unit variance


def _symbol_key(symbol: str) -> int:
    """Stable (not process-salted) integer key of a symbol for seeding."""
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "little")


def _number(value: Any, name: str, *, low: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise FeedError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise FeedError(f"{name}: must be finite, got {value}")
    if low is not None and (value <= low if strict else value < low):
        raise FeedError(f"{name}: must be {'>' if strict else '>='} {low}, got {value}")
    return value


class SyntheticFeed(Feed):
    """Seeded GBM bars for one or many symbols.

    Parameters
    ----------
    symbols : str or list of str
        Symbols to generate; each gets its own deterministic random stream.
    seed : int
        Master seed (>= 0).
    interval : str
        Bar interval, e.g. ``"1m"`` (default), ``"5m"``, ``"1h"``, ``"1d"``.
    bars : int, optional
        Number of timestamps the feed holds. ``None`` (default) means unbounded:
        reads then need ``limit=`` or ``end=``, except :meth:`groups`, which streams
        forever when given neither (for paper sessions).
    start : str, date or Timestamp
        First trading day (for ``24x7`` intraday feeds: first bar time).
    start_price : float
        Open of the first bar, > 0.
    drift : float
        Annualised log drift (0.05 = 5 % a year).
    volatility : float
        Annualised volatility (0.2 = 20 %), >= 0.
    regimes : bool
        Add persistent trending stretches (up, flat, down, mean ~1,500 bars) whose
        drifts average to zero, so trend-following can work on some seeds.
    calendar : str
        ``"equities"`` (weekdays, 14:30--21:00 UTC intraday) or ``"24x7"``.

    Examples
    --------
    >>> feed = SyntheticFeed(["AAA", "BBB"], seed=1, bars=1_000)
    >>> len(next(feed.groups()))
    2
    """

    kind = "synthetic"
    supports_arrays = True

    def __init__(
        self,
        symbols: str | Iterable[str],
        seed: int = 7,
        interval: str = "1m",
        bars: int | None = None,
        start: Any = "2024-01-02",
        start_price: float = 100.0,
        drift: float = 0.05,
        volatility: float = 0.2,
        regimes: bool = True,
        calendar: str = "equities",
    ) -> None:
        super().__init__(symbols, interval, calendar)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise FeedError(f"seed: expected an integer >= 0, got {seed!r}")
        if bars is not None and (
            isinstance(bars, bool) or not isinstance(bars, int | np.integer) or bars <= 0
        ):
            raise FeedError(f"bars: expected an integer > 0 or None, got {bars!r}")
        if not isinstance(regimes, bool):
            raise FeedError(f"regimes: expected true or false, got {regimes!r}")
        try:
            start_ts = pd.Timestamp(start)
        except (ValueError, TypeError, OverflowError):
            start_ts = pd.NaT
        if start_ts is pd.NaT:
            raise FeedError(f"start: cannot interpret {start!r} as a date")
        start_ts = (
            start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
        )
        self.seed = int(seed)
        self.bars = None if bars is None else int(bars)
        self.start = start_ts
        self.start_price = _number(start_price, "start_price", low=0.0, strict=True)
        self.drift = _number(drift, "drift")
        self.volatility = _number(volatility, "volatility", low=0.0)
        self.regimes = regimes
        self._keys = {s: _symbol_key(s) for s in self.symbols}
        self._order = sorted(self.symbols)

    # -- identity --------------------------------------------------------------------

    @property
    def bounded(self) -> bool:
        """False when built without ``bars``."""
        return self.bars is not None

    @property
    def spec(self) -> dict[str, Any]:
        """The ``data:`` block that rebuilds this feed with :func:`make_feed`."""
        return {
            "feed": "synthetic",
            "seed": self.seed,
            "interval": self.interval,
            "bars": self.bars,
            "start": self.start.isoformat(),
            "start_price": self.start_price,
            "drift": self.drift,
            "volatility": self.volatility,
            "regimes": self.regimes,
            "calendar": self.calendar,
        }

    def fingerprint(self) -> str:
        """Hash of the generator version, parameters and (sorted) symbols."""
        ident = {**self.spec, "symbols": self._order, "version": GENERATOR_VERSION, "chunk": CHUNK}
        blob = json.dumps(ident, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- generation ------------------------------------------------------------------

    def _timestamps(self, first: int, n: int) -> np.ndarray:
        """Epoch-ns timestamps of bars ``first .. first + n - 1``."""
        i = np.arange(first, first + n, dtype=np.int64)
        step = self.interval_seconds
        if self.calendar == "24x7":
            origin = self.start.normalize() if step >= DAY else self.start
            return origin.as_unit("ns").value + i * (step * 10**9)
        day0 = np.datetime64(self.start.date(), "D")
        if step >= DAY:
            dates = np.busday_offset(day0, i * (step // DAY), roll="forward")
            return dates.astype("M8[ns]").view(np.int64)
        day, slot = np.divmod(i, bars_per_session(step))
        dates = np.busday_offset(day0, day, roll="forward").astype("M8[ns]").view(np.int64)
        return dates + (SESSION_OPEN_SECONDS + slot * step) * 10**9

    def _chunk(
        self, symbol: str, index: int, last_log_close: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Generate one full chunk of one symbol.

        Returns open, close, high, low, volume and the last log close (the state the
        next chunk starts from).
        """
        main, regime = (
            np.random.default_rng(s)
            for s in np.random.SeedSequence([self.seed, self._keys[symbol], index]).spawn(2)
        )
        n = CHUNK
        sigma = self.volatility / math.sqrt(self.periods_per_year)
        mu = self.drift / self.periods_per_year
        z = main.standard_t(_T_DF, n) * math.sqrt((_T_DF - 2) / _T_DF)
        ret = (mu - 0.5 * sigma * sigma) + sigma * z
        gap = sigma * _OPEN_NOISE * main.standard_normal(n)
        gap += np.where(main.random(n) < _JUMP_PROB, _JUMP_SIZE * sigma, 0.0) * (
            main.standard_normal(n)
        )
        wick_hi = np.abs(main.standard_normal(n)) * (_WICK * sigma)
        wick_lo = np.abs(main.standard_normal(n)) * (_WICK * sigma)
        noise = main.lognormal(0.0, 0.4, n)
        per = bars_per_session(self.interval_seconds)
        slot = (index * n + np.arange(n)) % per if self.calendar == "equities" else None
        if slot is not None and per > 1:
            gap += np.where(slot == 0, _OVERNIGHT_GAP * sigma, 0.0) * main.standard_normal(n)
        if self.regimes:
            ret += self._regime_drift(regime, n) * sigma
        if index == 0:
            gap[0] = 0.0
        log_close = last_log_close + np.cumsum(gap + ret)
        log_open = log_close - ret
        open_, close = np.exp(log_open), np.exp(log_close)
        if index == 0:
            open_[0] = self.start_price  # exact, not exp(log(start_price))
        high = np.maximum(open_, close) * np.exp(wick_hi)
        low = np.minimum(open_, close) * np.exp(-wick_lo)
        if slot is not None and per > 1:
            x = slot / (per - 1)
            shape = 0.6 + 1.6 * (2.0 * x - 1.0) ** 2  # intraday U: busy open and close
        else:
            shape = 1.0
        base = 1_000_000.0 if self.interval_seconds >= DAY else 10_000.0
        volume = np.maximum(np.rint(base * shape * noise * (1.0 + 0.5 * np.abs(z))), 1.0)
        return open_, close, high, low, volume, float(log_close[-1])

    @staticmethod
    def _regime_drift(rng: np.random.Generator, n: int) -> np.ndarray:
        """Per-bar drift (in per-bar sigmas) of persistent up/flat/down stretches."""
        lengths = rng.geometric(1.0 / _REGIME_MEAN_BARS, size=4 * n // _REGIME_MEAN_BARS + 16)
        while lengths.sum() < n:  # vanishingly rare; keeps the stream deterministic
            lengths = np.concatenate([lengths, rng.geometric(1.0 / _REGIME_MEAN_BARS, 16)])
        direction = rng.choice(np.array([-1.0, 0.0, 1.0]), size=len(lengths), p=_REGIME_PROBS)
        strength = rng.uniform(*_REGIME_STRENGTH, size=len(lengths))
        return np.repeat(direction * strength, lengths)[:n]

    def _blocks(self, start: int | None, end: int | None) -> Iterator[Block]:
        k = len(self._order)
        last = [math.log(self.start_price)] * k
        identity = self._chunk_identity()
        for c in count():
            first = c * CHUNK
            if self.bars is not None and first >= self.bars:
                return
            n = CHUNK if self.bars is None else min(CHUNK, self.bars - first)
            chunk = _CHUNKS.get((identity, c))
            if chunk is None:
                chunk = self._chunk_block(c, last)
                _CHUNKS[(identity, c)] = chunk
            ts = chunk[0, :CHUNK].view(np.int64)[:n]
            last = chunk[1, CHUNK * k :].tolist()
            if start is not None and ts[-1] < start:
                continue
            a = 0 if start is None else int(np.searchsorted(ts, start, "left"))
            b = n if end is None else int(np.searchsorted(ts, end, "right"))
            if a < b:
                yield Block(
                    np.repeat(ts[a:b], k) if k > 1 else ts[a:b],
                    _symbol_column(tuple(self._order), CHUNK)[a * k : b * k],
                    *(chunk[f, a * k : b * k] for f in range(1, 6)),
                )
            if b < n:
                return

    def _chunk_identity(self) -> tuple[Any, ...]:
        """What the bars of every chunk depend on (``bars`` only cuts them)."""
        spec = {**self.spec, "bars": None, "symbols": self._order}
        return (GENERATOR_VERSION, json.dumps(spec, sort_keys=True))

    def _chunk_block(self, c: int, last: list[float]) -> np.ndarray:
        """Chunk ``c`` of every symbol as one float64 array (shared by equal feeds).

        Row 0 holds the timestamps (int64 bits), rows 1-5 open, high, low, close and
        volume interleaved by symbol (row-major ``(bar, symbol)``); the ``k`` cells
        after the bars in row 1 hold each symbol's last log close, the state the next
        chunk starts from.
        """
        k = len(self._order)
        out = np.zeros((6, CHUNK * k + k))
        out[0, :CHUNK].view(np.int64)[:] = self._timestamps(c * CHUNK, CHUNK)
        for j, sym in enumerate(self._order):
            o, cl, h, lo, v, out[1, CHUNK * k + j] = self._chunk(sym, c, last[j])
            for f, col in enumerate((o, h, lo, cl, v), start=1):
                out[f, j : CHUNK * k : k] = col
        return out
