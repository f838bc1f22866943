"""Performance metrics of an equity curve and round-trip trades of a fill list.

:data:`METRICS` is the one list of metrics the kit knows: which are stored with every
backtest run (:func:`summarize`, the ledger's ``backtest_runs`` columns, the sweep's
trials table, the bot spec's ``metrics:`` names), which are shown in a result's
:func:`performance` table, how each is labelled and how its value is formatted.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaswarm.metric_catalog import (
    METRIC_ALIASES,
    METRIC_BY_NAME,
    METRICS,
    PERCENT_METRICS,
    STORED_METRICS,
    Metric,
    metric_name,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from alphaswarm.model import Fill


__all__ = [
    "METRIC_ALIASES",
    "METRIC_BY_NAME",
    "METRICS",
    "PERCENT_METRICS",
    "STORED_METRICS",
    "Metric",
    "metric_name",
    "format_metric",
    "returns_of",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "drawdown_series",
    "max_drawdown_duration",
    "cagr",
    "trade_returns",
    "profit_factor",
    "round_trips",
    "summarize",
    "performance",
]


def format_metric(name: str, value: Any) -> str:
    """``value`` of metric ``name`` as text: percent, ratio, money, count, time or duration.

    Unknown names are formatted as plain numbers with thousands separators; missing
    values (None, NaN, NaT) as ``-``. Percentages have two decimals (``1.28%``), like
    every percentage in the dashboard and the CLI.
    """
    metric = METRIC_BY_NAME.get(METRIC_ALIASES.get(name, name))
    kind = metric.kind if metric else ""
    if value is None or value is pd.NaT:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if kind == "time" or isinstance(value, pd.Timestamp):
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC")
        return ts.strftime("%Y-%m-%d %H:%M") if ts != ts.normalize() else f"{ts:%Y-%m-%d}"
    if kind == "duration" or isinstance(value, pd.Timedelta):
        return _format_duration(pd.Timedelta(value))
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if kind == "percent":
        return f"{value:.2%}"
    if kind == "ratio":
        return f"{value:,.2f}"
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _format_duration(delta: pd.Timedelta) -> str:
    seconds = int(round(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
    if not days:
        parts.append(f"{minutes} min" if minutes or not hours else "")
    return " ".join(p for p in parts if p) or "0 min"


def returns_of(equity: np.ndarray) -> np.ndarray:
    """Simple per-period returns of an equity curve."""
    equity = np.asarray(equity, dtype=float)
    if len(equity) < 2:
        return np.empty(0)
    return equity[1:] / equity[:-1] - 1.0


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio: mean / std (ddof=1) x sqrt(periods per year), risk-free 0."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return 0.0
    sd = r.std(ddof=1)
    if not sd > 0:
        return 0.0
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def sortino_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sortino ratio: mean / downside deviation x sqrt(periods per year).

    The downside deviation is ``sqrt(mean(min(r, 0)^2))`` over all periods.
    """
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if not downside > 0:
        return 0.0
    return float(r.mean() / downside * math.sqrt(periods_per_year))


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall of ``equity`` as a fraction of the peak."""
    eq = np.asarray(equity, dtype=float)
    if len(eq) == 0:
        return 0.0
    peaks = np.maximum.accumulate(eq)
    return float(np.max((peaks - eq) / peaks))


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Drawdown at each point of ``equity`` as a (non-positive) fraction."""
    return equity / equity.cummax() - 1.0


def max_drawdown_duration(equity: pd.Series) -> pd.Timedelta:
    """Longest time ``equity`` (indexed by time) spent below an earlier peak.

    A drawdown lasts from the peak's time to the first time equity is back at or
    above that peak, or to the last time when it never is.
    """
    if len(equity) < 2:
        return pd.Timedelta(0)
    values = equity.to_numpy(dtype=float)
    times = equity.index
    peaks = np.maximum.accumulate(values)
    under = values < peaks
    # index of the latest peak at or before each bar
    peak_at = np.maximum.accumulate(np.where(under, 0, np.arange(len(values))))
    longest = pd.Timedelta(0)
    i = 0
    n = len(values)
    while i < n:
        if not under[i]:
            i += 1
            continue
        start = peak_at[i]
        j = i
        while j < n and under[j]:
            j += 1
        end = times[j] if j < n else times[n - 1]
        longest = max(longest, end - times[start])
        i = j
    return longest


def cagr(total_return: float, bars: int, periods_per_year: float) -> float:
    """Compound annual growth of ``total_return`` earned over ``bars`` bars.

    Annualised on the bar count (``periods_per_year`` bars make a year), the same
    clock the Sharpe ratio uses; NaN for no bars or a total loss.
    """
    if bars <= 0 or not total_return > -1:
        return float("nan")
    return (1.0 + total_return) ** (periods_per_year / bars) - 1.0


def trade_returns(trades: pd.DataFrame) -> pd.Series:
    """Net return of each round trip on the money it put in: pnl / (entry price x qty)."""
    if not len(trades):
        return pd.Series(dtype=float)
    return trades["pnl"] / (trades["entry_price"] * trades["qty"]).abs()


def profit_factor(pnl: pd.Series) -> float:
    """Gross profit over gross loss of trades (inf with no loss, NaN with no trade)."""
    if not len(pnl):
        return float("nan")
    gain = float(pnl[pnl > 0].sum())
    loss = float(-pnl[pnl < 0].sum())
    if loss == 0:
        return float("inf") if gain > 0 else float("nan")
    return gain / loss


