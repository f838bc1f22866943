"""Backtests: drive the engine over a bot's feed as fast as the bars come.

``backtest(bot, bars=N)`` or ``backtest(bot, start=..., end=...)`` runs the same
engine a paper session runs, stores a ``backtest_runs`` row in the ledger and
returns a :class:`BacktestResult` with the metrics, the equity curve and the
trades as DataFrames.

Two paths give the same result: the event loop (``Engine.step`` per bar) and, when
the strategy has a vectorized form and the feed serves arrays, the vectorized
path (:mod:`alphaswarm.engine.vectorized`), which visits only the bars with a
signal or an open order. ``engine="auto"`` (the default) takes the vectorized one
whenever it applies.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaswarm.bots import Bot
from alphaswarm.callable_module import make_callable
from alphaswarm.data.base import FeedError, to_ns
from alphaswarm.engine.broker import SimulatedBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.engine.vectorized import (
    ineligible,
    run_vectorized,
    unsupported_arrays,
)
from alphaswarm.metrics import (
    METRIC_BY_NAME,
    drawdown_series,
    format_metric,
    performance,
    round_trips,
    summarize,
)
from alphaswarm.model import ModelError
from alphaswarm.research.tables import fills_frame, orders_frame
from alphaswarm.views import view

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from alphaswarm.data.base import Feed, FeedArrays
    from alphaswarm.ledger import Ledger

#: Bars run when a backtest over an unbounded (synthetic) feed names no size:
#: twenty trading days of one-minute bars.
DEFAULT_BARS = 20 * 390

#: Values of ``backtest(engine=...)``.
ENGINES = ("auto", "vector", "event")


@dataclass
class BacktestResult:
    """What a backtest returns.

    Attributes
    ----------
    id : str
        ``backtest_runs.id`` (``None`` when not stored).
    metrics : dict
        The stored metrics (:data:`~alphaswarm.metrics.STORED_METRICS`): total_return,
        sharpe, sortino, max_drawdown, exposure, num_trades, win_rate.
    equity : DataFrame
        Indexed by bar time: equity, cash, drawdown.
    fills, trades, orders : DataFrame
        Every fill, every FIFO round trip, every order.
    periods_per_year : float, optional
        Bars per year of the feed (annualises the CAGR, Sharpe and Sortino).
    price_source : callable, optional
        Returns the bars of the run (``Feed.frame`` columns); :meth:`prices` calls it
        once, when a plot first needs prices.

    Examples
    --------
    >>> result = aw.backtest(bot, bars=7800)
    >>> result.stats                # return, CAGR, Sharpe, drawdown, trades ...
    >>> result.plot()               # price and trades, equity, drawdown, trade P&L
    >>> result.save("report.html")  # a standalone page that works offline
    """

    id: str | None
    bot: Bot
    bot_id: str | None
    bot_version: int | None
    metrics: dict[str, float]
    equity: pd.DataFrame
    fills: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    bars: int = 0
    elapsed: float = 0.0
    halted: dict[str, Any] | None = None
    periods_per_year: float | None = None
    price_source: Callable[[], pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def sharpe(self) -> float:
        """Annualised Sharpe ratio."""
        return self.metrics["sharpe"]

    @property
    def bars_per_second(self) -> float:
        """Engine throughput of this run."""
        return self.bars / self.elapsed if self.elapsed > 0 else float("inf")

    @cached_property
    def stats(self) -> pd.Series:
        """Every metric of the run, as :func:`alphaswarm.metrics.performance` computes them.

        Start, end, duration, bars, starting/final/peak equity, return, CAGR,
        Sharpe, Sortino, max drawdown and the longest drawdown, exposure, trades,
        win rate, profit factor, best/worst/average trade return, average trade
        P&L and duration. Fractions stay fractions (``0.0128`` is 1.28 %); the
        table in :meth:`plot` formats them.
        """
        ppy = self.periods_per_year
        if ppy is None:
            ppy = self.bot.make_feed().periods_per_year
        return performance(
            self.equity["equity"], self.trades, ppy, float(self.metrics.get("exposure", 0.0))
        )

    def prices(self) -> pd.DataFrame | None:
        """The bars the run traded (``ts, symbol, open, high, low, close, volume``).

        Read once from the run's feed when first asked for (a backtest does not keep
        them while it runs); None when the result has no source of prices.
        """
        if "_prices" not in self.__dict__:
            frame = self.price_source() if self.price_source is not None else None
            if frame is not None and len(frame) and len(self.equity):
                first, last = self.equity.index[0], self.equity.index[-1]
                frame = frame[(frame["ts"] >= first) & (frame["ts"] <= last)]
                frame = frame[frame["symbol"].isin(self.bot.universe)].reset_index(drop=True)
            self.__dict__["_prices"] = frame
        return self.__dict__["_prices"]

    def plot(self, max_candles: int | None = None) -> Any:
        """Price with trades, equity, drawdown, trade P&L and the stats table.

        Parameters
        ----------
        max_candles : int, optional
            Largest number of bars drawn as OHLC candles (default 5,000); a longer
            run gets a close line.

        Returns
        -------
        alphaswarm.ui.backtest_view.BacktestView
            A Panel viewer: it renders in a notebook cell, in ``pn.panel`` layouts
            and in the dashboard.
        """
        params = {} if max_candles is None else {"max_candles": max_candles}
        return view("backtest", self, **params)

    def save(self, path: str | Path, title: str | None = None) -> None:
        """Write :meth:`plot` as a standalone HTML report that works offline.

        Every script and style sheet is inlined, so the file opens without a network.

        Parameters
        ----------
        path : str or Path
            The ``.html`` file to write.
        title : str, optional
            Page title (default: the bot's name and "backtest").
        """
        self.plot().save(path, title=title)

    def __panel__(self) -> Any:
        """The full view (:meth:`plot`), for ``pn.panel(result)`` and the dashboard."""
        return self.plot()

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"BacktestResult(id={self.id!r}, bot={self.bot.name!r}, bars={self.bars}, "
            f"sharpe={m['sharpe']:.2f}, max_drawdown={m['max_drawdown']:.2%}, "
            f"total_return={m['total_return']:.2%}, num_trades={m['num_trades']})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{METRIC_BY_NAME[k].label}</th>"
            f"<td style='text-align:right'>{format_metric(k, v)}</td></tr>"
            for k, v in self.metrics.items()
        )
        return (
            f"<b>Backtest {self.id or ''}</b> of <code>{self.bot.name}</code> over "
            f"{self.bars:,} bars<table>{rows}</table>"
        )


def check_dates(start: Any, end: Any) -> None:
    """Refuse a ``start``/``end`` that is not a date, or a range that ends before it starts.

    Runs before anything else a backtest does, so a bad date is reported as such
    (with the value) instead of as whatever step would have tripped on it later.

    Raises
    ------
    ModelError
        Naming the argument and its value.
    """
    bounds = {}
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        try:
            if isinstance(value, bool):
                raise TypeError(value)
            bounds[name] = to_ns(value, name=name, end=name == "end")
        except (FeedError, ValueError, TypeError, OverflowError):
            raise ModelError(
                f"{name}: {value!r} is not a valid date or timestamp "
                "(use e.g. 2024-01-31 or 2024-01-31T14:30)"
            ) from None
    if len(bounds) == 2 and bounds["start"] > bounds["end"]:
        raise ModelError(f"start/end: start {start!r} is after end {end!r}")


def _read_limit(feed: Feed, bars: int | None, start: Any, end: Any) -> int | None:
    """The number of groups to read (checked), as ``limit=`` of the feed."""
    if bars is not None:
        if isinstance(bars, bool) or not isinstance(bars, int) or bars <= 0:
            raise ModelError(f"bars: expected a whole number > 0, got {bars!r}")
    if bars is None and start is None and end is None and not feed.bounded:
        bars = DEFAULT_BARS
    if not feed.bounded and end is None and bars is None:
        raise ModelError("end: a synthetic feed needs bars= or end= to know when to stop")
    return bars


@dataclass
class _Run:
    """What either path hands over to build the result."""

    broker: SimulatedBroker
    index: pd.DatetimeIndex
    equity: Sequence[float] | np.ndarray
    cash: Sequence[float] | np.ndarray
    bars_in_market: int
    bars: int
    halted: dict[str, Any] | None


def _run_events(engine: Engine, feed: Feed, limit: int | None, start: Any, end: Any) -> _Run:
    # the same groups as ``feed.groups``, from a generator (less per timestamp)
    replay = getattr(feed, "replay_groups", None)
    if replay is not None:
        engine.run(replay(start=start, end=end, limit=limit))
    else:
        engine.run(feed.groups(start=start, end=end, limit=limit))
    engine.finish()
    if not engine.equity_values:
        raise ModelError("bars: the feed delivered no bars for that range")
    return _Run(
        broker=engine.broker,
        index=pd.DatetimeIndex(engine.equity_ts, name="ts"),
        equity=engine.equity_values,
        cash=engine.cash_values,
        bars_in_market=engine.bars_in_market,
        bars=engine.bars_seen,
        halted=engine.halted.to_dict() if engine.halted else None,
    )


def _run_vector(make_engine: Callable[[], Engine], arrays: FeedArrays) -> _Run:
    if len(arrays.ts) == 0:
        raise ModelError("bars: the feed delivered no bars for that range")
    run = run_vectorized(make_engine, arrays)
    index = pd.DatetimeIndex(run.ts.view("M8[ns]"), name="ts").tz_localize("UTC").as_unit("us")
    return _Run(
        broker=run.engine.broker,
        index=index,
        equity=run.equity,
        cash=run.cash,
        bars_in_market=run.bars_in_market,
        bars=run.bars_seen,
        halted=run.halted.to_dict() if run.halted else None,
    )


def _run(
    engine: str,
    bot: Bot,
    feed: Feed,
    make_engine: Callable[[], Engine],
    limit: int | None,
    start: Any,
    end: Any,
) -> tuple[_Run, str | None]:
    """Run the path ``engine`` asks for; the reason the vectorized one was not taken."""
    reason = "engine='event' asked for" if engine == "event" else None
    if reason is None:
        reason = ineligible(bot.make_strategy(), feed)
    arrays = None
    if reason is None:
        arrays = feed.arrays(start=start, end=end, limit=limit)
        reason = unsupported_arrays(arrays)
    if reason is not None and engine == "vector":
        raise ModelError(f"engine: the vectorized path cannot run this backtest: {reason}")
    if reason is None:
        return _run_vector(make_engine, arrays), None
    del arrays  # let it go before the event loop builds its bars
    return _run_events(make_engine(), feed, limit, start, end), reason


def backtest(
    bot: Bot | dict[str, Any] | str | Path,
    bars: int | None = None,
    *,
    start: Any = None,
    end: Any = None,
    starting_cash: float = 100_000.0,
    feed: Feed | None = None,
    ledger: Ledger | None = None,
    store: bool = True,
    engine: str = "auto",
) -> BacktestResult:
    """Backtest a bot over its feed with the one engine.

    Two paths compute the same result -- the same fills, orders (ids included),
    equity curve, metrics and halt. The event path steps the engine bar by bar,
    as a paper session does. The vectorized path takes the strategy's
    ``signals(close)`` arrays and runs the engine's own sizing, risk checks and
    broker only at bars with a signal or an open order, computing the equity
    curve, exposure and account-limit halts with numpy; it is several times
    faster and lighter on memory. ``engine="auto"`` takes it when the strategy
    declares ``signals`` (the built-ins do) without overriding ``size``,
    ``on_fill``, ``on_start`` or ``on_stop``, does not use bar history, and the
    feed serves arrays (synthetic, replay, sample); otherwise the event path
    runs. ``result.config["engine"]`` says which ran and
    ``result.config["engine_fallback"]`` why the vectorized path was not taken.

    Parameters
    ----------
    bot : Bot, dict, YAML text or path
        The bot to run.
    bars : int, optional
        Number of bar timestamps to run (the default for a synthetic feed is
        twenty trading days of minute bars).
    start, end : date-like, optional
        Inclusive time range instead of (or besides) ``bars``.
    starting_cash : float
        Initial cash.
    feed : Feed, optional
        Override the bot's ``data:`` block.
    ledger : Ledger, optional
        Where the ``backtest_runs`` row goes (default: the default ledger).
    store : bool
        ``True`` (the default) records the run: the bot is registered (a changed
        spec becomes a new version) and a ``backtest_runs`` row is written to
        ``ledger``. Without ``ledger`` that is the process's default ledger
        (``$ALPHASWARM_DB_URL`` or ``~/.alphaswarm/ledger.db``), which the first
        use opens: it creates or migrates the schema, attaches the process kill
        switch to it, marks runs of dead processes crashed, and, on SQLite,
        starts one thread that checkpoints its write-ahead log. ``False`` runs
        in memory only: no ledger is opened, no thread started, nothing written.
        Neither changes the garbage collector or the switch interval.
    engine : {"auto", "vector", "event"}
        Which path runs: ``auto`` picks the vectorized one when the bot is eligible;
        ``vector`` insists on it (a :class:`ModelError` names why it cannot);
        ``event`` always steps bar by bar.

    Returns
    -------
    BacktestResult

    Raises
    ------
    ModelError
        For bad arguments (a bad date first, naming its value), an uncovered
        universe, an empty range, or
        ``engine="vector"`` on a bot the vectorized path cannot reproduce.
    """
    check_dates(start, end)
    if engine not in ENGINES:
        raise ModelError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
    bot = Bot.coerce(bot)
    feed = feed if feed is not None else bot.make_feed()
    missing = feed.covers(bot.universe)
    if missing:
        raise ModelError(f"universe: the feed cannot serve {', '.join(missing)}")
    broker_config = bot.broker_config()

    def make_engine() -> Engine:
        broker = SimulatedBroker(starting_cash, broker_config)
        return Engine(bot.make_strategy(), broker, bot.risk_limits())

    limit = _read_limit(feed, bars, start, end)
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    run, reason = _run(engine, bot, feed, make_engine, limit, start, end)
    elapsed = time.perf_counter() - t0
    config = {
        "starting_cash": starting_cash,
        "broker": broker_config.to_dict(),
        "fill_rule": broker_config.intrabar_rule,
        "feed": feed.fingerprint(),
        "bars": bars,
        "start": str(start) if start is not None else None,
        "end": str(end) if end is not None else None,
        "spec_hash": bot.spec_hash,
        "engine": "event" if reason is not None else "vector",
        "engine_fallback": reason,
    }
    result = run_result(
        bot,
        run,
        feed.periods_per_year,
        config=config,
        bars=run.bars,
        elapsed=elapsed,
        halted=run.halted,
        price_source=_price_source(feed, run.index),
        fill_times=True,
    )
    if store:
        _store(result, ledger, started_at, starting_cash)
    return result


def run_result(
    bot: Bot,
    run: Any,
    periods_per_year: float,
    *,
    config: dict[str, Any],
    bars: int,
    elapsed: float,
    halted: dict[str, Any] | None,
    price_source: Callable[[], pd.DataFrame] | None,
    fill_times: bool = False,
) -> BacktestResult:
    """An unstored :class:`BacktestResult` of a finished run: equity, fills, trades, metrics.

    Parameters
    ----------
    bot : Bot
        The bot that ran.
    run
        What ran it: ``broker`` (a :class:`SimulatedBroker`), ``equity`` and ``cash``
        per bar on ``index``, and ``bars_in_market``.
    periods_per_year : float
        Bars per year of the data (for annualised metrics).
    config, bars, elapsed, halted, price_source
        The result's own fields.
    fill_times : bool
        Give the fills' ``filled_at`` column a UTC datetime type (else as recorded).
    """
    broker = run.broker
    # float arrays, not lists: a DataFrame checks every element of a list
    equity = pd.DataFrame(
        {"equity": np.asarray(run.equity, np.float64), "cash": np.asarray(run.cash, np.float64)},
        index=run.index,
    )
    equity["drawdown"] = drawdown_series(equity["equity"])
    trades = round_trips(broker.fills)
    metrics = summarize(equity["equity"].to_numpy(), trades, periods_per_year, run.bars_in_market)
    fills = fills_frame(broker.fills, fill_times)
    return BacktestResult(
        id=None,
        bot=bot,
        bot_id=None,
        bot_version=None,
        metrics=metrics,
        equity=equity,
        fills=fills,
        trades=trades,
        orders=orders_frame(list(broker.orders.values())),
        config=config,
        bars=bars,
        elapsed=elapsed,
        halted=halted,
        periods_per_year=periods_per_year,
        price_source=price_source,
    )


def _price_source(feed: Feed, index: pd.DatetimeIndex) -> Callable[[], pd.DataFrame] | None:
    """Read the run's bars back from ``feed`` when a plot asks (None for no bars)."""
    if not len(index):
        return None
    return partial(feed.frame, start=index[0], end=index[-1])  # picklable with the feed


def _store(
    result: BacktestResult, ledger: Ledger | None, started_at: datetime, starting_cash: float
) -> None:
    from alphaswarm.paper.runtime import get_ledger

    ledger = ledger or get_ledger()
    bot = result.bot
    bot_id, version, _ = ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    eq = result.equity
    run_id = f"bt-{uuid.uuid4().hex[:10]}"
    row = {
        "id": run_id,
        "bot_id": bot_id,
        "bot_version": version,
        "started_at": started_at,
        "ended_at": datetime.now(UTC),
        "bars": result.bars,
        "start_ts": eq.index[0].to_pydatetime(),
        "end_ts": eq.index[-1].to_pydatetime(),
        "final_equity": float(eq["equity"].iloc[-1]),
        "starting_cash": starting_cash,
        "fill_rule": result.config["fill_rule"],
        "config": {**result.config, "halted": result.halted},
        **{k: float(v) for k, v in result.metrics.items()},
    }
    row["num_trades"] = int(result.metrics["num_trades"])
    ledger.record_backtest(row)
    result.id, result.bot_id, result.bot_version = run_id, bot_id, version


make_callable(__name__, "backtest")  # aw.backtest(...) calls it; the module stays importable
