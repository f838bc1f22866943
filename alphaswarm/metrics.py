"""Performance metrics of an equity curve and round-trip trades of a fill list."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterable

    from alphaswarm.model import Fill


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
    """The metrics stored with every backtest run."""
    eq = np.asarray(equity, dtype=float)
    r = returns_of(eq)
    n_trades = len(trades)
    wins = int((trades["pnl"] > 0).sum()) if n_trades else 0
    return {
        "sharpe": sharpe_ratio(r, periods_per_year),
        "sortino": sortino_ratio(r, periods_per_year),
        "max_drawdown": max_drawdown(eq),
        "total_return": float(eq[-1] / eq[0] - 1.0) if len(eq) else 0.0,
        "num_trades": n_trades,
        "win_rate": wins / n_trades if n_trades else 0.0,
        "exposure": bars_in_market / len(eq) if len(eq) else 0.0,
    }
