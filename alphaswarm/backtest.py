"""Backtests: drive the engine over a bot's feed as fast as the bars come.

``backtest(bot, bars=N)`` or ``backtest(bot, start=..., end=...)`` runs the same
engine a paper session runs, stores a ``backtest_runs`` row in the ledger and
returns a :class:`BacktestResult` with the metrics, the equity curve and the
trades as DataFrames.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from alphaswarm.bots import Bot
from alphaswarm.metrics import drawdown_series, round_trips, summarize
from alphaswarm.model import ModelError
from alphaswarm.trading.engine import Engine
from alphaswarm.trading.paper_trading import SimulatedBroker

if TYPE_CHECKING:
    from pathlib import Path

    from alphaswarm.data.base import Feed
    from alphaswarm.ledger import Ledger

#: Bars run when a backtest over an unbounded (synthetic) feed names no size:
#: twenty trading days of one-minute bars.
DEFAULT_BARS = 20 * 390


@dataclass
class BacktestResult:
    """What a backtest returns.

    Attributes
    ----------
    id : str
        ``backtest_runs.id`` (``None`` when not stored).
    metrics : dict
        sharpe, sortino, max_drawdown, total_return, num_trades, win_rate, exposure.
    equity : DataFrame
        Indexed by bar time: equity, cash, drawdown.
    fills, trades, orders : DataFrame
        Every fill, every FIFO round trip, every order.
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

    @property
    def sharpe(self) -> float:
        """Annualised Sharpe ratio."""
        return self.metrics["sharpe"]

    @property
    def bars_per_second(self) -> float:
        """Engine throughput of this run."""
        return self.bars / self.elapsed if self.elapsed > 0 else float("inf")

    def plot(self) -> Any:
        """Equity curve over a drawdown area (HoloViews)."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401 - registers the renderer outside notebooks

        eq = self.equity.reset_index()
        curve = hv.Curve(eq, "ts", "equity", label="equity").opts(
            responsive=True, height=260, tools=["hover"], title=f"{self.bot.name} backtest"
        )
        dd = hv.Area(eq, "ts", "drawdown", label="drawdown").opts(
            responsive=True, height=140, color="crimson", alpha=0.4
        )
        return (curve + dd).cols(1).opts(shared_axes=True)

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"BacktestResult(id={self.id!r}, bot={self.bot.name!r}, bars={self.bars}, "
            f"sharpe={m['sharpe']:.2f}, max_drawdown={m['max_drawdown']:.2%}, "
            f"total_return={m['total_return']:.2%}, num_trades={m['num_trades']})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v:,.4g}</td></tr>"
            for k, v in self.metrics.items()
        )
        return (
            f"<b>Backtest {self.id or ''}</b> of <code>{self.bot.name}</code> over "
            f"{self.bars:,} bars<table>{rows}</table>"
        )


def _feed_reader(feed: Feed, bars: int | None, start: Any, end: Any) -> Any:
    if bars is not None:
        if isinstance(bars, bool) or not isinstance(bars, int) or bars <= 0:
            raise ModelError(f"bars: expected a whole number > 0, got {bars!r}")
    if bars is None and start is None and end is None and not feed.bounded:
        bars = DEFAULT_BARS
    if not feed.bounded and end is None and bars is None:
        raise ModelError("end: a synthetic feed needs bars= or end= to know when to stop")
    return feed.groups(start=start, end=end, limit=bars)


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
) -> BacktestResult:
    """Backtest a bot over its feed with the one engine.

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
        Set False to run without touching any ledger.

    Returns
    -------
    BacktestResult
    """
    bot = Bot.coerce(bot)
    feed = feed if feed is not None else bot.make_feed()
    missing = feed.covers(bot.universe)
    if missing:
        raise ModelError(f"universe: the feed cannot serve {', '.join(missing)}")
    broker_config = bot.broker_config()
    broker = SimulatedBroker(starting_cash, broker_config)
    engine = Engine(bot.make_strategy(), broker, bot.risk_limits())
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    step = engine.step
    for group in _feed_reader(feed, bars, start, end):
        step(group)
        if engine.halted is not None:
            break
    engine.finish()
    elapsed = time.perf_counter() - t0
    if not engine.equity_values:
        raise ModelError("bars: the feed delivered no bars for that range")
    equity = pd.DataFrame(
        {"equity": engine.equity_values, "cash": engine.cash_values},
        index=pd.DatetimeIndex(engine.equity_ts, name="ts"),
    )
    equity["drawdown"] = drawdown_series(equity["equity"])
    trades = round_trips(broker.fills)
    metrics = summarize(
        equity["equity"].to_numpy(), trades, feed.periods_per_year, engine.bars_in_market
    )
    fills = pd.DataFrame(
        [f.to_dict() for f in broker.fills],
        columns=["fill_id", "order_id", "symbol", "side", "qty", "price", "commission",
                 "slippage", "filled_at"],
    )  # fmt: skip
    if len(fills):
        fills["filled_at"] = pd.to_datetime(fills["filled_at"], utc=True)
    orders = pd.DataFrame([o.to_dict() for o in broker.orders.values()])
    config = {
        "starting_cash": starting_cash,
        "broker": broker_config.to_dict(),
        "fill_rule": broker_config.intrabar_rule,
        "feed": feed.fingerprint(),
        "bars": bars,
        "start": str(start) if start is not None else None,
        "end": str(end) if end is not None else None,
        "spec_hash": bot.spec_hash,
    }
    result = BacktestResult(
        id=None,
        bot=bot,
        bot_id=None,
        bot_version=None,
        metrics=metrics,
        equity=equity,
        fills=fills,
        trades=trades,
        orders=orders,
        config=config,
        bars=engine.bars_seen,
        elapsed=elapsed,
        halted=engine.halted.to_dict() if engine.halted else None,
    )
    if store:
        _store(result, ledger, started_at, starting_cash)
    return result


def _store(
    result: BacktestResult, ledger: Ledger | None, started_at: datetime, starting_cash: float
) -> None:
    from alphaswarm.runtime import get_ledger

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
        "config": result.config,
        **{k: float(v) for k, v in result.metrics.items()},
    }
    row["num_trades"] = int(result.metrics["num_trades"])
    ledger.record_backtest(row)
    result.id, result.bot_id, result.bot_version = run_id, bot_id, version
