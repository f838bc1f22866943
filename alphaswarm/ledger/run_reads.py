"""What the run view reads from the ledger: price history, closed trades, P&L by symbol, stats.

Every function takes a :class:`~alphaswarm.ledger.Ledger` and a paper run id and
reads only committed rows, so a finished run opened cold (a restarted server, a
notebook) shows the same numbers as the page that watched it live.
"""

from __future__ import annotations

import math
import re
from collections import deque
from typing import TYPE_CHECKING, Any

import pandas as pd

from alphaswarm.stored_values import json_object as _as_dict
from alphaswarm.stored_values import naive_utc as _utc

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

PRICE_COLUMNS = ["ts", "symbol", "open", "high", "low", "close", "volume"]
TRADE_COLUMNS = [
    "symbol",
    "direction",
    "qty",
    "entry_ts",
    "exit_ts",
    "entry_price",
    "exit_price",
    "commission",
    "pnl",
    "return_pct",
]
SYMBOL_COLUMNS = [
    "symbol",
    "trades",
    "wins",
    "realized_pnl",
    "unrealized_pnl",
    "commission",
    "total_pnl",
    "open_qty",
]
_EPS = 1e-9


def price_history(
    ledger: Ledger,
    run_id: str,
    symbol: str | None = None,
    *,
    after_seq: int = 0,
    before_seq: int | None = None,
) -> pd.DataFrame:
    """Every bar the run received, from its stored ``bar.received`` frames.

    Parameters
    ----------
    ledger : Ledger
        Where the run is recorded.
    run_id : str
        The paper run.
    symbol : str, optional
        Only this symbol's bars (all symbols otherwise).
    after_seq : int
        Only frames with a larger ``seq`` (to read what was added since).
    before_seq : int, optional
        Only frames with a smaller ``seq`` (what a live view does not hold in memory).

    Returns
    -------
    pandas.DataFrame
        ``ts, symbol, open, high, low, close, volume`` in bar order, ``ts`` naive UTC;
        the frame ``seq`` of the last row read is in ``.attrs["last_seq"]``.
    """
    stored = ledger.frames_after(
        run_id, int(after_seq), before=before_seq, stages=("bar.received",)
    )
    rows = []
    for frame in stored:
        bar = _as_dict(frame).get("bar") or {}
        if symbol is not None and bar.get("symbol") != symbol:
            continue
        ts = _utc(bar.get("ts"))
        if ts is None:
            continue
        rows.append([ts, bar.get("symbol")] + [bar.get(k) for k in PRICE_COLUMNS[2:]])
    out = pd.DataFrame(rows, columns=PRICE_COLUMNS)
    out["ts"] = pd.to_datetime(out["ts"])
    out.attrs["last_seq"] = int(stored[-1]["seq"]) if stored else int(after_seq)
    return out


def run_symbols(ledger: Ledger, run_id: str) -> list[str]:
    """The run's universe (from its stored bot spec), else the symbols it traded."""
    row = ledger.get_run(run_id) or {}
    universe = ((row.get("config") or {}).get("bot") or {}).get("universe") or []
    if universe:
        return [str(s) for s in universe]
    fills = ledger.fills(run_id)
    return sorted(set(fills["symbol"])) if len(fills) else []


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """Closed trades of a fill list, matched first-in first-out per symbol.

    A buy opens or adds to a long (or closes a short); a sell the reverse. Each
    closing quantity makes one trade row against the oldest open lot; commissions
    are charged to the trade pro rata to the quantity.

    Parameters
    ----------
    fills : pandas.DataFrame
        ``symbol, side, qty, price, filled_at`` and optionally ``commission``, in
        fill order (what :meth:`Ledger.fills` returns).

    Returns
    -------
    pandas.DataFrame
        One row per closed trade: ``symbol, direction (long/short), qty, entry_ts,
        exit_ts, entry_price, exit_price, commission, pnl (after commissions),
        return_pct``.
    """
    rows, _lots = _match(fills)
    out = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    for col in ("entry_ts", "exit_ts"):
        out[col] = pd.to_datetime(out[col])
    return out


def _match(fills: pd.DataFrame) -> tuple[list[list[Any]], dict[str, deque[list[Any]]]]:
    """FIFO matching: the closed trades' rows and the lots left open per symbol.

    A lot is ``[signed qty, price, ts, commission per unit]``.
    """
    rows: list[list[Any]] = []
    lots: dict[str, deque[list[Any]]] = {}
    for f in fills.itertuples() if len(fills) else []:
        qty = float(f.qty)
        if qty <= _EPS:
            continue
        sign = 1.0 if str(f.side).lower() == "buy" else -1.0
        fee_unit = float(getattr(f, "commission", 0.0) or 0.0) / qty
        price, ts = float(f.price), _utc(f.filled_at)
        book = lots.setdefault(f.symbol, deque())
        left = qty
        while left > _EPS and book and book[0][0] * sign < 0:
            lot = book[0]
            take = min(left, abs(lot[0]))
            long = lot[0] > 0
            gross = (price - lot[1]) * take * (1 if long else -1)
            fee = (lot[3] + fee_unit) * take
            pnl = gross - fee
            basis = lot[1] * take
            rows.append(
                [
                    f.symbol,
                    "long" if long else "short",
                    take,
                    lot[2],
                    ts,
                    lot[1],
                    price,
                    fee,
                    pnl,
                    pnl / basis * 100 if basis else math.nan,
                ]
            )
            lot[0] -= take * (1 if long else -1)
            left -= take
            if abs(lot[0]) <= _EPS:
                book.popleft()
        if left > _EPS:
            book.append([sign * left, price, ts, fee_unit])
    return rows, lots


