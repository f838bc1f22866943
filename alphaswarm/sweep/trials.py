"""Trials: what one backtest of a sweep is, its content-hashed key, and how a worker runs it.

A trial is a parameter set on a slice of one data window. Its key hashes everything
that decides its result -- the bot spec with the parameters applied (so the bot
version), the parameters, the data fingerprint and window, the slice and warm-up,
the engine version, the fill rule and the starting cash -- so the same trial has the
same key on every machine and in every later run, and a finished key never runs twice.

Workers receive a :class:`TrialBase` (spec and strategy class), a data reference
(:class:`DataRef`, built and cached per worker) or the client's own
:class:`WindowData` (scattered once), and a list of ``(key, params, lo, hi, warmup)``.
They return one metrics row per trial -- never trades or equity.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaswarm.data.base import Block, Feed, FeedArrays
from alphaswarm.engine.broker import BrokerConfig, SimulatedBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.engine.vectorized import (
    ineligible,
    run_vectorized,
    unsupported_arrays,
)
from alphaswarm.metrics import returns_of, round_trips, summarize
from alphaswarm.risk.limits import RiskDecision, RiskLimits
from alphaswarm.sweep.stats import block_moments, moments_of

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alphaswarm.backtest import BacktestResult
    from alphaswarm.bots import Bot
    from alphaswarm.model import Bar
    from alphaswarm.strategies.base import Strategy

__all__ = [
    "ENGINE_VERSION",
    "MAX_BLOCKS",
    "DataRef",
    "TrialBase",
    "WindowData",
    "expand_grid",
    "replay",
    "run_batch",
    "run_trial",
    "sample_grid",
    "trial_key",
]

#: Version of the trial format and engine semantics; part of every trial key.
#: 2: sma_cross needs two readings for a cross; shared participation budget; per-order
#: minimum commission; bracket legs follow the open quantity.
TRIAL_FORMAT = 2
#: Engine version in trial keys: the package version plus the trial format.
ENGINE_VERSION = f"{__import__('alphaswarm').__version__}+t{TRIAL_FORMAT}"
#: Blocks of per-bar return moments each trial returns (PBO merges them into 2..16).
MAX_BLOCKS = 16
#: Data windows a worker keeps in memory.
CACHE_SIZE = 8


# ----------------------------------------------------------------------------- grids


def _check_grid(grid: dict[str, Any]) -> dict[str, list[Any]]:
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid: expected a non-empty dict of parameter -> list of values")
    out: dict[str, list[Any]] = {}
    for name, values in grid.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"grid: parameter names must be strings, got {name!r}")
        if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
            values = [values]
        values = [v.item() if hasattr(v, "item") else v for v in values]
        if not values:
            raise ValueError(f"grid.{name}: no values")
        for v in values:
            if not (v is None or isinstance(v, str | int | float | bool)):
                raise ValueError(f"grid.{name}: values must be numbers, strings or booleans")
        out[name] = values
    return out


def expand_grid(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of a grid, in a stable order (the last parameter varies fastest).

    Parameters
    ----------
    grid : dict
        Parameter name -> list of values.

    Returns
    -------
    list of dict
    """
    grid = _check_grid(grid)
    combos: list[dict[str, Any]] = [{}]
    for name, values in grid.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return combos


def grid_size(grid: dict[str, Any]) -> int:
    """Number of combinations of ``grid``."""
    return math.prod(len(v) for v in _check_grid(grid).values())


