"""RunTrail: everything the ledger holds about one paper run, read once and indexed.

Reconciliation (:mod:`alphaswarm.reconcile`) and order explanations
(:mod:`alphaswarm.paper.explain`) both prove their statements from the ledger: the
run row and its config, the frames (each annotated with the bar time it was
emitted under), the bars the run saw (its ``bar.received`` frames), orders,
fills and risk events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from alphaswarm.model import ModelError
from alphaswarm.stored_values import json_object as _as_dict
from alphaswarm.stored_values import utc_timestamp as _ts

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger

__all__ = ["RunNotFound", "RunTrail", "load_trail"]

BAR_COLUMNS = ["ts", "symbol", "open", "high", "low", "close", "volume"]


class RunNotFound(KeyError):
    """No paper run (or no order of a run) with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


@dataclass
class RunTrail:
    """The ledger record of one paper run.

    Attributes
    ----------
    run : dict
        The ``paper_trading_runs`` row.
    config : dict
        The run's config: bot spec, broker config, fill rule, feed fingerprint.
    frames : list of dict
        Every frame in ``seq`` order, each with ``bar_ts`` added: the time of the
        bar being processed when it was emitted (None before the first bar).
    bars : DataFrame
        The bars the run saw: ``ts, symbol, open, high, low, close, volume``.
    orders : DataFrame
        The latest state of each order.
    fills : DataFrame
        Every fill in fill order.
    risk_events : DataFrame
        Risk denials, halts and feed gaps of the run.
    """

    run: dict[str, Any]
    config: dict[str, Any]
    frames: list[dict[str, Any]]
    bars: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    risk_events: pd.DataFrame
    signals: dict[tuple[pd.Timestamp, str], dict[str, Any]] = field(default_factory=dict)
    denials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        """The paper run id."""
        return self.run["id"]

    @property
    def status(self) -> str:
        """The run's status."""
        return self.run.get("status") or ""

    @property
    def spec(self) -> dict[str, Any]:
        """The bot spec the run traded."""
        return self.config.get("bot") or {}

    @property
    def starting_cash(self) -> float:
        """Cash at the start of the run."""
        return float(self.config.get("starting_cash") or self.run.get("starting_cash") or 0.0)

    def order_frames(self, order_id: str) -> list[dict[str, Any]]:
        """Frames about ``order_id`` (placed, filled, cancelled, rejected), in order."""
        out = []
        for f in self.frames:
            if not f["stage"].startswith("order."):
                continue
            order = f.get("order") or {}
            if order.get("order_id") == order_id or f.get("request_id") == order_id:
                out.append(f)
        return out

    def frames_of(self, *stages: str) -> list[dict[str, Any]]:
        """Frames of the given stages, in order."""
        return [f for f in self.frames if f["stage"] in stages]

    def feed_gaps(self) -> pd.DataFrame:
        """The ``feed.gap`` rows of ``risk_events``."""
        ev = self.risk_events
        if ev.empty:
            return ev
        return ev[ev["action"] == "feed.gap"]


def load_trail(ledger: Ledger, run_id: str) -> RunTrail:
    """Read everything about ``run_id`` from ``ledger``.

    Parameters
    ----------
    ledger : Ledger
        The ledger holding the run.
    run_id : str
        The paper run.

    Returns
    -------
    RunTrail

    Raises
    ------
    RunNotFound
        When the ledger has no such run.
    """
    run = ledger.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no paper run {run_id!r} in the ledger")
    config = _as_dict(run.get("config"))
    stored = ledger.frames(run_id)
    frames: list[dict[str, Any]] = []
    bars: list[dict[str, Any]] = []
    signals: dict[tuple[pd.Timestamp, str], dict[str, Any]] = {}
    denials: list[dict[str, Any]] = []
    bar_ts: pd.Timestamp | None = None
    for raw in stored["frame"] if len(stored) else []:
        f = dict(_as_dict(raw))
        stage = f.get("stage") or ""
        if stage == "bar.received":
            bar = f.get("bar") or {}
            bar_ts = _ts(bar.get("ts"))
            bars.append({**{k: bar.get(k) for k in BAR_COLUMNS}, "ts": bar_ts})
        f["bar_ts"] = bar_ts
        frames.append(f)
        if stage == "signal.emitted" and bar_ts is not None:
            signals[(bar_ts, f.get("symbol"))] = f
        elif stage == "order.rejected" and f.get("reason_code") == "risk_denied":
            req = f.get("request") or {}
            denials.append(
                {
                    "bar_ts": bar_ts,
                    "symbol": req.get("symbol"),
                    "side": req.get("side"),
                    "qty": req.get("qty"),
                    "limit": f.get("limit"),
                    "value": f.get("value"),
                    "threshold": f.get("threshold"),
                    "reason": f.get("reason"),
                    "request_id": f.get("request_id"),
                    "seq": f.get("seq"),
                }
            )
    bars_df = pd.DataFrame(bars, columns=BAR_COLUMNS)
    if len(bars_df):
        bars_df["ts"] = pd.to_datetime(bars_df["ts"], utc=True)
        for col in BAR_COLUMNS[2:]:
            bars_df[col] = bars_df[col].astype(float)
    return RunTrail(
        run=run,
        config=config,
        frames=frames,
        bars=bars_df,
        orders=ledger.orders(run_id),
        fills=ledger.fills(run_id),
        risk_events=ledger.risk_events(run_id),
        signals=signals,
        denials=denials,
    )


def check_bars(trail: RunTrail) -> pd.DataFrame:
    """The bars of ``trail``, or a :class:`ModelError` when the run saw none."""
    if trail.bars.empty:
        raise ModelError(
            f"paper run {trail.run_id}: no bar.received frames in the ledger, nothing to rebuild"
        )
    return trail.bars