def closed_trades(ledger: Ledger, run_id: str) -> pd.DataFrame:
    """The run's closed trades (see :func:`round_trips`)."""
    return round_trips(ledger.fills(run_id))


def pnl_by_symbol(
    ledger: Ledger, run_id: str, last_prices: dict[str, float] | None = None
) -> pd.DataFrame:
    """Realized and unrealized P&L of each symbol the run traded.

    Parameters
    ----------
    ledger : Ledger
        Where the run is recorded.
    run_id : str
        The paper run.
    last_prices : dict, optional
        Prices to mark open positions at; the last stored bar of each symbol otherwise.

    Returns
    -------
    pandas.DataFrame
        ``symbol, trades, wins, realized_pnl, unrealized_pnl, commission, total_pnl,
        open_qty``: realized P&L is that of the closed trades (first in, first out),
        unrealized that of the lots still open at the last price; both are after
        commissions, so ``total_pnl`` sums to the run's P&L.
    """
    fills = ledger.fills(run_id)
    if not len(fills):
        return pd.DataFrame(columns=SYMBOL_COLUMNS)
    trades = round_trips(fills)
    _rows, lots = _match(fills)
    if last_prices is None:
        prices = price_history(ledger, run_id)
        last_prices = prices.groupby("symbol")["close"].last().to_dict() if len(prices) else {}
    commission = fills.groupby("symbol")["commission"].sum().to_dict()
    rows = []
    for symbol in sorted(set(fills["symbol"])):
        t = trades[trades["symbol"] == symbol]
        book = lots.get(symbol) or deque()
        qty = sum(lot[0] for lot in book)
        last = last_prices.get(symbol)
        realized = float(t["pnl"].sum()) if len(t) else 0.0
        fees = float(commission.get(symbol, 0.0))
        # each open lot at the last price, less the commission paid to open it
        unrealized = sum(
            lot[0] * ((float(last) if last is not None else lot[1]) - lot[1]) - lot[3] * abs(lot[0])
            for lot in book
        )
        rows.append(
            [
                symbol,
                len(t),
                int((t["pnl"] > 0).sum()) if len(t) else 0,
                realized,
                unrealized,
                fees,
                realized + unrealized,
                qty,
            ]
        )
    return pd.DataFrame(rows, columns=SYMBOL_COLUMNS)


def bar_minutes(interval: Any) -> float | None:
    """Minutes per bar of an interval such as ``"1m"``, ``"30s"``, ``"1h"`` (None if unknown)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(interval or ""))
    if not match:
        return None
    n, unit = float(match.group(1)), match.group(2)
    return n * {"s": 1 / 60, "m": 1.0, "h": 60.0, "d": 1440.0}[unit]


def expected_bars(row: dict[str, Any]) -> int | None:
    """Bars a run will see in all (all symbols), or None when it runs until stopped.

    From ``max_bars`` (bar groups, one bar per symbol each) or the session
    duration over the bar interval, whichever ends it first.
    """
    config = row.get("config") or {}
    bot = config.get("bot") or {}
    symbols = max(len(bot.get("universe") or []), 1)
    limits = []
    if config.get("max_bars"):
        limits.append(int(config["max_bars"]))
    minutes = bar_minutes((bot.get("data") or {}).get("interval"))
    if config.get("duration_minutes") and minutes:
        limits.append(int(math.floor(float(config["duration_minutes"]) / minutes)))
    return min(limits) * symbols if limits else None


def session_stats(ledger: Ledger, run_id: str) -> dict[str, Any]:
    """Headline statistics of a run, from the ledger.

    Returns
    -------
    dict
        ``starting_cash, final_equity, return_pct, max_drawdown_pct, fills, turnover
        (traded notional over starting cash), notional, trades, win_rate_pct,
        bars_seen, bars_total`` (``None`` when the run has no end),
        ``status`` and ``complete`` (True once the run ended).
    """
    row = ledger.get_run(run_id)
    if row is None:
        raise KeyError(f"unknown paper run {run_id!r}")
    start = float(row.get("starting_cash") or 0.0)
    eq = ledger.equity(run_id)
    final = float(eq["equity"].iloc[-1]) if len(eq) else float(row.get("final_equity") or start)
    max_dd = 0.0
    if len(eq):
        curve = eq["equity"].astype(float)
        peak = curve.cummax()
        dd = (curve / peak.where(peak > 0) - 1.0).fillna(0.0)
        max_dd = float(-dd.min()) * 100
    fills = ledger.fills(run_id)
    notional = (
        float((fills["qty"].astype(float) * fills["price"].astype(float)).sum())
        if len(fills)
        else 0.0
    )
    trades = round_trips(fills)
    wins = int((trades["pnl"] > 0).sum()) if len(trades) else 0
    status = row.get("status") or ""
    return {
        "status": status,
        "complete": status not in ("running", "gating", "stopping"),
        "starting_cash": start,
        "final_equity": final,
        "return_pct": (final / start - 1.0) * 100 if start else math.nan,
        "max_drawdown_pct": max_dd,
        "fills": len(fills),
        "notional": notional,
        "turnover": notional / start if start else math.nan,
        "trades": len(trades),
        "win_rate_pct": wins / len(trades) * 100 if len(trades) else math.nan,
        "bars_seen": int(row.get("bars_seen") or 0),
        "bars_total": expected_bars(row),
    }