def sample_grid(grid: dict[str, Any], samples: int, seed: int = 0) -> list[dict[str, Any]]:
    """``samples`` distinct random combinations of ``grid`` (all of them if fewer).

    Parameters
    ----------
    grid : dict
        Parameter name -> list of values.
    samples : int
        Number of draws, without replacement.
    seed : int
        Seed of the draw: the same seed draws the same combinations.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0:
        raise ValueError(f"samples: expected a whole number > 0, got {samples!r}")
    grid = _check_grid(grid)
    sizes = [len(v) for v in grid.values()]
    total = math.prod(sizes)
    rng = np.random.default_rng(seed)
    if samples >= total:
        picks = range(total)
    elif total <= 10_000_000:
        picks = sorted(rng.choice(total, size=samples, replace=False).tolist())
    else:
        seen: set[int] = set()
        while len(seen) < samples:
            seen.add(int(rng.integers(total)))
        picks = sorted(seen)
    out = []
    names = list(grid)
    for index in picks:
        combo, rest = {}, index
        for name, size in zip(reversed(names), reversed(sizes), strict=True):
            rest, pos = divmod(rest, size)
            combo[name] = grid[name][pos]
        out.append({n: combo[n] for n in names})
    return out


def trial_key(
    bot: Bot,
    params: dict[str, Any],
    data_fingerprint: str,
    window: dict[str, Any],
    lo: int,
    hi: int,
    warmup: int = 0,
    starting_cash: float = 100_000.0,
) -> str:
    """Content hash of a trial.

    Parameters
    ----------
    bot : Bot
        The bot with ``params`` applied (its ``spec_hash`` is the bot version).
    params : dict
        The swept parameters.
    data_fingerprint : str
        The feed's :meth:`~alphaswarm.data.base.Feed.fingerprint`.
    window : dict
        The resolved data window (``start``, ``end``, ``bars``).
    lo, hi, warmup : int
        Bar-group slice of the window and non-trading warm-up bars before ``lo``.
    starting_cash : float
        Initial cash.

    Returns
    -------
    str
        64 hex digits.
    """
    ident = {
        "engine": ENGINE_VERSION,
        "spec_hash": bot.spec_hash,
        "params": params,
        "data": data_fingerprint,
        "window": window,
        "slice": [lo, hi, warmup],
        "fill_rule": bot.broker_config().intrabar_rule,
        "cash": starting_cash,
    }
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataRef:
    """A data window by reference: workers rebuild the feed and cache the window.

    Attributes
    ----------
    data : dict
        The bot's ``data:`` block.
    universe : list of str
        Symbols.
    start, end : str or None
        Window bounds as given.
    bars : int or None
        Number of bar groups (``None``: bounded by ``start``/``end`` or the feed).
    fingerprint : str
        The client's feed fingerprint; a worker whose data differ refuses to run.
    """

    data: dict[str, Any]
    universe: tuple[str, ...]
    start: str | None
    end: str | None
    bars: int | None
    fingerprint: str

    @property
    def cache_key(self) -> tuple[Any, ...]:
        """Key of the worker cache."""
        return (self.fingerprint, self.start, self.end, self.bars)


class _SliceFeed(Feed):
    """A feed serving a slice of a :class:`WindowData` (bars identical to the source)."""

    kind = "slice"
    supports_arrays = True

    def __init__(self, data: WindowData, lo: int, hi: int) -> None:
        super().__init__(data.symbols, data.interval, data.calendar)
        self._data, self._lo, self._hi = data, lo, hi

    def _blocks(self, start: int | None, end: int | None) -> Iterator[Block]:
        starts = self._data.starts
        yield self._data.block.take(slice(int(starts[self._lo]), int(starts[self._hi])))

    def fingerprint(self) -> str:
        return self._data.fingerprint

    def arrays(self, start: Any = None, end: Any = None, limit: int | None = None) -> FeedArrays:
        """The slice's bars as arrays (views of the window's cached arrays when unbounded)."""
        if start is None and end is None and limit is None:
            return self._data.arrays.take_groups(self._lo, self._hi)
        return super().arrays(start, end, limit)


class _WindowFeed(_SliceFeed):
    """The whole window as a feed, read through the base :meth:`Feed.arrays`."""

    def __init__(self, data: WindowData) -> None:
        super().__init__(data, 0, data.n_groups)

    def arrays(self, start: Any = None, end: Any = None, limit: int | None = None) -> FeedArrays:
        return Feed.arrays(self, start, end, limit)


@dataclass
class WindowData:
    """One data window held in memory: bars as column arrays plus group boundaries.

    Attributes
    ----------
    block : Block
        Every bar of the window, sorted by ``(ts, symbol)``.
    starts : ndarray
        Start row of each bar group, plus ``len(block)`` at the end.
    fingerprint : str
        Fingerprint of the source feed.
    window : dict
        ``start``, ``end``, ``bars`` as resolved.
    symbols : list of str
    interval, calendar : str
    periods_per_year : float
    """

    block: Block
    starts: np.ndarray
    fingerprint: str
    window: dict[str, Any]
    symbols: list[str]
    interval: str
    calendar: str
    periods_per_year: float
    _day_index: np.ndarray | None = field(default=None, repr=False)
    _arrays: FeedArrays | None = field(default=None, repr=False)

    @classmethod
    def from_feed(
        cls, feed: Feed, start: Any = None, end: Any = None, bars: int | None = None
    ) -> WindowData:
        """Read the window ``start``/``end``/``bars`` of ``feed`` into memory."""
        block = Block.concat(list(feed._read(start, end, bars)))
        if len(block) == 0:
            raise ValueError("bars: the feed delivered no bars for that range")
        ts = block.ts
        starts = np.concatenate((np.flatnonzero(ts[1:] != ts[:-1]) + 1, [0, len(ts)]))
        starts.sort()
        return cls(
            block=block,
            starts=starts,
            fingerprint=feed.fingerprint(),
            window={
                "start": None if start is None else str(start),
                "end": None if end is None else str(end),
                "bars": bars,
            },
            symbols=list(feed.symbols),
            interval=feed.interval,
            calendar=feed.calendar,
            periods_per_year=feed.periods_per_year,
        )

    @property
    def n_groups(self) -> int:
        """Number of bar groups (timestamps) in the window."""
        return len(self.starts) - 1

    @property
    def timestamps(self) -> np.ndarray:
        """Epoch-ns timestamp of each group."""
        return self.block.ts[self.starts[:-1]]

    def feed(self, lo: int = 0, hi: int | None = None) -> Feed:
        """A feed over groups ``lo .. hi - 1``."""
        return _SliceFeed(self, lo, self.n_groups if hi is None else hi)

    @property
    def arrays(self) -> FeedArrays:
        """The whole window as :class:`~alphaswarm.data.base.FeedArrays` (built once)."""
        if self._arrays is None:
            self._arrays = _WindowFeed(self).arrays()
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        # caches are rebuilt where the window lands (a scattered window stays its size)
        return {**self.__dict__, "_arrays": None, "_day_index": None}

    def day_index(self) -> np.ndarray:
        """UTC day number of each group."""
        if self._day_index is None:
            self._day_index = self.timestamps // (86_400 * 10**9)
        return self._day_index


_CACHE: OrderedDict[tuple[Any, ...], WindowData] = OrderedDict()
_CACHE_STATS = {"hits": 0, "misses": 0}


def load_window(ref: DataRef | WindowData) -> WindowData:
    """The window a reference names, from this process's cache or built and cached."""
    if isinstance(ref, WindowData):
        return ref
    key = ref.cache_key
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        _CACHE_STATS["hits"] += 1
        return hit
    _CACHE_STATS["misses"] += 1
    from alphaswarm.data import make_feed

    feed = make_feed(ref.data, list(ref.universe))
    data = WindowData.from_feed(feed, ref.start, ref.end, ref.bars)
    if data.fingerprint != ref.fingerprint:
        raise RuntimeError(
            f"data: this worker's feed has fingerprint {data.fingerprint}, the client's "
            f"{ref.fingerprint}; workers must see the same data (same file content)"
        )
    _CACHE[key] = data
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return data


