"""The vectorized backtest path: array signals, the engine's own objects at events only.

:class:`~alphaswarm.engine.loop.Engine` walks every bar. When the strategy
declares ``signals(close)`` (its ``on_bar`` decisions as an array, see
:mod:`alphaswarm.strategies.vectorized`) and the feed serves arrays
(:meth:`~alphaswarm.data.base.Feed.arrays`), most bars do nothing: no signal, no
open order. This path visits only the bars where something happens:

* a bar with a signal: the *same* ``Engine._on_signal`` runs (sizing, target
  position, pre-trade :meth:`~alphaswarm.risk.limits.RiskLimits.check_order` on the
  engine's :class:`~alphaswarm.risk.limits.AccountState`, ``SimulatedBroker.submit``),
  after the account has been brought to that bar (marks, equity, cash, time);
* every bar while the broker holds open orders: the same ``begin_bar`` /
  ``process_bar`` calls the engine makes, so fills, prices, commission, slippage,
  volume caps, cash and short-selling rules and day-order expiry are the broker's;
* everything else -- marks, the equity and cash curves, exposure -- is computed
  with numpy from the fill log, adding position values in the engine's order so
  every float is identical;
* post-bar account limits (drawdown, daily loss) are evaluated over the curve; at
  the first breaching bar the run is replayed up to that bar on fresh objects and
  ``Engine.halt`` applied there (cancel, flatten or hold), as the event loop does.

Nothing is approximated: what cannot be reproduced exactly is refused by
:func:`ineligible` and runs on the event engine instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaswarm.model import Bar, ModelError
from alphaswarm.strategies.base import SIGNALS, Strategy

if TYPE_CHECKING:
    from collections.abc import Callable

    from alphaswarm.data.base import Feed, FeedArrays, SymbolArrays
    from alphaswarm.engine.loop import Engine
    from alphaswarm.risk.limits import RiskDecision

__all__ = ["VectorRun", "ineligible", "run_vectorized", "unsupported_arrays"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_NS = 86_400 * 10**9
#: Hooks a vectorized strategy must inherit unchanged from Strategy.
_BASE_HOOKS = ("size", "on_fill", "on_start", "on_stop")
#: Groups per halt-check chunk: starts small (an early halt replays little), doubles.
_FIRST_CHUNK, _MAX_CHUNK = 2_048, 1 << 17


def _owner(cls: type, name: str) -> type | None:
    return next((k for k in cls.__mro__ if name in vars(k)), None)


def ineligible(strategy: Strategy, feed: Feed) -> str | None:
    """Why a run cannot take the vectorized path, or ``None`` when it can.

    Parameters
    ----------
    strategy : Strategy
        The strategy instance of the run.
    feed : Feed
        The feed the run reads.

    Returns
    -------
    str or None
        A readable reason (for errors and ``result.config``), or ``None``.
    """
    cls = type(strategy)
    name = cls.__name__ if not strategy.name else f"{cls.__name__} ({strategy.name})"
    if not callable(getattr(cls, "signals", None)):
        return f"strategy {name} has no vectorized form (a signals(close) method)"
    if _owner(cls, "signals") is not _owner(cls, "on_bar"):
        return f"strategy {name} overrides on_bar() or signals() without the other"
    overridden = [h for h in _BASE_HOOKS if getattr(cls, h) is not getattr(Strategy, h)]
    if overridden:
        return f"strategy {name} overrides {', '.join(h + '()' for h in overridden)}"
    patched = sorted({"signals", "on_bar", *_BASE_HOOKS} & set(vars(strategy)))
    if patched:
        return f"strategy {name} has instance-level {', '.join(patched)}"
    if getattr(strategy, "uses_history", True):
        return f"strategy {name} reads bar history (uses_history)"
    if not getattr(feed, "supports_arrays", False):
        return f"feed {type(feed).__name__} does not serve its bars as arrays"
    return None


def unsupported_arrays(arrays: FeedArrays) -> str | None:
    """Why these bars cannot take the vectorized path (``None`` when they can)."""
    if len(arrays.ts) and bool((arrays.ts % 1000).any()):
        return "bar timestamps finer than a microsecond (datetime cannot hold them)"
    return None


@dataclass
class VectorRun:
    """What a vectorized run produced.

    Attributes
    ----------
    engine : Engine
        The engine whose broker holds every order and fill and whose counters
        (``orders_submitted``, ``requests_denied``, ``risk_events``, ...) are those
        of the run; ``bars_seen`` and ``bars_in_market`` are set. Its ``state`` was
        brought only to the bars where the engine acted: its running peak and
        drawdown fields are not maintained (the curves below are the record), and
        ``equity_values`` stays empty.
    ts : ndarray
        int64 epoch ns of each recorded group (the equity curve's index).
    equity, cash : ndarray
        Equity and cash after each group, as the engine records them.
    bars_in_market : int
        Groups that ended with a position open (before any halt's flatten).
    bars_seen : int
        Bars processed, all symbols together.
    halted : RiskDecision or None
        The account limit that stopped the run.
    """

    engine: Engine
    ts: np.ndarray
    equity: np.ndarray
    cash: np.ndarray
    bars_in_market: int
    bars_seen: int
    halted: RiskDecision | None


def _signal_events(
    strategy: Strategy, symbols: list[SymbolArrays]
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Every signal as (group, symbol index, bar index, code), in engine order."""
    parts = []
    name = strategy.name or type(strategy).__name__
    for j, sa in enumerate(symbols):
        codes = np.asarray(strategy.signals(sa.close))
        if codes.shape != (len(sa),) or codes.dtype.kind not in "iu":
            raise ModelError(
                f"strategy {name!r}: signals() must return one integer code per bar "
                f"({len(sa)}), got {codes.dtype} of shape {codes.shape}"
            )
        bars = np.flatnonzero(codes)
        if len(bars) == 0:
            continue
        code = codes[bars].astype(np.int64)
        if code.min() < 1 or code.max() > len(SIGNALS):
            raise ModelError(
                f"strategy {name!r}: signals() returned a code outside 0..{len(SIGNALS)}"
            )
        parts.append((sa.groups()[bars], np.full(len(bars), j), bars, code))
    if not parts:
        return [], [], [], []
    g, j, b, c = (np.concatenate(p) for p in zip(*parts, strict=True))
    order = np.lexsort((j, g))
    return g[order].tolist(), j[order].tolist(), b[order].tolist(), c[order].tolist()


class _Pass:
    """One walk of the event loop over the groups of ``arrays`` with a fresh engine."""

    def __init__(
        self,
        engine: Engine,
        arrays: FeedArrays,
        events: tuple[list[int], list[int], list[int], list[int]],
        frozen_until: int,
    ) -> None:
        self.engine = engine
        self.broker = engine.broker
        self.arrays = arrays
        self.syms = arrays.symbols
        self.names = [s.symbol for s in self.syms]
        self.index = {s: j for j, s in enumerate(self.names)}
        self.ev_g, self.ev_j, self.ev_b, self.ev_c = events
        self.k = 0  # next signal event
        self.cur = -1  # last group processed
        self.ts_ns = arrays.ts
        self._dt: dict[int, datetime] = {}
        self._bars: dict[int, Bar] = {}  # key: bar index * symbols + symbol index
        self._prebuild()
        self.held: set[int] = set()  # symbols with a position open
        # aligned multi-symbol bars: one row of closes per group, read once per visit
        self.rows = (
            np.column_stack([sa.close for sa in self.syms])
            if len(self.syms) > 1 and arrays.aligned
            else None
        )
        # group lists per unaligned symbol, for bar lookups
        self.glist = [None if s.group is None else s.group for s in self.syms]
        # fill log: cash after each fill group; per symbol, qty after its fill groups
        self.cash_g: list[int] = []
        self.cash_v: list[float] = []
        self.qty_g: list[list[int]] = [[] for _ in self.syms]
        self.qty_v: list[list[float]] = [[] for _ in self.syms]
        if frozen_until > 0:
            engine.order_gate = lambda: "frozen" if engine.bar_index < frozen_until else None
        # the engine creates positions on each symbol's first bar: same dict order here
        first = [int(s.groups()[0]) for s in self.syms]
        for j in sorted(range(len(self.syms)), key=lambda j: (first[j], j)):
            self.broker.mark(self.names[j], float(self.syms[j].close[0]))
        self.order = list(self.broker.positions)  # symbols in position (summation) order
        engine.start()

    # -- bars -----------------------------------------------------------------------
    def _prebuild(self) -> None:
        """Build, in bulk, the bars of every signal and of the bar after it (its fill)."""
        if not self.ev_g:
            return
        ev_j, ev_b = np.asarray(self.ev_j), np.asarray(self.ev_b)
        keys: list[tuple[int, int]] = []
        cols: list[list[list[float]]] = []
        groups: list[np.ndarray] = []
        for j, sa in enumerate(self.syms):
            b = ev_b[ev_j == j]
            if len(b) == 0:
                continue
            b = np.unique(np.concatenate((b, b + 1)))
            b = b[b < len(sa)]
            keys += [(j, i) for i in b.tolist()]
            cols.append([a[b].tolist() for a in (sa.open, sa.high, sa.low, sa.close, sa.volume)])
            groups.append(b if sa.group is None else sa.group[b])
        g = np.concatenate(groups)
        stamps = pd.DatetimeIndex(self.ts_ns[g].view("M8[ns]")).tz_localize(UTC).to_pydatetime()
        dts = self._dt
        dts.update(zip(g.tolist(), stamps, strict=True))
        trusted = Bar.trusted
        names = self.names
        k = len(names)
        o, h, lo, c, v = (list(chain.from_iterable(col[f] for col in cols)) for f in range(5))
        self._bars = {
            i * k + j: trusted(names[j], dts[gg], o[n], h[n], lo[n], c[n], v[n])
            for n, ((j, i), gg) in enumerate(zip(keys, g.tolist(), strict=True))
        }

    def dt(self, g: int) -> datetime:
        """The datetime of group ``g`` (as Feed.groups builds it)."""
        out = self._dt.get(g)
        if out is None:
            out = self._dt[g] = _EPOCH + timedelta(microseconds=int(self.ts_ns[g]) // 1000)
        return out

    def bar_at(self, j: int, g: int) -> int:
        """Index of symbol ``j``'s bar in group ``g`` (-1 when it has none)."""
        grp = self.glist[j]
        if grp is None:
            return g
        i = int(np.searchsorted(grp, g))
        return i if i < len(grp) and grp[i] == g else -1

    def last_bar(self, j: int, g: int) -> int:
        """Index of symbol ``j``'s last bar at or before group ``g`` (-1 when none)."""
        grp = self.glist[j]
        if grp is None:
            return g
        return int(np.searchsorted(grp, g, "right")) - 1

    def make_bar(self, j: int, i: int, g: int) -> Bar:
        """Bar ``i`` of symbol ``j`` (in group ``g``)."""
        bar = self._bars.get(i * len(self.names) + j)
        if bar is not None:
            return bar
        sa = self.syms[j]
        return Bar.trusted(
            sa.symbol,
            self.dt(g),
            float(sa.open[i]),
            float(sa.high[i]),
            float(sa.low[i]),
            float(sa.close[i]),
            float(sa.volume[i]),
        )

    # -- the loop -------------------------------------------------------------------
    def run(self, until: int) -> None:
        """Process every group before ``until`` where something happens."""
        broker = self.broker
        ev_g = self.ev_g
        n_ev = len(ev_g)
        while True:
            nxt = ev_g[self.k] if self.k < n_ev else until
            g = self.cur + 1 if broker.open_orders else nxt
            if g >= until:
                return
            if broker.open_orders:
                self._fills(g)
            if self.k < n_ev and ev_g[self.k] == g:
                self._signals(g)
            self.cur = g

    def _enter(self, g: int) -> None:
        engine = self.engine
        engine.bar_index = g
        engine.last_ts = engine.state.now = self.dt(g)

    def _fills(self, g: int) -> None:
        """What the engine's step does to open orders at group ``g``."""
        engine, broker = self.engine, self.broker
        self._enter(g)
        n_fills = len(broker.fills)
        for event in broker.begin_bar(engine.last_ts):
            engine._on_broker_event(event)
        symbols = {self.index[o.request.symbol] for o in broker.open_orders}
        for j in sorted(symbols):
            i = self.bar_at(j, g)
            if i < 0:
                continue
            for event in broker.process_bar(self.make_bar(j, i, g), g):
                engine._on_broker_event(event)
        if len(broker.fills) > n_fills:
            self.cash_g.append(g)
            self.cash_v.append(broker.cash)
            positions = broker.positions
            for fill in broker.fills[n_fills:]:
                j = self.index[fill.symbol]
                qty = positions[fill.symbol].qty
                qg, qv = self.qty_g[j], self.qty_v[j]
                if qg and qg[-1] == g:
                    qv[-1] = qty
                else:
                    qg.append(g)
                    qv.append(qty)
                if qty:
                    self.held.add(j)
                else:
                    self.held.discard(j)

    def mark(self, g: int, extra: list[int]) -> None:
        """Bring marks and prices to group ``g`` for held symbols and ``extra``."""
        positions, prices = self.broker.positions, self.engine.state.prices
        if self.rows is not None:
            row = self.rows[g].tolist()
            names = self.names
            for j in self.held.union(extra):
                positions[names[j]].last_price = prices[names[j]] = row[j]
            return
        for j in self.held.union(extra):
            i = self.last_bar(j, g)
            if i < 0:
                continue
            close = float(self.syms[j].close[i])
            positions[self.names[j]].last_price = close
            prices[self.names[j]] = close

    def _signals(self, g: int) -> None:
        """The strategy part of the engine's step at group ``g``."""
        engine, broker = self.engine, self.broker
        k0 = k = self.k
        ev_g = self.ev_g
        while k < len(ev_g) and ev_g[k] == g:
            k += 1
        self.k = k
        self._enter(g)
        self.mark(g, self.ev_j[k0:k])
        equity = broker.cash
        for pos in broker.positions.values():
            if pos.qty:
                equity += pos.qty * pos.last_price
        state = engine.state
        state.equity, state.cash = equity, broker.cash
        ctx = engine.ctx
        for e in range(k0, k):
            j = self.ev_j[e]
            bar = self.make_bar(j, self.ev_b[e], g)
            ctx._bar = bar
            engine._on_signal(SIGNALS[self.ev_c[e] - 1], bar)

    # -- curves ---------------------------------------------------------------------
    def curves(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Equity, cash and 'a position is open' over groups ``a .. b - 1``."""
        cash = _step(self.cash_g, self.cash_v, a, b, self.broker.starting_cash)
        equity = cash.copy()
        invested = np.zeros(b - a, bool)
        for name in self.order:
            j = self.index[name]
            if not self.qty_g[j]:
                continue
            qty = _step(self.qty_g[j], self.qty_v[j], a, b, 0.0)
            if not qty.any():
                continue
            sa = self.syms[j]
            if sa.group is None:
                last = np.asarray(sa.close[a:b], dtype=np.float64)
            else:
                i = np.searchsorted(sa.group, np.arange(a, b), "right") - 1
                last = np.where(i >= 0, sa.close[np.maximum(i, 0)], 0.0)
            invested |= qty != 0
            equity += np.multiply(qty, last, out=qty)  # flat: + 0.0 leaves the sum unchanged
        return equity, cash, invested

    def bars_before(self, end: int) -> int:
        """Bars of all symbols in groups ``0 .. end - 1``."""
        return sum(
            min(end, len(s)) if s.group is None else int(np.searchsorted(s.group, end))
            for s in self.syms
        )


def _step(groups: list[int], values: list[float], a: int, b: int, before: float) -> np.ndarray:
    """A step function over groups ``a .. b - 1``: ``values[i]`` from ``groups[i]`` on.

    ``groups`` is increasing without repeats; ``before`` holds before its first entry.
    """
    if not groups:
        return np.full(b - a, before, dtype=np.float64)
    lo, hi = (int(i) for i in np.searchsorted(groups, [a, b]))
    carry = values[lo - 1] if lo > 0 else before  # the value in force at group a
    edges = np.asarray([a, *groups[lo:hi], b], dtype=np.int64)
    return np.repeat(np.asarray([carry, *values[lo:hi]], dtype=np.float64), np.diff(edges))


class _StateLimits:
    """Post-bar account limits (``RiskLimits.check_state``) evaluated over chunks."""

    def __init__(self, engine: Engine, ts: np.ndarray) -> None:
        self.risk = engine.risk
        self.checks = list(engine.risk._state_checks)
        state = engine.state
        self.peak = state.peak_equity
        self.day_start = state.day_start_equity
        self.days = ts // _DAY_NS
        self.prev_equity: float | None = None

    def first_breach(self, a: int, equity: np.ndarray) -> int | None:
        """Index (absolute group) of the first breach in the chunk starting at ``a``."""
        if not self.checks or len(equity) == 0:
            return None
        peak = np.maximum.accumulate(np.maximum(equity, self.peak))
        days = self.days[a : a + len(equity)]
        prev_day = self.days[a - 1] if a > 0 else days[0]
        new_day = days != np.concatenate(([prev_day], days[:-1]))
        # day start: equity of the group before the latest new day, else the carried value
        before = np.concatenate(([np.nan if self.prev_equity is None else self.prev_equity],
                                 equity[:-1]))  # fmt: skip
        pos = np.where(new_day, np.arange(len(equity)), -1)
        pos = np.maximum.accumulate(pos)
        day_start = np.where(pos >= 0, before[np.maximum(pos, 0)], self.day_start)
        breach = np.zeros(len(equity), bool)
        for limit, threshold in self.checks:
            if limit == "max_drawdown_pct":
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = np.where(peak > 0, (peak - equity) / peak, 0.0)
            elif limit == "max_daily_loss":
                value = day_start - equity
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = np.where(day_start > 0, (day_start - equity) / day_start, 0.0)
            breach |= value > threshold
        hit = int(np.argmax(breach)) if breach.any() else -1
        self.peak = float(peak[-1])
        self.day_start = float(day_start[-1])
        self.prev_equity = float(equity[-1])
        if hit < 0:
            return None
        self.peak, self.day_start = float(peak[hit]), float(day_start[hit])
        return a + hit

    def decision(self, engine: Engine, equity: float) -> RiskDecision:
        """The breach ``check_state`` reports on the engine's state at the halting bar."""
        state = engine.state
        state.equity, state.peak_equity, state.day_start_equity = (
            equity,
            self.peak,
            self.day_start,
        )
        decision = self.risk.check_state(state)
        if decision is None:  # pragma: no cover - would mean the replicas diverged
            raise RuntimeError("vectorized backtest: the halting bar does not breach on replay")
        return decision


def run_vectorized(
    make_engine: Callable[[], Engine],
    arrays: FeedArrays,
    *,
    frozen_until: int = 0,
) -> VectorRun:
    """Backtest over arrays; same orders, fills, curve and halt as the event loop.

    Parameters
    ----------
    make_engine : callable
        Returns a fresh :class:`~alphaswarm.engine.loop.Engine` (strategy,
        broker, risk limits) each call; a run that halts is replayed once up to the
        halting bar on a second one.
    arrays : FeedArrays
        The bars (:meth:`~alphaswarm.data.base.Feed.arrays`), at least one group.
    frozen_until : int
        Groups at the start during which every order is refused as ``frozen``
        (a sweep's warm-up; the engine's order gate does the same).

    Returns
    -------
    VectorRun
    """
    engine = make_engine()
    n = len(arrays.ts)
    if n == 0:
        raise ModelError("bars: the feed delivered no bars for that range")
    events = _signal_events(engine.strategy, arrays.symbols)
    run = _Pass(engine, arrays, events, frozen_until)
    limits = _StateLimits(engine, arrays.ts)
    equity_parts: list[np.ndarray] = []
    cash_parts: list[np.ndarray] = []
    in_market = 0
    a, size, halt_at = 0, _FIRST_CHUNK, None
    if not limits.checks:
        size = n
    while a < n and halt_at is None:
        b = min(a + size, n)
        run.run(b)
        eq, ch, invested = run.curves(a, b)
        halt_at = limits.first_breach(a, eq)
        stop = b if halt_at is None else halt_at + 1
        equity_parts.append(eq[: stop - a])
        cash_parts.append(ch[: stop - a])
        in_market += int(invested[: stop - a].sum())
        a, size = stop, min(2 * size, _MAX_CHUNK)
    end = a
    equity = equity_parts[0] if len(equity_parts) == 1 else np.concatenate(equity_parts)
    cash = cash_parts[0] if len(cash_parts) == 1 else np.concatenate(cash_parts)
    del equity_parts, cash_parts
    decision = None
    if halt_at is not None:
        # replay up to the halting bar on fresh objects, then halt as Engine.step does
        engine = make_engine()
        run = _Pass(engine, arrays, events, frozen_until)
        run.run(halt_at + 1)
        run._enter(halt_at)
        decision = limits.decision(engine, float(equity[halt_at]))
        held = sorted(run.held)
        run.mark(halt_at, held)
        for j in held:
            i = run.last_bar(j, halt_at)
            engine.last_bars[run.names[j]] = run.make_bar(j, i, int(run.syms[j].groups()[i]))
        n_fills = len(engine.broker.fills)
        engine.halt(decision)
        if len(engine.broker.fills) > n_fills:  # Engine.flatten rewrites the last point
            equity[halt_at], cash[halt_at] = engine.broker.equity, engine.broker.cash
    engine.finish()
    bars = run.bars_before(end)
    engine.bars_seen, engine.bars_in_market = bars, in_market
    return VectorRun(
        engine=engine,
        ts=arrays.ts[:end],
        equity=equity,
        cash=cash,
        bars_in_market=in_market,
        bars_seen=bars,
        halted=decision,
    )


def describe(reason: str | None) -> dict[str, Any]:
    """``{"engine": ..., "fallback": reason}`` for a result's config."""
    return {"engine": "vector"} if reason is None else {"engine": "event", "fallback": reason}
