"""The vectorized backtest path against the event loop: identical results, or a fallback.

Every comparison is exact: the same fills (ids, times, sides, quantities, prices,
commissions, slippage), orders, equity and cash curves, trades, metrics, halts and
bar counts. The arithmetic replicas behind ``signals()`` are compared with the
strategies' own running state, bar by bar and bit for bit.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alphaswarm import Bot
from alphaswarm.backtest import backtest
from alphaswarm.data import ReplayFeed, SyntheticFeed
from alphaswarm.data.base import Block, Feed
from alphaswarm.engine.broker import SimulatedBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.engine.vectorized import ineligible, run_vectorized
from alphaswarm.model import Bar, ModelError
from alphaswarm.strategies import SIGNALS, BuyAndHold, MeanReversion, SmaCross, Strategy, builtin
from alphaswarm.strategies import vectorized as vec
from alphaswarm.strategies.base import SIGNAL_CODES

if TYPE_CHECKING:
    from collections.abc import Iterator

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


# ----------------------------------------------------------------------------- helpers


def closes_of(kind: str, seed: int, n: int) -> np.ndarray:
    """Close series that stress the replicas: random walks, exact ties, tiny moves."""
    rng = np.random.default_rng(seed)
    if kind == "walk":
        return 100.0 * np.exp(np.cumsum(rng.standard_normal(n) * 0.01))
    if kind == "wild":  # magnitudes from 1e-3 to 1e6: rounding differs at every step
        return np.exp(rng.uniform(math.log(1e-3), math.log(1e6), n))
    if kind == "flat":  # equal SMAs and zero variance
        return np.full(n, 42.125)
    if kind == "steps":  # a few exact levels: frequent equal windows
        return rng.choice([99.5, 100.0, 100.5], n)
    return 100.0 + np.cumsum(rng.choice([-1e-12, 0.0, 1e-12], n))  # near-ties


def on_bar_codes(strategy: Strategy, close: np.ndarray) -> np.ndarray:
    """Run ``on_bar`` over ``close`` and encode what it returns."""
    out = np.zeros(len(close), np.int8)
    for i, c in enumerate(close.tolist()):
        signal = strategy.on_bar(Bar.trusted("X", T0, c, c, c, c, 0.0), None)  # type: ignore[arg-type]
        if signal is not None:
            out[i] = SIGNAL_CODES[signal]
    return out


@contextmanager
def resync(every: int) -> Iterator[None]:
    """Set the resync period of ``on_bar`` and of the replicas together."""
    saved = builtin._RESYNC_EVERY, vec.RESYNC_EVERY
    builtin._RESYNC_EVERY = vec.RESYNC_EVERY = every
    try:
        yield
    finally:
        builtin._RESYNC_EVERY, vec.RESYNC_EVERY = saved


def assert_same(a: Any, b: Any) -> None:
    """Two BacktestResults with identical content (the path they took aside)."""
    pd.testing.assert_frame_equal(a.equity, b.equity, check_exact=True)
    pd.testing.assert_frame_equal(a.fills, b.fills, check_exact=True)
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    assert a.metrics == b.metrics
    assert a.halted == b.halted
    assert a.bars == b.bars


def both(bot: Bot, feed: Feed, cash: float = 100_000.0) -> tuple[Any, Any]:
    vector = backtest(bot, feed=feed, store=False, starting_cash=cash, engine="vector")
    event = backtest(bot, feed=feed, store=False, starting_cash=cash, engine="event")
    assert vector.config["engine"] == "vector" and vector.config["engine_fallback"] is None
    assert event.config["engine"] == "event"
    assert_same(vector, event)
    return vector, event


def holes_feed(symbols: list[str], seed: int, bars: int, drop: float) -> ReplayFeed:
    """Minute bars with a share of (symbol, time) bars missing: groups differ in size."""
    frame = SyntheticFeed(symbols, seed=seed, bars=bars, volatility=1.5).frame()
    keep = np.random.default_rng(seed).random(len(frame)) >= drop
    keep[: len(symbols)] = True  # every symbol appears
    return ReplayFeed(frame[keep], interval="1m")


def sma_bot(**over: Any) -> Bot:
    spec: dict[str, Any] = {
        "name": "vec-test",
        "strategy": "sma_cross",
        "params": {"fast": 3, "slow": 9, "qty": 10},
        "universe": ["AAA"],
    }
    spec.update(over)
    return Bot(spec)


# ----------------------------------------------------------------------------- replicas

kinds = st.sampled_from(["walk", "wild", "flat", "steps", "ties"])


@SETTINGS
@given(
    kind=kinds,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    windows=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    every=st.integers(1, 60),
)
def test_running_sums_equal_sma_cross_state_bit_for_bit(kind, seed, n, windows, every):
    fast, slow = min(windows), max(windows) + 1
    close = closes_of(kind, seed, n)
    strategy = SmaCross(fast=fast, slow=slow)
    sf, ss = [], []
    with resync(every):
        for c in close.tolist():
            strategy.on_bar(Bar.trusted("X", T0, c, c, c, c, 0.0), None)  # type: ignore[arg-type]
            state = strategy._state["X"]
            sf.append(state[2])
            ss.append(state[3])
        assert vec.running_sums(close, fast).tolist() == sf
        assert vec.running_sums(close, slow).tolist() == ss


@SETTINGS
@given(
    kind=kinds,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    window=st.integers(1, 40),
    every=st.integers(1, 60),
)
def test_window_sums_equal_mean_reversion_window_bit_for_bit(kind, seed, n, window, every):
    close = closes_of(kind, seed, n)
    win = builtin._Window(window)
    sums, squares = [], []
    with resync(every):
        for c in close.tolist():
            win.push(c)
            sums.append(win.sum)
            squares.append(win.sumsq)
        got_sums, got_squares = vec.window_sums(close, window)
    assert got_sums.tolist() == sums
    assert got_squares.tolist() == squares


strategies_and_params = st.one_of(
    st.tuples(st.integers(1, 25), st.integers(1, 40)).map(
        lambda w: SmaCross(fast=min(w), slow=max(w) + 1)
    ),
    st.builds(
        lambda window, entry, exit_, short: MeanReversion(
            window=window, entry_z=entry, exit_z=exit_, short=short
        ),
        st.integers(2, 40),
        st.sampled_from([0.5, 1, 1.5, 2.0, 3.0]),
        st.sampled_from([0, 0.0, 0.25, 0.45]),
        st.booleans(),
    ),
    st.just(BuyAndHold()),
)


@SETTINGS
@given(
    strategy=strategies_and_params,
    kind=kinds,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 600),
    every=st.sampled_from([3, 17, 10_000]),
)
def test_signals_equal_on_bar(strategy, kind, seed, n, every):
    close = closes_of(kind, seed, n)
    ref, fresh = (type(strategy)(**strategy.params) for _ in range(2))  # no state carried over
    with resync(every):
        assert fresh.signals(close).tolist() == on_bar_codes(ref, close).tolist()


@pytest.mark.parametrize(
    "strategy",
    [SmaCross(fast=20, slow=50), SmaCross(fast=1, slow=2), MeanReversion(window=20, short=True)],
    ids=["sma-20-50", "sma-1-2", "mr-20-short"],
)
def test_signals_equal_on_bar_across_real_resyncs(strategy):
    close = SyntheticFeed(["X"], seed=11, bars=35_000).frame()["close"].to_numpy()
    ref, fresh = (type(strategy)(**strategy.params) for _ in range(2))
    codes = fresh.signals(close)
    assert codes.tolist() == on_bar_codes(ref, close).tolist()
    assert np.count_nonzero(codes) > 10


# ----------------------------------------------------------------------------- backtests

broker_blocks = st.fixed_dictionaries(
    {},
    optional={
        "slippage_bps": st.sampled_from([0.5, 10.0]),
        "commission_per_share": st.sampled_from([0.005, 0.5]),
        "commission_bps": st.sampled_from([1.0, 20.0]),
        "commission_min": st.sampled_from([1.0]),
        "min_commission_per": st.sampled_from(["order", "fill"]),
        "allow_short": st.booleans(),
        "max_participation": st.sampled_from([0.0005, 0.01, 0.5]),
        "allow_margin": st.booleans(),
    },
)
PRE_TRADE = {
    "max_order_qty": [5, 60, 1000],
    "max_order_notional": [2_000, 100_000],
    "max_position_qty": [8, 150],
    "max_position_notional": [3_000, 60_000],
    "max_position_pct": [0.05, 0.6],
    "max_gross_exposure": [0.25, 1.0, 3.0],
    "max_concentration_pct": [0.3, 0.8],
    "max_orders_per_minute": [1, 3],
}
ACCOUNT = {
    "max_drawdown_pct": [0.001, 0.01, 0.05],
    "max_daily_loss": [10, 300],
    "max_daily_loss_pct": [0.0005, 0.01],
}


@st.composite
def risk_blocks(draw: Any, halting: bool = False) -> dict[str, Any]:
    """Up to two pre-trade limits (denials) and up to one account limit (halts).

    With ``halting`` there is always an account limit and at most one pre-trade one.
    """
    risk: dict[str, Any] = {}
    for pool, least, most in ((PRE_TRADE, 0, 1 if halting else 2), (ACCOUNT, int(halting), 1)):
        keys = st.lists(st.sampled_from(sorted(pool)), min_size=least, max_size=most, unique=True)
        for key in draw(keys):
            risk[key] = draw(st.sampled_from(pool[key]))
    risk["on_breach"] = draw(st.sampled_from(["flatten", "hold"]))
    return risk


@st.composite
def bots(draw: Any, symbols: list[str], halting: bool = False) -> Bot:
    name = draw(st.sampled_from(["sma_cross", "mean_reversion", "buy_and_hold"]))
    if name == "sma_cross":
        fast = draw(st.integers(1, 12))
        params: dict[str, Any] = {"fast": fast, "slow": fast + draw(st.integers(1, 25))}
    elif name == "mean_reversion":
        params = {
            "window": draw(st.integers(2, 30)),
            "entry_z": draw(st.sampled_from([0.5, 1.0, 2.0])),
            "exit_z": draw(st.sampled_from([0.0, 0.3])),
            "short": draw(st.booleans()),
        }
    else:
        params = {}
    if draw(st.booleans()):
        params["qty"] = draw(st.sampled_from([1, 7, 100, 2.5]))
    else:
        params["allocation"] = draw(st.sampled_from([0.1, 0.5, 2.0]))
    return Bot(
        name="vec-prop",
        strategy=name,
        params=params,
        universe=symbols,
        broker=draw(broker_blocks),
        risk=draw(risk_blocks(halting)),
    )


@st.composite
def feeds(draw: Any, symbols: list[str]) -> Feed:
    kind = draw(st.sampled_from(["minute", "daily", "hourly-24x7", "holes"]))
    seed = draw(st.integers(0, 10**6))
    bars = draw(st.integers(30, 900))
    vol = draw(st.sampled_from([0.3, 1.5, 4.0]))
    if kind == "minute":
        return SyntheticFeed(symbols, seed=seed, bars=bars, volatility=vol)
    if kind == "daily":
        return SyntheticFeed(symbols, seed=seed, bars=bars, interval="1d", volatility=vol)
    if kind == "hourly-24x7":
        return SyntheticFeed(
            symbols, seed=seed, bars=bars, interval="1h", calendar="24x7", volatility=vol
        )
    return holes_feed(symbols, seed, bars, draw(st.sampled_from([0.1, 0.5])))


@st.composite
def scenarios(draw: Any, halting: bool = False) -> tuple[Bot, Feed, float]:
    symbols = list(SYMBOLS[: draw(st.sampled_from([1, 2, 4]))])
    cash = draw(st.sampled_from([1_500.0, 100_000.0, 10_000_000.0]))
    return draw(bots(symbols, halting)), draw(feeds(symbols)), cash


@SETTINGS
@given(scenario=scenarios())
def test_vector_and_event_backtests_are_identical(scenario):
    bot, feed, cash = scenario
    vector, _ = both(bot, feed, cash)
    event(f"halted: {vector.halted is not None}")
    event(f"fills: {'none' if vector.fills.empty else 'some'}")
    statuses = set(vector.orders["status"]) if len(vector.orders) else set()
    event(f"orders cancelled or rejected: {bool(statuses & {'cancelled', 'rejected'})}")


@SETTINGS
@given(scenario=scenarios(halting=True))
def test_vector_and_event_backtests_are_identical_under_account_limits(scenario):
    bot, feed, cash = scenario
    vector, _ = both(bot, feed, cash)
    event(f"halted: {vector.halted is not None}")


def event_engine(make: Any, feed: Feed) -> Engine:
    engine = make()
    for group in feed.groups():
        engine.step(group)
        if engine.halted is not None:
            break
    engine.finish()
    return engine


@settings(SETTINGS, max_examples=30)
@given(scenario=scenarios())
def test_engine_state_is_identical_denials_and_risk_events_included(scenario):
    bot, feed, cash = scenario

    def make() -> Engine:
        broker = SimulatedBroker(cash, bot.broker_config())
        return Engine(bot.make_strategy(), broker, bot.risk_limits())

    ref = event_engine(make, feed)
    run = run_vectorized(make, feed.arrays())
    got = run.engine
    assert got.risk_events == ref.risk_events
    for counter in ("requests_denied", "orders_submitted", "signals", "bars_seen"):
        assert getattr(got, counter) == getattr(ref, counter), counter
    assert got.bars_in_market == ref.bars_in_market
    assert [f.to_dict() for f in got.broker.fills] == [f.to_dict() for f in ref.broker.fills]
    assert got.broker.cash == ref.broker.cash
    assert got.broker.realized_pnl == ref.broker.realized_pnl
    assert run.equity.tolist() == ref.equity_values
    assert run.cash.tolist() == ref.cash_values
    assert (run.halted is None) == (ref.halted is None)


# ----------------------------------------------------------------------------- paths


def test_halt_mid_run_flattens_at_the_breaching_bar():
    bot = sma_bot(
        params={"fast": 2, "slow": 5, "qty": 500},
        broker={"commission_per_share": 0.01, "slippage_bps": 5},
        risk={"max_drawdown_pct": 0.003},
    )
    vector, _ = both(bot, SyntheticFeed(["AAA"], seed=5, bars=3_000, volatility=1.0))
    assert vector.halted is not None and vector.halted["limit"] == "max_drawdown_pct"
    assert 0 < vector.bars < 3_000 and len(vector.equity) == vector.bars
    last = vector.fills.iloc[-1]
    assert last["filled_at"] == vector.equity.index[-1]  # the flatten fill, at the halt bar
    assert vector.equity["equity"].iloc[-1] == vector.equity["cash"].iloc[-1]


def test_halt_with_hold_keeps_the_position_and_cancels_the_open_order():
    bot = sma_bot(
        params={"fast": 2, "slow": 4, "qty": 800},
        universe=["AAA", "BBB"],
        risk={"max_daily_loss": 40, "on_breach": "hold"},
    )
    vector, _ = both(bot, SyntheticFeed(["AAA", "BBB"], seed=2, bars=2_000, volatility=2.0))
    assert vector.halted is not None and vector.halted["limit"] == "max_daily_loss"
    assert vector.equity["equity"].iloc[-1] != vector.equity["cash"].iloc[-1]


def test_daily_loss_pct_halts_on_daily_bars():
    bot = sma_bot(
        params={"fast": 2, "slow": 3, "allocation": 3.0},
        risk={"max_daily_loss_pct": 0.01},
        broker={"allow_margin": True},
    )
    vector, _ = both(bot, SyntheticFeed(["AAA"], seed=9, bars=400, interval="1d", volatility=0.6))
    assert vector.halted is not None and vector.halted["limit"] == "max_daily_loss_pct"


@pytest.mark.parametrize(
    ("limit", "threshold"), [("max_daily_loss", 1_000.0), ("max_drawdown_pct", 0.01)]
)
def test_a_value_equal_to_the_limit_does_not_halt(limit, threshold):
    # qty 100 bought at 100 on day 1; day 2 closes at 95, 90 (loss = 1,000 = 1 % exactly), 85
    closes = [100, 100, 100, 95, 90, 85, 85]
    days = [0, 0, 0, 1, 1, 1, 1]
    frame = pd.DataFrame(
        {
            "ts": [T0 + timedelta(days=d, minutes=i) for i, d in enumerate(days)],
            "symbol": "AAA",
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
        }
    )
    bot = sma_bot(strategy="buy_and_hold", params={"qty": 100}, risk={limit: threshold})
    vector, _ = both(bot, ReplayFeed(frame, interval="1m"))
    assert vector.halted is not None and vector.halted["limit"] == limit
    assert vector.equity.index[-1] == T0 + timedelta(days=1, minutes=5)  # at 85, not 90


def test_risk_denials_are_the_same():
    bot = sma_bot(
        params={"fast": 2, "slow": 5, "qty": 30},
        universe=["AAA", "BBB"],
        risk={"max_position_qty": 20, "max_orders_per_minute": 1},
    )
    feed = SyntheticFeed(["AAA", "BBB"], seed=4, bars=600)

    def make() -> Engine:
        return Engine(bot.make_strategy(), SimulatedBroker(1e5), bot.risk_limits())

    run = run_vectorized(make, feed.arrays())
    assert run.engine.requests_denied > 0 and len(run.engine.broker.fills) == 0
    assert run.engine.risk_events == event_engine(make, feed).risk_events
    both(bot, feed)


def test_rate_limit_denies_some_orders_only():
    bot = sma_bot(
        params={"fast": 1, "slow": 2, "qty": 5},
        universe=list(SYMBOLS),
        risk={"max_orders_per_minute": 2},
    )
    vector, _ = both(bot, SyntheticFeed(list(SYMBOLS), seed=1, bars=500))
    assert len(vector.fills) > 0


def test_partial_fills_under_a_volume_cap():
    bot = sma_bot(params={"fast": 3, "slow": 8, "qty": 50_000}, broker={"max_participation": 0.2})
    vector, _ = both(bot, SyntheticFeed(["AAA"], seed=3, bars=1_500), cash=1e9)
    assert (vector.fills.groupby("order_id").size() > 1).any()


def test_cash_rule_reduces_buys_and_cancels_the_rest():
    bot = sma_bot(
        strategy="mean_reversion",
        params={"window": 5, "entry_z": 1.0, "exit_z": 0.0, "short": True, "qty": 40},
        broker={"commission_min": 1.0},
    )
    vector, _ = both(bot, SyntheticFeed(["AAA"], seed=8, bars=1_500), cash=3_000.0)
    cut = vector.orders[vector.orders["reason_code"] == "insufficient_cash"]
    assert len(cut) > 0 and (cut["filled_qty"] > 0).all() and (cut["filled_qty"] < 40).all()


def test_shorts_flattened_on_a_halt():
    bot = sma_bot(
        strategy="mean_reversion",
        params={"window": 8, "entry_z": 1.0, "exit_z": 0.0, "short": True, "qty": 300},
        broker={"allow_short": True, "slippage_bps": 3},
        risk={"max_drawdown_pct": 0.004},
    )
    vector, _ = both(bot, SyntheticFeed(["AAA"], seed=21, bars=4_000, volatility=1.5))
    assert vector.halted is not None
    assert (vector.trades["direction"] == "short").any()


def test_missing_bars_and_day_expiry():
    ts = [T0 + timedelta(minutes=i) for i in range(6)] + [
        T0 + timedelta(days=1, minutes=i) for i in range(6)
    ]
    rows = []
    closes = [10, 10, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    for i, (t, c) in enumerate(zip(ts, closes, strict=True)):
        rows.append({"ts": t, "symbol": "AAA", "open": c, "high": c, "low": c, "close": c})
        if i not in (5, 6, 7):  # BBB misses the last bar of day 1 and the first two of day 2
            rows.append({"ts": t, "symbol": "BBB", "open": c, "high": c, "low": c, "close": c})
    feed = ReplayFeed(pd.DataFrame(rows), interval="1m")
    bot = Bot(
        name="holes",
        strategy="buy_and_hold",
        params={"qty": 1},
        universe=["AAA", "BBB"],
    )
    vector, _ = both(bot, feed)
    assert len(vector.fills) == 2
    # an order placed on BBB's last bar of a day, with no BBB bar until the next day, expires
    late = pd.DataFrame(rows)
    late = late[~((late["symbol"] == "BBB") & (late["ts"] < ts[4]))]
    vector, _ = both(bot, ReplayFeed(late, interval="1m"))
    assert "day_expired" in set(vector.orders["reason_code"])


@pytest.mark.parametrize("drop", [0.2, 0.7])
def test_unaligned_symbols(drop):
    bot = sma_bot(
        params={"fast": 2, "slow": 6, "allocation": 0.3},
        universe=list(SYMBOLS),
        broker={"commission_bps": 2},
        risk={"max_gross_exposure": 1.0, "max_drawdown_pct": 0.05},
    )
    both(bot, holes_feed(list(SYMBOLS), seed=13, bars=1_200, drop=drop))


def test_sample_feed_is_vectorized():
    bot = Bot(
        name="sample",
        strategy="sma_cross",
        params={"fast": 10, "slow": 40, "qty": 10},
        universe=["AAPL", "GOOG"],
        data={"feed": "sample"},
    )
    vector = backtest(bot, store=False)
    event = backtest(bot, store=False, engine="event")
    assert vector.config["engine"] == "vector"
    assert_same(vector, event)


def test_auto_picks_vector_and_records_it():
    result = backtest(sma_bot(), bars=500, store=False)
    assert result.config["engine"] == "vector" and result.config["engine_fallback"] is None


# ----------------------------------------------------------------------------- fallback


class Custom(Strategy):
    """A user strategy with no vectorized form."""

    name: ClassVar[str] = "custom"
    uses_history: ClassVar[bool] = False

    def on_bar(self, bar: Bar, ctx: Any) -> str | None:
        return "buy" if bar.close > 100 else None


class SizedSma(SmaCross):
    def size(self, bar: Bar, ctx: Any) -> float:
        return 3.0


class PatchedSma(SmaCross):
    def on_bar(self, bar: Bar, ctx: Any) -> str | None:
        return super().on_bar(bar, ctx)


class HistorySma(SmaCross):
    uses_history: ClassVar[bool] = True


class FilledSma(SmaCross):
    def on_fill(self, fill: Any, ctx: Any) -> None:
        ctx.flat()


class Wrong(SmaCross):
    def signals(self, close: np.ndarray) -> np.ndarray:
        return np.zeros(len(close) + 1, np.int8)

    def on_bar(self, bar: Bar, ctx: Any) -> str | None:
        return super().on_bar(bar, ctx)


@pytest.mark.parametrize(
    ("cls", "words"),
    [
        (Custom, "no vectorized form"),
        (SizedSma, "overrides size()"),
        (PatchedSma, "overrides on_bar() or signals()"),
        (HistorySma, "bar history"),
        (FilledSma, "overrides on_fill()"),
    ],
)
def test_ineligible_strategies_fall_back_and_vector_says_why(cls, words):
    bot = sma_bot(strategy=cls, params={"qty": 5} if cls is Custom else {"fast": 2, "slow": 5})
    feed = SyntheticFeed(["AAA"], seed=1, bars=300)
    auto = backtest(bot, feed=feed, store=False)
    assert auto.config["engine"] == "event" and words in auto.config["engine_fallback"]
    message = (
        f"vectorized path cannot run this backtest: strategy {cls.__name__}.*{re.escape(words)}"
    )
    with pytest.raises(ModelError, match=message):
        backtest(bot, feed=feed, store=False, engine="vector")
    assert_same(auto, backtest(bot, feed=feed, store=False, engine="event"))


def test_instance_patch_is_ineligible():
    strategy = SmaCross(fast=2, slow=5)
    strategy.on_bar = lambda bar, ctx: None  # type: ignore[method-assign]
    assert "instance-level on_bar" in ineligible(strategy, SyntheticFeed(["A"], bars=10))


class ListFeed(Feed):
    """A feed with its own delivery: no arrays."""

    kind = "list"

    def __init__(self, inner: Feed) -> None:
        super().__init__(inner.symbols, inner.interval, inner.calendar)
        self.inner = inner

    def _blocks(self, start: int | None, end: int | None) -> Any:
        yield from self.inner._blocks(start, end)

    def fingerprint(self) -> str:
        return "list"


def test_feed_without_arrays_falls_back():
    feed = ListFeed(SyntheticFeed(["AAA"], seed=1, bars=300))
    auto = backtest(sma_bot(), feed=feed, store=False)
    assert auto.config["engine"] == "event" and "ListFeed" in auto.config["engine_fallback"]
    with pytest.raises(ModelError, match="ListFeed does not serve its bars as arrays"):
        backtest(sma_bot(), feed=feed, store=False, engine="vector")


def test_nanosecond_timestamps_fall_back():
    frame = SyntheticFeed(["AAA"], seed=1, bars=50).frame()
    frame["ts"] = frame["ts"] + pd.Timedelta(1, "ns")
    auto = backtest(sma_bot(), feed=ReplayFeed(frame, interval="1m"), store=False)
    assert auto.config["engine"] == "event" and "microsecond" in auto.config["engine_fallback"]


def test_bad_engine_and_bad_signals_are_named():
    with pytest.raises(ModelError, match="engine: 'fast' is not one of auto, vector, event"):
        backtest(sma_bot(), bars=10, store=False, engine="fast")
    with pytest.raises(ModelError, match="signals\\(\\) must return one integer code per bar"):
        backtest(sma_bot(strategy=Wrong), bars=100, store=False)


def test_empty_range_is_named_on_both_paths():
    feed = SyntheticFeed(["AAA"], seed=1, bars=100)
    for engine in ("vector", "event"):
        with pytest.raises(ModelError, match="no bars for that range"):
            backtest(sma_bot(), feed=feed, start="2030-01-01", store=False, engine=engine)


def test_signal_codes_follow_signals():
    assert [SIGNALS[c - 1] for c in SIGNAL_CODES.values()] == list(SIGNALS)


def test_block_helpers_unchanged():  # the arrays path reads the same blocks as groups()
    feed = SyntheticFeed(["AAA", "BBB"], seed=2, bars=10)
    block = Block.concat(list(feed._read(None, None, None)))
    arrays = feed.arrays()
    assert arrays.n_bars == len(block) == 20
    assert arrays.symbols[1].close.tolist() == block.close[1::2].tolist()


# ----------------------------------------------------------------------------- sweeps


@pytest.mark.parametrize(
    ("params", "lo", "hi", "warmup"),
    [({"fast": 3, "slow": 8}, 0, 900, 0), ({"fast": 2, "slow": 5}, 150, 700, 100)],
)
def test_sweep_trials_run_vectorized_with_the_same_results(params, lo, hi, warmup):
    from dataclasses import replace

    from alphaswarm.sweep.trials import TrialBase, WindowData, _simulate, replay, run_trial

    bot = Bot(
        name="vec-sweep",
        strategy="sma_cross",
        params={"fast": 5, "slow": 20, "allocation": 0.4},
        universe=["AAA", "BBB"],
        broker={"commission_per_share": 0.01},
        risk={"max_drawdown_pct": 0.03, "max_position_pct": 0.45},
    )
    data = WindowData.from_feed(SyntheticFeed(["AAA", "BBB"], seed=6, bars=900, volatility=1.2))
    base = TrialBase(bot.spec, bot.strategy_class())
    event_base = replace(base, engine="event")
    assert _simulate(base, data, params, lo, hi, warmup).path == "vector"
    assert _simulate(event_base, data, params, lo, hi, warmup).path == "event"
    row = run_trial(base, data, params, lo, hi, warmup)
    assert repr(sorted(row.items())) == repr(
        sorted(run_trial(event_base, data, params, lo, hi, warmup).items())
    )
    assert row["num_trades"] > 0
    assert_same(
        replay(bot, base, data, params, lo, hi, warmup),
        replay(bot, event_base, data, params, lo, hi, warmup),
    )