def cache_stats() -> dict[str, int]:
    """Hits, misses and size of this process's window cache."""
    return {**_CACHE_STATS, "size": len(_CACHE)}


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class TrialBase:
    """What every trial of a sweep shares.

    Attributes
    ----------
    spec : dict
        The bot's normalised spec (params are replaced per trial).
    strategy : type
        The Strategy class (pickled by value when it lives in a notebook).
    starting_cash : float
        Initial cash.
    blocks : int
        Blocks of return moments each trial returns.
    engine : str
        ``auto`` (the vectorized backtest path when the strategy has one) or
        ``event`` (always bar by bar); both give the same metrics.
    """

    spec: dict[str, Any]
    strategy: type[Strategy]
    starting_cash: float = 100_000.0
    blocks: int = MAX_BLOCKS
    engine: str = "auto"


@dataclass
class _Simulated:
    """A trial's run, whichever path took it: the account from ``lo`` on."""

    engine: Engine
    equity: np.ndarray
    cash: np.ndarray
    index: pd.DatetimeIndex
    bars_in_market: int
    bars_seen: int
    halted: RiskDecision | None
    path: str  # "vector" or "event"

    @property
    def broker(self) -> SimulatedBroker:
        return self.engine.broker


def _simulate(
    base: TrialBase, data: WindowData, params: dict[str, Any], lo: int, hi: int, warmup: int
) -> _Simulated:
    """Run groups ``lo - warmup .. hi - 1``; equity from ``lo`` on.

    The vectorized path runs when the strategy and data allow it (and ``base.engine``
    does not say ``event``); both give the same result.
    """
    spec = base.spec
    config = BrokerConfig.from_dict(spec.get("broker"))
    merged = {**spec.get("params", {}), **params}

    def make_engine(gate: Any = None) -> Engine:
        return Engine(
            base.strategy(**merged),
            SimulatedBroker(base.starting_cash, config),
            RiskLimits.from_spec(spec.get("risk") or {}, list(spec["universe"])),
            order_gate=gate,
        )

    first = lo - warmup
    if first < 0 or hi > data.n_groups or lo >= hi:
        raise ValueError(
            f"slice: bars {first}..{hi} (warm-up {warmup}) are not inside the window's "
            f"{data.n_groups} bars"
        )
    feed = data.feed(first, hi)
    reason = "event" if base.engine == "event" else ineligible(base.strategy(**merged), feed)
    arrays = None if reason is not None else feed.arrays()
    if arrays is not None and unsupported_arrays(arrays) is None:
        run = run_vectorized(make_engine, arrays, frozen_until=warmup)
        equity = run.equity[warmup:]
        if len(equity) == 0:
            raise ValueError("bars: the trial's slice holds no bars after the warm-up")
        return _Simulated(
            engine=run.engine,
            equity=equity,
            cash=run.cash[warmup:],
            index=pd.DatetimeIndex(run.ts[warmup:].view("M8[ns]"), name="ts")
            .tz_localize("UTC")
            .as_unit("us"),
            bars_in_market=run.bars_in_market,
            bars_seen=run.bars_seen,
            halted=run.halted,
            path="vector",
        )
    warming = [warmup > 0]
    engine = make_engine((lambda: "frozen" if warming[0] else None) if warmup else None)

    def groups() -> Iterator[list[Bar]]:
        for i, group in enumerate(feed.groups()):
            if i == warmup:
                warming[0] = False
            yield group

    engine.run(groups())
    engine.finish()
    equity = np.asarray(engine.equity_values[warmup:], dtype=float)
    if len(equity) == 0:
        raise ValueError("bars: the trial's slice holds no bars after the warm-up")
    return _Simulated(
        engine=engine,
        equity=equity,
        cash=np.asarray(engine.cash_values[warmup:], dtype=float),
        index=pd.DatetimeIndex(engine.equity_ts[warmup:], name="ts"),
        bars_in_market=engine.bars_in_market,
        bars_seen=engine.bars_seen,
        halted=engine.halted,
        path="event",
    )


