"""Order explanations: one order's whole life, proved from the ledger.

``explain_order(ledger, run_id, order_id)`` (also ``session.explain(order_id)``
and ``GET /paper/{id}/orders/{order_id}/explain``) gathers the signal that
caused the order, the pre-trade risk checks with their values and thresholds,
each fill, every cancellation with its reason, or why the order is still open.
A request the risk checks denied never became a broker order; it is named by
the ``request_id`` of its ``risk_events`` row (``<run>-d<n>``) and explained
the same way.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from alphaswarm.trail import RunNotFound, RunTrail, load_trail

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger
    from alphaswarm.paper.registry import SessionRegistry

__all__ = ["OrderNotFound", "explain_order"]

_OPEN = ("new", "accepted", "partially_filled")


class OrderNotFound(RunNotFound):
    """The run has no order (nor denied request) with that id."""


def _plain(value: Any) -> Any:
    """JSON-ready values: ISO timestamps, None for NaN/NaT."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return _plain(item())
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def _when(ts: Any) -> str:
    return f"{pd.Timestamp(ts):%Y-%m-%d %H:%M}" if ts is not None else "?"


def _signal_for(trail: RunTrail, first: dict[str, Any] | None) -> dict[str, Any] | None:
    if first is None:
        return None
    number = first.get("signal_no")
    if number is not None:
        for f in trail.frames_of("signal.emitted"):
            if f.get("signal_no") == number:
                return f
        return None
    # runs recorded before frames carried signal_no: the signal frame just before
    prev = [f for f in trail.frames if f.get("seq") == (first.get("seq") or 0) - 1]
    if prev and prev[0]["stage"] == "signal.emitted":
        symbol = (first.get("order") or first.get("request") or {}).get("symbol")
        if prev[0].get("symbol") == symbol:
            return prev[0]
    return None


def _signal_view(frame: dict[str, Any] | None) -> dict[str, Any] | None:
    if frame is None:
        return None
    return {
        "signal": frame.get("signal"),
        "symbol": frame.get("symbol"),
        "target_qty": frame.get("target_qty"),
        "price": frame.get("price"),
        "bar_ts": frame.get("bar_ts"),
        "seq": frame.get("seq"),
        "signal_no": frame.get("signal_no"),
        "message": frame.get("message"),
    }


def _live_reason(run_id: str, order_id: str, sessions: SessionRegistry | None) -> str | None:
    """Why the order is open, asked of the registry the run may live in."""
    if sessions is None:
        from alphaswarm.paper.registry import registry

        sessions = registry()
    return sessions.why_open(run_id, order_id)


def _last_bar(trail: RunTrail, symbol: str) -> dict[str, Any] | None:
    bars = trail.bars
    if bars.empty:
        return None
    mine = bars[bars["symbol"] == symbol]
    return mine.iloc[-1].to_dict() if len(mine) else None


def _open_reason(
    trail: RunTrail, order: dict[str, Any], sessions: SessionRegistry | None = None
) -> str:
    live = _live_reason(trail.run_id, order["id"], sessions)
    if live:
        return live
    bar = _last_bar(trail, order["symbol"])
    kind, side = order.get("type"), order.get("side")
    where = ""
    if bar is not None:
        where = f"; last {order['symbol']} bar {_when(bar['ts'])}: "
        where += f"low {bar['low']:.2f}, high {bar['high']:.2f}"
    if kind == "limit" and order.get("limit_price") is not None:
        edge = "low" if side == "buy" else "high"
        return f"limit {order['limit_price']:.2f} not reached by a bar's {edge}{where}"
    if kind in ("stop", "stop_limit", "trailing_stop") and order.get("stop_price") is not None:
        return f"stop {order['stop_price']:.2f} not triggered{where}"
    return (order.get("reason") or "waiting for the next bar") + where


def _risk(first: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict | None]:
    if first is None:
        return [], None
    checks = list(first.get("risk_checks") or [])
    failed = next((c for c in checks if not c.get("passed")), None)
    if failed is None and first.get("reason_code") == "risk_denied":
        failed = {
            "limit": first.get("limit"),
            "value": first.get("value"),
            "threshold": first.get("threshold"),
            "passed": False,
        }
    return checks, failed


