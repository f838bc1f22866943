"""The broker's fills against the shadow simulator's, order by order.

A paper run routed to a real broker with ``shadow: true`` records what the fill
model did with the same orders (``state.broker.shadow``, see
:mod:`alphaswarm.broker.shadow`). :func:`shadow_report` lines that up with the
broker's orders and fills in the ledger:

=================== ===================================================================
column              meaning
=================== ===================================================================
outcome             ``matched`` (both filled the same quantity), ``partial`` (both
                    filled, different quantities), ``missed_by_broker`` /
                    ``missed_by_shadow`` (only the other side filled),
                    ``rejected_by_broker`` (a rejection the simulator did not predict),
                    ``rejected_by_shadow``, ``unfilled`` (neither filled), ``no_shadow``
                    (an order the shadow never saw, e.g. read back on restart)
price_diff_bps      broker average price against the shadow's, in basis points, signed
                    so that positive is worse for the run (a buy paid more, a sell got
                    less): the slippage the simulator missed
latency_s           from the order's placing to its first fill, on each side
fills               number of fills (partials) on each side
pnl_effect          broker P&L minus shadow P&L of the order's fills, valued at the
                    run's last marks, net of commission: what the difference explains
needed_slip_bps     the ``slippage_bps`` that would have given the broker's price
                    (orders the fill model slips: market, stop, trailing stop)
=================== ===================================================================

``summary["suggested_slippage_bps"]`` is the notional-weighted mean of
``needed_slip_bps`` over the orders both sides filled (not below 0: the fill model
has no price improvement).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from alphaswarm.model import ModelError
from alphaswarm.stored_values import records

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

__all__ = ["OUTCOMES", "ShadowReport", "shadow_report", "shadow_state"]

#: Every outcome an order can have, with what it means.
OUTCOMES: dict[str, str] = {
    "matched": "both filled the same quantity",
    "partial": "both filled, but different quantities",
    "missed_by_broker": "the simulator filled it, the broker did not",
    "missed_by_shadow": "the broker filled it, the simulator did not",
    "rejected_by_broker": "the broker rejected it, the simulator did not",
    "rejected_by_shadow": "the simulator rejected it, the broker did not",
    "unfilled": "neither side filled it",
    "no_shadow": "the shadow never saw the order",
}
#: Order types whose simulated price carries ``slippage_bps``.
SLIPPED_TYPES = ("market", "stop", "trailing_stop")
COLUMNS = [
    "order_id", "broker_order_id", "symbol", "side", "type", "qty", "outcome",
    "broker_status", "shadow_status", "broker_filled_qty", "shadow_filled_qty",
    "broker_price", "shadow_price", "price_diff_bps", "broker_latency_s", "shadow_latency_s",
    "broker_fills", "shadow_fills", "pnl_effect", "needed_slip_bps", "broker_reason",
]  # fmt: skip


@dataclass
class ShadowReport:
    """The broker's fills against the shadow simulator's, order by order.

    Attributes
    ----------
    run_id : str
        The paper run.
    orders : DataFrame
        One row per order (columns: see the module docs).
    summary : dict
        Counts by outcome, P&L explained by outcome, the mean price difference, median
        latencies, the shadow's ``slippage_bps`` and ``suggested_slippage_bps``.
    """

    run_id: str
    orders: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{paper_run_id, summary, orders}`` (what the run view shows)."""
        return {
            "paper_run_id": self.run_id,
            "summary": self.summary,
            "orders": records(self.orders),
        }

    def text(self) -> str:
        """A few readable lines: counts, price difference, P&L by outcome, the suggestion."""
        s = self.summary
        lines = [
            f"paper run {self.run_id}: broker vs shadow simulator on {s['orders']} order(s)",
            f"  price difference {_fmt(s['price_diff_bps'], '+.2f')} bps (positive: broker "
            f"worse); latency broker {_fmt(s['broker_latency_s'], '.3f')}s, "
            f"shadow {_fmt(s['shadow_latency_s'], '.3f')}s (medians)",
            f"  P&L broker minus shadow {s['pnl_effect']:+,.2f}",
        ]
        for outcome, n in s["counts"].items():
            lines.append(
                f"  {outcome:<18} {n:>4} order(s)  {s['explained'].get(outcome, 0.0):+,.2f}"
            )
        lines.append(
            f"  slippage_bps {s['slippage_bps']:g} in the simulator; "
            f"{_fmt(s['suggested_slippage_bps'], '.2f')} would have matched the broker"
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def shadow_state(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The shadow record of a run row (``state.broker.shadow``), or None."""
    if run is None:
        return None
    state = run.get("state")
    if isinstance(state, str):
        state = json.loads(state)
    broker = (state or {}).get("broker") or {}
    return broker.get("shadow")


def shadow_report(run_id: str, ledger: Ledger | None = None) -> ShadowReport:
    """Compare a run's broker fills with its shadow simulator's, order by order.

    Parameters
    ----------
    run_id : str
        A paper run whose bot had ``broker: {kind: alpaca_paper, shadow: true}``.
    ledger : Ledger, optional
        Where the run is; the process default otherwise.

    Returns
    -------
    ShadowReport
        ``.orders`` (one row per order) and ``.summary``.

    Raises
    ------
    KeyError
        When the ledger has no such run.
    ModelError
        When the run recorded no shadow simulation.
    """
    if ledger is None:
        from alphaswarm.paper.runtime import get_ledger

        ledger = get_ledger()
    run = ledger.get_run(run_id)
    if run is None:
        raise KeyError(f"no paper run {run_id!r} in the ledger")
    shadow = shadow_state(run)
    if shadow is None:
        raise ModelError(
            f"paper run {run_id!r} has no shadow simulation: give its bot "
            "broker: {kind: alpaca_paper, shadow: true}"
        )
    orders = ledger.orders(run_id)
    fills = ledger.fills(run_id)
    marks: dict[str, float] = dict(shadow.get("marks") or {})
    twins: dict[str, dict[str, Any]] = dict(shadow.get("orders") or {})
    fills_of: dict[str, list[dict[str, Any]]] = {}
    for f in fills.to_dict("records"):
        fills_of.setdefault(f["order_id"], []).append(
            {"ts": f["filled_at"], "qty": f["qty"], "price": f["price"],
             "commission": f.get("commission") or 0.0}
        )  # fmt: skip
    rows = []
    seen = set()
    for o in orders.to_dict("records"):
        seen.add(o["id"])
        rows.append(_row(o, twins.get(o["id"]), fills_of.get(o["id"], []), marks))
    for order_id, twin in twins.items():  # shadow orders the ledger has no row of
        if order_id not in seen:
            rows.append(_row(None, {**twin, "order_id": order_id}, [], marks))
    table = pd.DataFrame(rows, columns=COLUMNS)
    slip = float((shadow.get("config") or {}).get("slippage_bps") or 0.0)
    return ShadowReport(run_id, table, _summary(table, slip))


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _avg(fills: list[dict[str, Any]]) -> float | None:
    qty = sum(f["qty"] for f in fills)
    return sum(f["qty"] * f["price"] for f in fills) / qty if qty > 0 else None


def _pnl(fills: list[dict[str, Any]], sign: int, mark: float | None) -> float:
    if mark is None:
        return 0.0
    return sum(sign * f["qty"] * (mark - f["price"]) - f.get("commission", 0.0) for f in fills)


def _latency(created: Any, fills: list[dict[str, Any]]) -> float | None:
    start = _ts(created)
    first = min((t for t in (_ts(f["ts"]) for f in fills) if t is not None), default=None)
    if start is None or first is None:
        return None
    return max((first - start).total_seconds(), 0.0)


def _outcome(broker_status: str, shadow_status: str, b_qty: float, s_qty: float) -> str:
    if not shadow_status:
        return "no_shadow"
    if broker_status == "rejected" and shadow_status != "rejected":
        return "rejected_by_broker"
    if shadow_status == "rejected" and broker_status != "rejected":
        return "rejected_by_shadow"
    if b_qty > 1e-9 and s_qty > 1e-9:
        return "matched" if abs(b_qty - s_qty) <= 1e-9 else "partial"
    if s_qty > 1e-9:
        return "missed_by_broker"
    if b_qty > 1e-9:
        return "missed_by_shadow"
    return "unfilled"


def _row(
    order: dict[str, Any] | None,
    twin: dict[str, Any] | None,
    broker_fills: list[dict[str, Any]],
    marks: dict[str, float],
) -> dict[str, Any]:
    twin = twin or {}
    shadow_fills = list(twin.get("fills") or [])
    if order is None:  # only the shadow has it
        order = {"id": twin["order_id"], "status": "", "type": twin.get("type", ""),
                 "created_at": twin.get("created_at")}  # fmt: skip
    symbol = order.get("symbol") or ""
    side = order.get("side") or ""
    sign = -1 if side == "sell" else 1
    b_qty = sum(f["qty"] for f in broker_fills)
    s_qty = sum(f["qty"] for f in shadow_fills)
    b_price, s_price = _avg(broker_fills), _avg(shadow_fills)
    diff = needed = None
    if b_price is not None and s_price is not None and s_price > 0:
        diff = sign * (b_price / s_price - 1) * 1e4
        ref = _avg([{**f, "price": f.get("ref_price", f["price"])} for f in shadow_fills])
        if order.get("type") in SLIPPED_TYPES and ref:
            needed = sign * (b_price / ref - 1) * 1e4
    mark = marks.get(symbol)
    broker_status = str(order.get("status") or "")
    shadow_status = str(twin.get("status") or "")
    return {
        "order_id": order["id"],
        "broker_order_id": order.get("broker_order_id"),
        "symbol": symbol,
        "side": side,
        "type": order.get("type"),
        "qty": order.get("qty"),
        "outcome": _outcome(broker_status, shadow_status, b_qty, s_qty),
        "broker_status": broker_status,
        "shadow_status": shadow_status,
        "broker_filled_qty": b_qty,
        "shadow_filled_qty": s_qty,
        "broker_price": b_price,
        "shadow_price": s_price,
        "price_diff_bps": diff,
        "broker_latency_s": _latency(order.get("created_at"), broker_fills),
        "shadow_latency_s": _latency(twin.get("created_at"), shadow_fills),
        "broker_fills": len(broker_fills),
        "shadow_fills": len(shadow_fills),
        "pnl_effect": _pnl(broker_fills, sign, mark) - _pnl(shadow_fills, sign, mark),
        "needed_slip_bps": needed,
        "broker_reason": order.get("reason") or "",
    }


def _weighted(values: pd.Series, weights: pd.Series) -> float | None:
    ok = values.notna() & weights.notna() & (weights > 0)
    if not ok.any():
        return None
    return float((values[ok] * weights[ok]).sum() / weights[ok].sum())


def _median(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.median()) if len(values) else None


def _summary(table: pd.DataFrame, slippage_bps: float) -> dict[str, Any]:
    both = table[table["outcome"].isin(["matched", "partial"])]
    notional = (both["broker_filled_qty"] * both["broker_price"]).astype(float)
    needed = _weighted(both["needed_slip_bps"].astype(float), notional)
    counts = table["outcome"].value_counts()
    explained = table.groupby("outcome")["pnl_effect"].sum()
    return {
        "orders": len(table),
        "counts": {k: int(counts[k]) for k in OUTCOMES if k in counts},
        "explained": {k: float(explained[k]) for k in OUTCOMES if k in explained},
        "pnl_effect": float(table["pnl_effect"].sum()) if len(table) else 0.0,
        "price_diff_bps": _weighted(both["price_diff_bps"].astype(float), notional),
        "broker_latency_s": _median(table["broker_latency_s"].astype(float)),
        "shadow_latency_s": _median(table["shadow_latency_s"].astype(float)),
        "partial_fills": int(((table["broker_fills"] > 1) | (table["shadow_fills"] > 1)).sum()),
        "slippage_bps": slippage_bps,
        "suggested_slippage_bps": None if needed is None else max(needed, 0.0),
    }