def run_trial(
    base: TrialBase, data: WindowData, params: dict[str, Any], lo: int, hi: int, warmup: int = 0
) -> dict[str, Any]:
    """Run one trial and return its metrics row (no trades, no equity).

    The engine runs groups ``lo - warmup .. hi - 1``; during the first ``warmup``
    groups the strategy sees bars but every order is refused, and the metrics cover
    groups ``lo .. hi - 1`` only. With ``warmup=0`` the metrics equal those of
    :func:`alphaswarm.backtest` on the same bars.
    """
    sim = _simulate(base, data, params, lo, hi, warmup)
    equity = sim.equity
    trades = round_trips(sim.broker.fills)
    metrics = summarize(equity, trades, data.periods_per_year, sim.bars_in_market)
    # Per-bar returns over the full slice (flat after a halt), for PBO blocks.
    r = returns_of(equity)
    full = hi - lo - 1
    if len(r) < full:
        r = np.concatenate([r, np.zeros(full - len(r))])
    # Daily returns of the equity curve (close of each UTC day), for the DSR.
    days = data.day_index()[lo : lo + len(equity)]
    last_of_day = np.flatnonzero(np.diff(days)) if len(days) > 1 else np.empty(0, int)
    daily_eq = np.concatenate([equity[last_of_day], equity[-1:]])
    daily = moments_of(returns_of(daily_eq))
    return {
        **{k: float(v) for k, v in metrics.items()},
        "num_trades": int(metrics["num_trades"]),
        "sr": daily["sr"],
        "days": int(daily["n"]),
        "skew": daily["skew"],
        "kurt": daily["kurt"],
        "bars": int(len(equity)),
        "halted": sim.halted is not None,
        "blocks": block_moments(r, base.blocks),
    }