def _fills_from_frame(frame: pd.DataFrame) -> list[Fill]:
    from alphaswarm.model import Fill, Side

    ts_col = "filled_at" if "filled_at" in frame else "ts"
    frame = frame.sort_values(ts_col, kind="stable")
    return [
        Fill(str(i), str(o), s, Side(side), float(q), float(p), float(c), t)
        for i, o, s, side, q, p, c, t in zip(
            frame.get("id", frame.get("fill_id", pd.Series(range(len(frame))))),
            frame["order_id"],
            frame["symbol"],
            frame["side"],
            frame["qty"],
            frame["price"],
            frame["commission"],
            frame[ts_col],
            strict=True,
        )
    ]


def round_trips(fills: Iterable[Fill] | pd.DataFrame) -> pd.DataFrame:
    """Match fills FIFO per symbol into closed trades.

    Parameters
    ----------
    fills : iterable of Fill, or DataFrame
        Fills in time order, or a fills DataFrame as ``Ledger.fills(run_id)`` returns.

    Returns
    -------
    DataFrame
        One row per closed trade: symbol, direction, qty, entry/exit time and price,
        commission and net pnl.
    """
    if isinstance(fills, pd.DataFrame):
        fills = _fills_from_frame(fills)
    open_lots: dict[str, deque] = {}
    rows: list[dict[str, Any]] = []
    for f in fills:
        lots = open_lots.setdefault(f.symbol, deque())
        signed = f.qty * f.side.sign
        commission_per_unit = f.commission / f.qty if f.qty else 0.0
        remaining = signed
        while lots and remaining and (lots[0][0] > 0) != (remaining > 0):
            lot_qty, price, ts, lot_comm = lots[0]
            close_qty = min(abs(lot_qty), abs(remaining))
            direction = 1 if lot_qty > 0 else -1
            commission = (lot_comm + commission_per_unit) * close_qty
            rows.append(
                {
                    "symbol": f.symbol,
                    "direction": "long" if direction > 0 else "short",
                    "qty": close_qty,
                    "entry_time": ts,
                    "exit_time": f.ts,
                    "entry_price": price,
                    "exit_price": f.price,
                    "commission": commission,
                    "pnl": (f.price - price) * close_qty * direction - commission,
                }
            )
            if close_qty >= abs(lot_qty) - 1e-12:
                lots.popleft()
            else:
                lots[0] = (lot_qty - close_qty * direction, price, ts, lot_comm)
            remaining += close_qty * direction
        if abs(remaining) > 1e-12:
            lots.append((remaining, f.price, f.ts, commission_per_unit))
    columns = [
        "symbol", "direction", "qty", "entry_time", "exit_time",
        "entry_price", "exit_price", "commission", "pnl",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def summarize(
    equity: np.ndarray,
    trades: pd.DataFrame,
    periods_per_year: float,
    bars_in_market: int = 0,
) -> dict[str, float]:
    """The metrics stored with every backtest run (:data:`STORED_METRICS`)."""
    eq = np.asarray(equity, dtype=float)
    r = returns_of(eq)
    n_trades = len(trades)
    wins = int((trades["pnl"] > 0).sum()) if n_trades else 0
    values = {
        "sharpe": sharpe_ratio(r, periods_per_year),
        "sortino": sortino_ratio(r, periods_per_year),
        "max_drawdown": max_drawdown(eq),
        "total_return": float(eq[-1] / eq[0] - 1.0) if len(eq) else 0.0,
        "num_trades": n_trades,
        "win_rate": wins / n_trades if n_trades else 0.0,
        "exposure": bars_in_market / len(eq) if len(eq) else 0.0,
    }
    return {name: values[name] for name in STORED_METRICS}


def performance(
    equity: pd.Series,
    trades: pd.DataFrame,
    periods_per_year: float,
    exposure: float,
) -> pd.Series:
    """Every metric of :data:`METRICS` for one run, as a Series in table order.

    Parameters
    ----------
    equity : Series
        Equity indexed by bar time.
    trades : DataFrame
        Round trips as :func:`round_trips` returns them.
    periods_per_year : float
        Bars per year, for the Sharpe and Sortino ratios and the CAGR.
    exposure : float
        Share of bars with a position open (the run counts it).

    Returns
    -------
    Series
        Indexed by metric name (``result.stats["sharpe"]``); fractions stay
        fractions (format them with :func:`format_metric`).
    """
    eq = equity.to_numpy(dtype=float)
    stored = summarize(eq, trades, periods_per_year)
    stored["exposure"] = float(exposure)
    n = len(eq)
    rets = trade_returns(trades)
    has_trades = len(trades) > 0
    nan = float("nan")
    held = (
        (pd.to_datetime(trades["exit_time"]) - pd.to_datetime(trades["entry_time"])).mean()
        if has_trades
        else pd.NaT
    )
    values: dict[str, Any] = {
        **stored,
        "start": equity.index[0] if n else pd.NaT,
        "end": equity.index[-1] if n else pd.NaT,
        "duration": (equity.index[-1] - equity.index[0]) if n else pd.NaT,
        "bars": n,
        "starting_equity": float(eq[0]) if n else nan,
        "final_equity": float(eq[-1]) if n else nan,
        "equity_peak": float(eq.max()) if n else nan,
        "cagr": cagr(stored["total_return"], n, periods_per_year),
        "max_drawdown_duration": max_drawdown_duration(equity),
        "profit_factor": profit_factor(trades["pnl"]) if has_trades else nan,
        "best_trade": float(rets.max()) if has_trades else nan,
        "worst_trade": float(rets.min()) if has_trades else nan,
        "avg_trade": float(rets.mean()) if has_trades else nan,
        "avg_trade_pnl": float(trades["pnl"].mean()) if has_trades else nan,
        "avg_trade_duration": held,
    }
    return pd.Series({m.name: values[m.name] for m in METRICS}, dtype=object, name="stats")