def explain_order(
    ledger: Ledger, run_id: str, order_id: str, sessions: SessionRegistry | None = None
) -> dict[str, Any]:
    """Everything about one order of a paper run, with a readable ``text``.

    Parameters
    ----------
    ledger : Ledger
        The ledger holding the run.
    run_id : str
        The paper run.
    order_id : str
        A broker order id (``<run>-o<n>``) or the request id of a risk denial
        (``<run>-d<n>``, the ``order_id`` of its ``risk_events`` row).
    sessions : SessionRegistry, optional
        The registry asked why a live order is open (``why_open``); the process
        runtime's by default.

    Returns
    -------
    dict
        ``order_id``, ``status`` (the order's, or ``denied``), ``order`` (the row),
        ``origin`` (signal, strategy, bracket leg or flatten), ``signal``,
        ``risk_checks`` (``limit, what, value, threshold, passed`` each),
        ``risk_passed``, ``risk_failed``, ``fills``, ``cancellations``,
        ``open_reason``, ``events`` (its frames) and ``text``.

    Raises
    ------
    RunNotFound
        No such run.
    OrderNotFound
        The run has no such order or denied request.
    """
    trail = load_trail(ledger, run_id)
    orders = trail.orders
    rows = orders[orders["id"] == order_id].to_dict("records") if len(orders) else []
    order = rows[0] if rows else None
    frames = trail.order_frames(order_id)
    events = trail.risk_events
    risk_rows = events[events["order_id"] == order_id].to_dict("records") if len(events) else []
    if order is None and not frames and not risk_rows:
        raise OrderNotFound(f"no order {order_id!r} in paper run {run_id}")
    first = next((f for f in frames if f["stage"] in ("order.placed", "order.rejected")), None)
    signal = _signal_for(trail, first)
    checks, failed = _risk(first)
    if order is None:  # a request denied before it reached the broker
        request = (first or {}).get("request") or {}
        status = "denied"
        symbol, side, qty = request.get("symbol"), request.get("side"), request.get("qty")
        kind, tag, parent = request.get("type"), "", None
        if failed is None and risk_rows:
            r = risk_rows[0]
            failed = {"limit": r["limit"], "value": r["value"], "threshold": r["threshold"],
                      "passed": False}  # fmt: skip
    else:
        status = order["status"]
        symbol, side, qty = order["symbol"], order["side"], order["qty"]
        kind, tag, parent = order.get("type"), order.get("tag") or "", order.get("parent_id")
    fills_df = trail.fills
    fills = fills_df[fills_df["order_id"] == order_id].to_dict("records") if len(fills_df) else []
    fill_notes = {}
    for f in frames:
        if f["stage"] == "order.filled":
            fid = (f.get("fill") or {}).get("fill_id")
            note = (f.get("order") or {}).get("reason") or f.get("reason") or ""
            fill_notes[fid] = note
    fill_view = [
        {"fill_id": f["id"], "filled_at": f["filled_at"], "qty": f["qty"], "price": f["price"],
         "commission": f["commission"], "slippage": f["slippage"],
         "note": fill_notes.get(f["id"], "")}
        for f in fills
    ]  # fmt: skip
    cancellations = [
        {"bar_ts": f.get("bar_ts"), "reason_code": f.get("reason_code"),
         "reason": f.get("reason"), "seq": f.get("seq")}
        for f in frames
        if f["stage"] == "order.cancelled"
    ]  # fmt: skip
    if order is not None and status == "cancelled" and not cancellations:
        cancellations.append(
            {"bar_ts": order.get("updated_at"), "reason_code": order.get("reason_code"),
             "reason": order.get("reason"), "seq": None}
        )  # fmt: skip
    if order is not None and status == "rejected" and failed is None:
        failed = {"limit": order.get("reason_code"), "value": None, "threshold": None,
                  "passed": False, "what": order.get("reason")}  # fmt: skip
    open_reason = None
    if order is not None and status in _OPEN:
        open_reason = _open_reason(trail, order, sessions)
    if tag == "flatten":
        origin = "flatten: closed by the end of the run or a risk halt"
    elif parent:
        origin = f"bracket leg of order {parent}"
    elif signal is not None:
        origin = "signal"
    else:
        origin = "strategy (placed directly, no signal)"
    result = {
        "paper_run_id": run_id,
        "order_id": order_id,
        "status": status,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "type": kind,
        "order": order,
        "origin": origin,
        "signal": _signal_view(signal),
        "risk_checks": checks,
        "risk_passed": failed is None and (order is not None),
        "risk_failed": failed,
        "risk_events": risk_rows,
        "fills": fill_view,
        "filled_qty": float(sum(f["qty"] for f in fills)),
        "cancellations": cancellations,
        "open_reason": open_reason,
        "events": [
            {
                "seq": f.get("seq"),
                "stage": f["stage"],
                "bar_ts": f.get("bar_ts"),
                "message": f.get("message"),
            }
            for f in frames
        ],  # fmt: skip
    }
    result["text"] = _text(result)
    return _plain(result)


def _text(r: dict[str, Any]) -> str:
    head = f"{r['side']} {_fmt(r['qty'])} {r['symbol']} {r['type'] or ''}".strip()
    lines = [f"Order {r['order_id']} ({head}) is {r['status']}."]
    s = r["signal"]
    if s is not None:
        lines.append(
            f"Caused by signal #{s['signal_no'] or '?'} '{s['signal']}' on the {s['symbol']} "
            f"bar of {_when(s['bar_ts'])} (close {_fmt(s['price'])}, target "
            f"{_fmt(s['target_qty'])})."
        )
    else:
        lines.append(f"Origin: {r['origin']}.")
    passed = [c for c in r["risk_checks"] if c.get("passed")]
    if passed:
        shown = ", ".join(_check_text(c) for c in passed)
        lines.append(f"Risk checks passed: {shown}.")
    f = r["risk_failed"]
    if f is not None:
        lines.append(
            f"Risk check failed: {f['limit']} {_fmt(f['value'])} > {_fmt(f['threshold'])}"
            + (" — the request never reached the broker." if r["status"] == "denied" else ".")
        )
    for fill in r["fills"]:
        note = f" ({fill['note']})" if fill["note"] else ""
        lines.append(
            f"Filled {_fmt(fill['qty'])} @ {fill['price']:.4f} at {_when(fill['filled_at'])}, "
            f"commission {fill['commission']:.2f}{note}."
        )
    for c in r["cancellations"]:
        lines.append(f"Cancelled at {_when(c['bar_ts'])}: {c['reason_code']}: {c['reason']}.")
    if r["open_reason"]:
        lines.append(f"Still open: {r['open_reason']}.")
    return "\n".join(lines)


def _check_text(c: dict[str, Any]) -> str:
    if c["limit"] == "trading_mode":
        return f"trading mode {c['value']}"
    if c["limit"] == "universe":
        return f"{c['value']} in the universe"
    if c["limit"] == "no_price":
        return f"price known ({_fmt(c['value'])})"
    return f"{c['limit']} {_fmt(c['value'])} <= {_fmt(c['threshold'])}"