def replay(
    bot: Bot,
    base: TrialBase,
    data: WindowData,
    params: dict[str, Any],
    lo: int,
    hi: int,
    warmup: int = 0,
) -> BacktestResult:
    """Run one trial again with full detail: equity, fills, trades and orders.

    Parameters
    ----------
    bot : Bot
        The bot with the trial's parameters applied (for the result's ``bot``).
    base, data, params, lo, hi, warmup
        As for :func:`run_trial`.

    Returns
    -------
    BacktestResult
        Not stored in the ledger; its metrics equal the trial's.
    """
    from alphaswarm.research.backtest import run_result

    t0 = time.perf_counter()
    sim = _simulate(base, data, params, lo, hi, warmup)
    elapsed = time.perf_counter() - t0
    return run_result(
        bot,
        sim,
        data.periods_per_year,
        config={
            "feed": data.fingerprint,
            "window": data.window,
            "slice": [lo, hi, warmup],
            "spec_hash": bot.spec_hash,
            "starting_cash": base.starting_cash,
        },
        bars=sim.bars_seen,
        elapsed=elapsed,
        halted=sim.halted.to_dict() if sim.halted else None,
        price_source=data.feed(max(lo - warmup, 0), hi).frame,
    )


def run_batch(
    base: TrialBase, data: DataRef | WindowData, trials: list[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """Run a batch of trials (the body of one Dask task, or of one serial step).

    Parameters
    ----------
    base : TrialBase
        Spec and strategy shared by the trials.
    data : DataRef or WindowData
        The data window by reference (loaded and cached here) or in memory.
    trials : list of (key, params, lo, hi, warmup)
        The trials.

    Returns
    -------
    list of dict
        One row per trial: ``key``, ``status`` (``done`` or ``failed``), ``error``,
        ``metrics`` (a dict, see :func:`run_trial`) and ``elapsed`` seconds.
        A trial that raises is a ``failed`` row, not a failed task.
    """
    window = load_window(data)
    rows = []
    for key, params, lo, hi, warmup in trials:
        t0 = time.perf_counter()
        try:
            metrics = run_trial(base, window, params, lo, hi, warmup)
            row = {"key": key, "status": "done", "error": None, "metrics": metrics}
        except Exception as exc:  # noqa: BLE001 - recorded as a failed trial
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            row = {"key": key, "status": "failed", "error": tb, "metrics": None}
        row["elapsed"] = time.perf_counter() - t0
        rows.append(row)
    return rows
