"""Backtest-versus-paper reconciliation: why a paper run differed from its backtest.

``reconcile(run_id)`` rebuilds exactly the bars the run saw (its ``bar.received``
frames), re-runs the bot's backtest over them with the one engine and the bot
spec, broker config and fill rule recorded in the run's config, and lines the
two up fill by fill. Each difference gets a cause the ledger proves:

============== =====================================================================
cause          proof
============== =====================================================================
risk_denial    a ``risk_events`` row with action ``denied`` (and its ``order.rejected``
               frame) at the bar the other side traded
halt_or_kill   the run's status, ``risk.halted`` / ``session.stopped`` frames, orders
               cancelled or flattened by the end of the run, kill-switch denials
partial_fill   the order's history: ``order.filled`` frames of a partially filled
               order (volume cap, available cash)
intrabar_rule  the run's fill rule differs from the backtest's
slippage_...   ``slippage_changed`` / ``commission_changed``: the run's broker config
               differs from the backtest's
settings_...   other settings differ: participation cap, shorting, risk limits, params
bars_missing   bars missing or late in the live feed: ``feed.gap`` rows, gaps in the
               run's bar times, bars of the reference data the run never received
nondeterminism the same bars gave a different signal (``signal.emitted`` frames)
============== =====================================================================

A difference that follows from an earlier one on the same symbol (a denied buy
makes the later sell differ too) carries that earlier cause. The summary splits
the P&L difference between the run and the backtest by cause: each fill's
contribution is its mark-to-market value at the last close less commission, so
the causes add up to the whole difference.

Attribution rule: a row can carry several causes, each with its share of the
row's ``pnl_effect`` (``causes``: cause -> P&L; ``cause`` names the largest).
When the run's commission or slippage settings differ from the backtest's, the
paper fill is priced again under the backtest's rules on the same quantity and
the same price before slippage: commission is additive and slippage is price
times quantity, so each rule's share is exact (the Shapley value over the four
combinations of the two rules, which is what re-running with that one setting
changed gives when the two do not interact). The rest of the row -- another
quantity, another bar, another price before slippage, a fill on one side only --
goes to the cause the ledger proves for it (a denial, a halt, missing bars ...).
The shares of a row add up to its ``pnl_effect`` and the causes of the summary to
the whole P&L difference; a rest no cause explains is ``unexplained``.

Pass ``bot=`` (a Bot, a spec, or ``"latest"``: the bot's newest registered
version) to compare with the backtest as you run it today, and ``bars=`` (a
DataFrame or Feed) to run the backtest over reference data instead of the bars
the run saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from alphaswarm.bots import Bot
from alphaswarm.callable_module import make_callable
from alphaswarm.data.base import Feed
from alphaswarm.data.replay import ReplayFeed
from alphaswarm.engine.broker import SimulatedBroker
from alphaswarm.engine.loop import Engine
from alphaswarm.model import ModelError
from alphaswarm.stored_values import records
from alphaswarm.trail import BAR_COLUMNS, RunNotFound, RunTrail, check_bars, load_trail
from alphaswarm.views import view

if TYPE_CHECKING:
    from alphaswarm.ledger import Ledger
    from alphaswarm.research.shadow_report import ShadowReport

__all__ = ["CAUSES", "Reconciliation", "RunNotFound", "reconcile"]

#: Every cause a difference can be given, with what it means.
CAUSES: dict[str, str] = {
    "risk_denial": "a risk limit denied the order on one side",
    "halt_or_kill": "the run was halted, stopped or killed (or the kill switch refused orders)",
    "partial_fill": "the order filled in parts (volume cap or available cash)",
    "intrabar_rule": "a different intrabar fill rule",
    "slippage_changed": "slippage settings changed",
    "commission_changed": "commission settings changed",
    "settings_changed": "other settings changed (participation, shorting, risk, params)",
    "bars_missing": "bars missing or late in the live feed",
    "nondeterminism": "the strategy gave a different signal on the same bars",
    "unexplained": "no cause the ledger can prove",
}
_KILL_LIMITS = ("frozen", "halted", "reduce_only")
_END_CODES = ("kill_switch", "session_end", "risk_halt")
_EPS = 1e-9
TRADE_COLUMNS = [
    "kind", "difference", "symbol", "side", "paper_order_id", "backtest_order_id",
    "paper_time", "backtest_time", "time_diff_s", "paper_qty", "backtest_qty", "qty_diff",
    "paper_price", "backtest_price", "price_diff", "paper_commission", "backtest_commission",
    "commission_diff", "pnl_effect", "cause", "causes", "reason",
]  # fmt: skip


@dataclass
class Reconciliation:
    """The fill-by-fill comparison of a paper run with its backtest.

    Attributes
    ----------
    run_id : str
        The paper run.
    trades : DataFrame
        One row per fill pair: ``kind`` (``matched``, ``only_in_paper``,
        ``only_in_backtest``), ``difference``, both sides' time, qty, price and
        commission with their differences, ``pnl_effect`` (paper minus backtest),
        ``causes`` (each cause's share of ``pnl_effect``), ``cause`` (the one with
        the largest share) and a readable ``reason``.
    summary : dict
        Counts, both P&Ls, ``explained`` (P&L difference by cause), settings that
        changed, bars missing, and the run's end.
    shadow : ShadowReport or None
        For a run routed to a real broker with ``shadow: true``: the broker's fills
        against the fill model's on the same orders, with a suggested ``slippage_bps``
        (:func:`alphaswarm.research.shadow_report.shadow_report`).
    """

    run_id: str
    trades: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    shadow: ShadowReport | None = None

    @property
    def differences(self) -> pd.DataFrame:
        """The rows that differ."""
        return self.trades[self.trades["difference"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{paper_run_id, summary, trades}``."""
        return {
            "paper_run_id": self.run_id,
            "summary": self.summary,
            "trades": records(self.trades),
            "shadow": self.shadow.to_dict() if self.shadow is not None else None,
        }

    def text(self) -> str:
        """A few readable lines: totals, then the P&L explained by each cause."""
        s = self.summary
        lines = [
            f"paper run {self.run_id} ({s['status']}) vs backtest of {s['backtest_bot']['name']}: "
            f"{s['differences']} difference(s) in {s['fills']['paper']} paper / "
            f"{s['fills']['backtest']} backtest fills",
            f"P&L paper {s['paper_pnl']:+,.2f}, backtest {s['backtest_pnl']:+,.2f}, "
            f"difference {s['pnl_difference']:+,.2f}",
        ]
        for cause, pnl in s["explained"].items():
            lines.append(f"  {cause:<18} {pnl:+,.2f}  ({s['counts'].get(cause, 0)} fill(s))")
        for c in s["settings_changes"]:
            lines.append(
                f"  setting {c['setting']}: paper {c['paper']!r} → backtest {c['backtest']!r}"
            )
        if self.shadow is not None:
            lines.append(self.shadow.text())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def __panel__(self) -> Any:
        """A Panel view: the summary, P&L by cause and the trades table."""
        return view("reconciliation", self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        from alphaswarm.notebook import notebook_mimebundle

        return notebook_mimebundle(self, include, exclude)


# --------------------------------------------------------------------------- backtest side


@dataclass
class _Side:
    """One side's orders, fills, signals and denials, in a common shape."""

    orders: dict[str, dict[str, Any]]
    fills: list[dict[str, Any]]
    signals: dict[tuple[pd.Timestamp, str], str]
    denials: list[dict[str, Any]]
    partial: dict[str, str]  # order id -> the note that proves it filled in parts
    pnl: float
    last_close: dict[str, float]
    halted: dict[str, Any] | None = None


def _run_backtest(bot: Bot, bars: pd.DataFrame, starting_cash: float) -> _Side:
    feed = ReplayFeed.from_frame(bars[BAR_COLUMNS], source="the run's bars")
    broker = SimulatedBroker(starting_cash, bot.broker_config(), id_prefix="bt-")
    signals: dict[tuple[pd.Timestamp, str], str] = {}
    denials: list[dict[str, Any]] = []
    engine = Engine(bot.make_strategy(), broker, bot.risk_limits(), record_equity=False)

    def listen(stage: str, _message: str, extras: dict[str, Any]) -> None:
        if stage == "signal.emitted":
            signals[(pd.Timestamp(engine.last_ts), extras["symbol"])] = extras["signal"]
        elif stage == "order.rejected" and extras.get("reason_code") == "risk_denied":
            req = extras["request"]
            denials.append(
                {"bar_ts": pd.Timestamp(engine.last_ts), "symbol": req["symbol"],
                 "side": req["side"], "qty": req["qty"], "limit": extras["limit"],
                 "value": extras["value"], "threshold": extras["threshold"],
                 "reason": extras["reason"], "request_id": extras.get("request_id")}
            )  # fmt: skip

    engine.listener = listen
    for group in feed.groups():
        engine.step(group)
        if engine.halted is not None:
            break
    engine.finish()
    orders = {}
    partial = {}
    fills_by_order: dict[str, int] = {}
    for f in broker.fills:
        fills_by_order[f.order_id] = fills_by_order.get(f.order_id, 0) + 1
    for o in broker.orders.values():
        d = o.to_dict()
        d["created_at"] = pd.Timestamp(o.created_at)
        orders[o.id] = d
        if o.history or fills_by_order.get(o.id, 0) > 1:
            partial[o.id] = "; ".join(o.history) or f"{fills_by_order[o.id]} fills"
    fills = [
        {"id": f.id, "order_id": f.order_id, "symbol": f.symbol, "side": f.side.value,
         "qty": f.qty, "price": f.price, "commission": f.commission,
         "slippage": f.slippage, "time": pd.Timestamp(f.ts)}
        for f in broker.fills
    ]  # fmt: skip
    return _Side(
        orders=orders,
        fills=fills,
        signals=signals,
        denials=denials,
        partial=partial,
        pnl=broker.equity - broker.starting_cash,
        last_close={s: p.last_price for s, p in broker.positions.items()},
        halted=engine.halted.to_dict() if engine.halted else None,
    )


def _paper_side(trail: RunTrail) -> _Side:
    orders: dict[str, dict[str, Any]] = {}
    for o in trail.orders.to_dict("records"):
        o["order_id"] = o["id"]
        o["created_at"] = pd.Timestamp(o["created_at"])
        orders[o["id"]] = o
    fills = [
        {"id": f["id"], "order_id": f["order_id"], "symbol": f["symbol"], "side": f["side"],
         "qty": float(f["qty"]), "price": float(f["price"]),
         "commission": float(f["commission"]), "slippage": float(f.get("slippage") or 0.0),
         "time": pd.Timestamp(f["filled_at"])}
        for f in trail.fills.to_dict("records")
    ]  # fmt: skip
    partial: dict[str, str] = {}
    for f in trail.frames_of("order.filled"):
        order = f.get("order") or {}
        if order.get("status") == "partially_filled" or order.get("reason_code") == "partial":
            partial.setdefault(order.get("order_id"), order.get("reason") or "partially filled")
    counts: dict[str, int] = {}
    for f in fills:
        counts[f["order_id"]] = counts.get(f["order_id"], 0) + 1
    for oid, n in counts.items():
        if n > 1:
            partial.setdefault(oid, f"{n} fills")
    last_close = {}
    if len(trail.bars):
        last_close = trail.bars.groupby("symbol")["close"].last().to_dict()
    pnl = trail.run.get("total_pnl")
    halted = trail.frames_of("risk.halted")
    return _Side(
        orders=orders,
        fills=fills,
        signals={k: f.get("signal") for k, f in trail.signals.items()},
        denials=trail.denials,
        partial=partial,
        pnl=float(pnl) if pnl is not None else float("nan"),
        last_close=last_close,
        halted=halted[-1] if halted else None,
    )


# --------------------------------------------------------------------------- settings


def _settings_changes(trail: RunTrail, bot: Bot) -> list[dict[str, Any]]:
    changes = []
    paper_broker = dict(trail.config.get("broker") or {})
    paper_broker.setdefault("intrabar_rule", trail.config.get("fill_rule"))
    bt_broker = bot.broker_config().to_dict()
    for key in sorted(set(paper_broker) | set(bt_broker)):
        if paper_broker.get(key) != bt_broker.get(key):
            changes.append(
                {"setting": f"broker.{key}", "paper": paper_broker.get(key),
                 "backtest": bt_broker.get(key)}
            )  # fmt: skip
    spec = trail.spec
    for block in ("risk", "params"):
        a, b = spec.get(block) or {}, bot.spec.get(block) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                changes.append({"setting": f"{block}.{key}", "paper": a.get(key),
                                "backtest": b.get(key)})  # fmt: skip
    for key in ("strategy", "universe"):
        if spec.get(key) != bot.spec.get(key):
            changes.append({"setting": key, "paper": spec.get(key), "backtest": bot.spec.get(key)})
    return changes


def _setting_cause(setting: str) -> str:
    if setting.startswith("broker.commission"):
        return "commission_changed"
    if setting == "broker.slippage_bps":
        return "slippage_changed"
    if setting == "broker.intrabar_rule":
        return "intrabar_rule"
    return "settings_changed"


# --------------------------------------------------------------------------- bars


def _bar_differences(seen: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Bars of ``reference`` the run never received, or received with other values."""
    key = ["ts", "symbol"]
    merged = reference.merge(seen, on=key, how="outer", suffixes=("_ref", "_run"), indicator=True)
    missing = merged[merged["_merge"] == "left_only"].assign(problem="missing")
    both = merged[merged["_merge"] == "both"]
    cols = ["open", "high", "low", "close", "volume"]
    changed = pd.Series(False, index=both.index)
    for c in cols:
        changed |= ~((both[f"{c}_ref"] - both[f"{c}_run"]).abs() <= 1e-9 * both[f"{c}_ref"].abs())
    late = both[changed].assign(problem="different")
    out = pd.concat([missing, late])[[*key, "problem"]]
    return out.sort_values(key).reset_index(drop=True)


def _time_gaps(bars: pd.DataFrame) -> pd.DataFrame:
    """Gaps inside a trading day in the run's bar times (per symbol)."""
    rows = []
    if bars.empty:
        return pd.DataFrame(columns=["symbol", "from_ts", "to_ts", "missing"])
    for symbol, g in bars.groupby("symbol"):
        ts = g["ts"].sort_values().reset_index(drop=True)
        if len(ts) < 3:
            continue
        step = ts.diff().dropna()
        interval = step.median()
        if interval <= pd.Timedelta(0):
            continue
        for i in step.index:
            gap = step[i]
            if gap > interval * 1.5 and ts[i].date() == ts[i - 1].date():
                rows.append(
                    {"symbol": symbol, "from_ts": ts[i - 1], "to_ts": ts[i],
                     "missing": int(round(gap / interval)) - 1}
                )  # fmt: skip
    return pd.DataFrame(rows, columns=["symbol", "from_ts", "to_ts", "missing"])


# --------------------------------------------------------------------------- matching


def _pair_orders(
    paper: dict[str, dict[str, Any]], bt: dict[str, dict[str, Any]], tolerance: pd.Timedelta
) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Pair orders by (symbol, side, tag) at the same bar; leftovers by the nearest bar."""

    def groups(orders: dict[str, dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
        out: dict[tuple, list[dict[str, Any]]] = {}
        for o in orders.values():
            key = (o["symbol"], o["side"], o.get("tag") or "", bool(o.get("parent_id")))
            out.setdefault(key, []).append(o)
        for v in out.values():
            v.sort(key=lambda o: (o["created_at"], _seq(o["order_id"])))
        return out

    gp, gb = groups(paper), groups(bt)
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
    for key in sorted(set(gp) | set(gb), key=str):
        ps, bs = list(gp.get(key, [])), list(gb.get(key, []))
        left_p = []
        for p in ps:
            hit = next((b for b in bs if b["created_at"] == p["created_at"]), None)
            if hit is not None:
                bs.remove(hit)
                pairs.append((p, hit))
            else:
                left_p.append(p)
        for p in left_p:
            near = [b for b in bs if abs(b["created_at"] - p["created_at"]) <= tolerance]
            if near:
                b = min(near, key=lambda b: abs(b["created_at"] - p["created_at"]))
                bs.remove(b)
                pairs.append((p, b))
            else:
                pairs.append((p, None))
        pairs.extend((None, b) for b in bs)
    return pairs


def _seq(order_id: str) -> int:
    digits = "".join(ch for ch in order_id.rsplit("o", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0


# --------------------------------------------------------------------------- causes


class _Explainer:
    """Gives each differing row its cause, from the trail and the backtest."""

    SIDE_NAMES: ClassVar[dict[str, str]] = {"paper": "paper run", "backtest": "backtest"}

    def __init__(
        self,
        trail: RunTrail,
        paper: _Side,
        bt: _Side,
        settings: list[dict[str, Any]],
        bad_bars: pd.DataFrame,
        gaps: pd.DataFrame,
    ) -> None:
        self.trail, self.paper, self.bt = trail, paper, bt
        self.settings = settings
        self.causes_by_setting: dict[str, list[str]] = {}
        for c in settings:
            self.causes_by_setting.setdefault(_setting_cause(c["setting"]), []).append(
                f"{c['setting']} {c['paper']!r} in the run, {c['backtest']!r} in the backtest"
            )
        self.bad_bars = bad_bars
        self.gaps = gaps
        self.feed_gaps = trail.feed_gaps()
        self.first_bad = bad_bars["ts"].min() if len(bad_bars) else None
        self.first_gap = gaps["from_ts"].min() if len(gaps) else None
        self.missing_keys = {
            (r.symbol, r.ts) for r in bad_bars.itertuples() if r.problem == "missing"
        }
        self.root: dict[str, tuple[str, pd.Timestamp]] = {}  # symbol -> first cause
        self.denials = {
            "paper": self._index(paper.denials),
            "backtest": self._index(bt.denials),
        }
        self.end = self._run_end()

    @staticmethod
    def _index(denials: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
        return {(d["bar_ts"], d["symbol"], d["side"]): d for d in denials}

    def _run_end(self) -> str:
        run = self.trail.run
        stopped = self.trail.frames_of("session.stopped")
        seq = f" (session.stopped frame {stopped[-1]['seq']})" if stopped else ""
        return f"run {run.get('status')}: {run.get('stop_reason') or ''}{seq}"

    def _bars_reason(self, when: pd.Timestamp) -> str | None:
        """Why bars up to ``when`` differ between the run and the backtest, if they do."""
        parts = []
        if self.first_bad is not None and self.first_bad <= when:
            bad = self.bad_bars[self.bad_bars["ts"] <= when]
            first = bad.iloc[0]
            parts.append(
                f"{len(bad)} bar(s) of the reference data {first['problem']} in the run "
                f"(first {first['symbol']} {first['ts']:%Y-%m-%d %H:%M})"
            )
        if self.first_gap is not None and self.first_gap <= when:
            g = self.gaps[self.gaps["from_ts"] <= when].iloc[0]
            parts.append(
                f"the run's {g['symbol']} bars jump from {g['from_ts']:%H:%M} to "
                f"{g['to_ts']:%H:%M} ({g['missing']} missing)"
            )
        if len(self.feed_gaps):
            fg = self.feed_gaps[pd.to_datetime(self.feed_gaps["at"], utc=True) <= when]
            if len(fg):
                parts.append(f"feed.gap risk event #{fg.iloc[0]['id']}: {fg.iloc[0]['message']}")
        return "; ".join(parts) or None

    def explain(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple[str, str]:
        """Return ``(cause, reason)`` for a differing row."""
        symbol = row["symbol"]
        when = min(t for t in (row["paper_time"], row["backtest_time"]) if t is not None)
        cause = self._direct(row, p, b)
        if cause is not None:
            self.root.setdefault(symbol, (cause[0], when))
            return cause
        root = self.root.get(symbol)
        if root is not None:
            return root[0], (
                f"follows from the {root[0]} at {root[1]:%Y-%m-%d %H:%M}: "
                f"the {symbol} position already differed"
            )
        if self.causes_by_setting:
            cause = next(iter(self.causes_by_setting))
            self.root.setdefault(symbol, (cause, when))
            return cause, "; ".join(self.causes_by_setting[cause])
        return "unexplained", "no cause found in the ledger"

    def _direct(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple | None:
        for check in (self._halt, self._denial, self._partial, self._bars, self._settings,
                      self._signal):  # fmt: skip
            found = check(row, p, b)
            if found is not None:
                return found
        return None

    def _halt(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple | None:
        if p is not None and p.get("tag") == "flatten" and row["kind"] != "matched":
            return "halt_or_kill", f"position closed by the end of the run ({self.end})"
        if b is not None and b.get("tag") == "flatten" and row["kind"] != "matched":
            return "halt_or_kill", f"the backtest halted: {(self.bt.halted or {}).get('message')}"
        if (
            p is not None
            and p.get("status") == "cancelled"
            and p.get("reason_code") in _END_CODES
            and (row["backtest_qty"] or 0) > (row["paper_qty"] or 0)
        ):
            return "halt_or_kill", (
                f"order {p['order_id']} cancelled ({p['reason_code']}: {p.get('reason')}); "
                f"{self.end}"
            )
        return None

    def _denial(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple | None:
        if p is None and b is not None:
            side, order = "paper", b  # the backtest traded; did the run's risk deny it?
        elif b is None and p is not None:
            side, order = "backtest", p
        else:
            return None
        d = self.denials[side].get((order["created_at"], order["symbol"], order["side"]))
        if d is None:
            return None
        cite = f" (risk_events denied, request {d['request_id']})" if d.get("request_id") else ""
        text = (
            f"the {self.SIDE_NAMES[side]} denied {d['side']} {d['qty']:g} {d['symbol']} at "
            f"{d['bar_ts']:%Y-%m-%d %H:%M}: {d['reason']}{cite}"
        )
        if d["limit"] in _KILL_LIMITS:
            return "halt_or_kill", text + " — the kill switch or a halt refused it"
        return "risk_denial", text

    def _bars(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple | None:
        bt_time = row["backtest_time"]
        if bt_time is not None and (row["symbol"], bt_time) in self.missing_keys:
            return "bars_missing", (
                f"the backtest filled on the {row['symbol']} bar of {bt_time:%Y-%m-%d %H:%M}, "
                "which the run never received"
            )
        created = [o["created_at"] for o in (p, b) if o is not None]
        if len(created) == 2 and created[0] == created[1]:
            if row["kind"] == "matched" and row["time_diff_s"] == 0:
                if (row["symbol"], row["paper_time"]) in self._different_keys():
                    why = self._bars_reason(row["paper_time"])
                    return "bars_missing", f"the fill bar differs: {why}"
            return None
        when = max(created) if created else row["paper_time"] or row["backtest_time"]
        why = self._bars_reason(when)
        if why is not None:
            return "bars_missing", f"the order came on another bar: {why}"
        return None

    def _different_keys(self) -> set:
        bad = self.bad_bars
        return {(r.symbol, r.ts) for r in bad.itertuples() if r.problem == "different"}

    def _partial(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple | None:
        """One side's order filled in parts and the other's did not."""
        if abs(row["qty_diff"] or 0) <= _EPS and row["kind"] == "matched":
            return None
        sides = [
            (side, order, book.partial[order["order_id"]])
            for side, order, book in (("paper", p, self.paper), ("backtest", b, self.bt))
            if order is not None and order["order_id"] in book.partial
        ]
        if len(sides) != 1:
            return None  # both or neither: the parts are not what differs
        side, order, note = sides[0]
        return "partial_fill", (
            f"{self.SIDE_NAMES[side]} order {order['order_id']} filled in parts: {note}"
        )

    def _settings(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple | None:
        """Same fill bar, another price before slippage: the intrabar rule changed.

        Commission and slippage are not causes found here: their exact shares are
        split off every fill first (:func:`_cost_shares`).
        """
        found = self.causes_by_setting
        if not found or row["kind"] != "matched" or abs(row["qty_diff"]) > _EPS:
            return None
        if abs(row["price_diff"] or 0) > _EPS and row["time_diff_s"] == 0:
            for cause in ("intrabar_rule", "slippage_changed"):
                if cause in found:
                    return cause, "; ".join(found[cause])
        return None

    def _signal(self, row: dict[str, Any], p: dict | None, b: dict | None) -> tuple | None:
        order = p or b
        if order is None:
            return None
        key = (order["created_at"], order["symbol"])
        sp, sb = self.paper.signals.get(key), self.bt.signals.get(key)
        if sp != sb and self._bars_reason(order["created_at"]) is None:
            return "nondeterminism", (
                f"same bars up to {order['created_at']:%Y-%m-%d %H:%M}, but the run's signal "
                f"was {sp!r} and the backtest's {sb!r}"
            )
        return None


# --------------------------------------------------------------------------- cost shares

_SLIPPING_TYPES = ("market", "stop", "trailing_stop")


@dataclass(frozen=True)
class _Costs:
    """The commission and slippage rules of both sides, and which of them changed."""

    paper: dict[str, Any]
    backtest: dict[str, Any]

    @property
    def slippage_changed(self) -> bool:
        return _num(self.paper, "slippage_bps") != _num(self.backtest, "slippage_bps")

    @property
    def commission_changed(self) -> bool:
        keys = {k for k in (*self.paper, *self.backtest) if k.startswith("commission")}
        return any(self.paper.get(k) != self.backtest.get(k) for k in keys)


def _num(config: dict[str, Any], key: str) -> float:
    value = config.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _commission(config: dict[str, Any], qty: float, price: float) -> float:
    """The commission ``config`` charges on one fill (per share + bps of notional, minimum)."""
    fee = _num(config, "commission_per_share") * qty
    fee += _num(config, "commission_bps") * 1e-4 * qty * price
    return max(fee, _num(config, "commission_min"))


def _cost_shares(
    fill: dict[str, Any] | None, order: dict[str, Any] | None, costs: _Costs, mark: float
) -> dict[str, float]:
    """The P&L a paper fill gained or lost by the run's commission and slippage rules.

    The fill is priced four ways: with the run's or the backtest's slippage, and
    the run's or the backtest's commission, on the same quantity and the same
    price before slippage (``price - slippage / qty``, adverse). Each rule's share
    is its Shapley value over those four: the mean of what switching that rule
    alone changes, with the other rule at either side's value. The two shares add
    up exactly to the fill's P&L under the run's rules less its P&L under the
    backtest's rules; the rest of a row's difference has another cause.
    """
    if fill is None or not (costs.slippage_changed or costs.commission_changed):
        return {}
    sign = 1.0 if fill["side"] == "buy" else -1.0
    qty, price = fill["qty"], fill["price"]
    if qty <= 0:
        return {}
    ref = price - sign * fill.get("slippage", 0.0) / qty
    slips = (order or {}).get("type") in _SLIPPING_TYPES or fill.get("slippage", 0.0) > 0
    bt_bps = _num(costs.backtest, "slippage_bps") if slips else 0.0
    prices = {"paper": price}
    prices["backtest"] = ref * (1 + sign * bt_bps * 1e-4) if costs.slippage_changed else price

    def pnl(slip: str, comm: str) -> float:
        at = prices[slip]
        if slip == "paper" and (comm == "paper" or not costs.commission_changed):
            fee = fill["commission"]  # what the run paid
        elif comm == "backtest" and costs.commission_changed:
            fee = _commission(costs.backtest, qty, at)
        else:
            fee = _commission(costs.paper, qty, at)
        return sign * qty * (mark - at) - fee

    pp, pb, bp, bb = pnl("paper", "paper"), pnl("paper", "backtest"), pnl("backtest", "paper"), \
        pnl("backtest", "backtest")  # fmt: skip
    shares = {}
    if costs.slippage_changed:
        shares["slippage_changed"] = 0.5 * ((pb - bb) + (pp - bp))
    if costs.commission_changed:
        shares["commission_changed"] = 0.5 * ((bp - bb) + (pp - pb))
    return {c: v for c, v in shares.items() if abs(v) > _EPS}


# --------------------------------------------------------------------------- rows


def _effect(fill: dict[str, Any] | None, last: dict[str, float]) -> float:
    if fill is None:
        return 0.0
    sign = 1.0 if fill["side"] == "buy" else -1.0
    mark = last.get(fill["symbol"], fill["price"])
    return sign * fill["qty"] * (mark - fill["price"]) - fill["commission"]


def _row(pf: dict | None, bf: dict | None, p: dict | None, b: dict | None, last: dict) -> dict:
    one = pf or bf
    kind = "matched" if pf and bf else ("only_in_paper" if pf else "only_in_backtest")

    def diff(key: str) -> float | None:
        return pf[key] - bf[key] if pf and bf else None

    time_diff = (pf["time"] - bf["time"]).total_seconds() if pf and bf else None
    row = {
        "kind": kind,
        "symbol": one["symbol"],
        "side": one["side"],
        "paper_order_id": p["order_id"] if p else None,
        "backtest_order_id": b["order_id"] if b else None,
        "paper_time": pf["time"] if pf else None,
        "backtest_time": bf["time"] if bf else None,
        "time_diff_s": time_diff,
        "paper_qty": pf["qty"] if pf else None,
        "backtest_qty": bf["qty"] if bf else None,
        "qty_diff": (pf["qty"] if pf else 0.0) - (bf["qty"] if bf else 0.0),
        "paper_price": pf["price"] if pf else None,
        "backtest_price": bf["price"] if bf else None,
        "price_diff": diff("price"),
        "paper_commission": pf["commission"] if pf else None,
        "backtest_commission": bf["commission"] if bf else None,
        "commission_diff": diff("commission"),
        "_paper_slippage": pf.get("slippage", 0.0) if pf else 0.0,
        # both sides marked at the backtest's last closes; the final mark is separate
        "pnl_effect": _effect(pf, last) - _effect(bf, last),
    }
    row["difference"] = kind != "matched" or any(
        abs(row[k] or 0.0) > _EPS * max(1.0, abs(one["price"]))
        for k in ("time_diff_s", "qty_diff", "price_diff", "commission_diff")
    )
    return row


# --------------------------------------------------------------------------- the entry point


def _coerce_bot(bot: Any, trail: RunTrail, ledger: Ledger) -> Bot:
    if bot is None:
        return Bot(trail.spec)
    if isinstance(bot, str) and bot == "latest":
        return Bot(ledger.bot_spec(trail.run["bot_id"]))
    return Bot.coerce(bot)


def _reference_bars(bars: Any, seen: pd.DataFrame) -> pd.DataFrame:
    if bars is None:
        return seen
    first, last = seen["ts"].min(), seen["ts"].max()
    if isinstance(bars, Feed):
        frame = bars.frame(start=first, end=last)
    elif isinstance(bars, pd.DataFrame):
        frame = ReplayFeed.from_frame(bars).frame(start=first, end=last)
    else:
        raise ModelError(f"bars: expected a DataFrame or a Feed, got {type(bars).__name__}")
    frame = frame[frame["symbol"].isin(set(seen["symbol"]))]
    if frame.empty:
        raise ModelError("bars: the reference data has no bars in the run's time range")
    return frame.reset_index(drop=True)


def reconcile(
    run_id: str,
    ledger: Ledger | None = None,
    *,
    bot: Bot | dict[str, Any] | str | None = None,
    bars: pd.DataFrame | Feed | None = None,
) -> Reconciliation:
    """Line a paper run up with its backtest, fill by fill, and explain every difference.

    Parameters
    ----------
    run_id : str
        The paper run.
    ledger : Ledger, optional
        Where the run is; the process default otherwise.
    bot : Bot, dict, str, optional
        The backtest's bot: by default the spec, broker config and fill rule
        recorded in the run's config; ``"latest"`` for the bot's newest registered
        version; or any Bot / spec (your research version). Settings that differ
        from the run's are listed in ``summary["settings_changes"]``.
    bars : DataFrame or Feed, optional
        Reference bars for the backtest (cut to the run's time range and symbols);
        by default exactly the bars the run saw, rebuilt from its frames.

    Returns
    -------
    Reconciliation
        ``.trades`` (one row per fill pair) and ``.summary``.

    Raises
    ------
    RunNotFound
        When the ledger has no such run.
    ModelError
        When the run saw no bars or ``bars`` is unusable.
    """
    if ledger is None:
        from alphaswarm.paper.runtime import get_ledger

        ledger = get_ledger()
    trail = load_trail(ledger, run_id)
    seen = check_bars(trail)
    backtest_bot = _coerce_bot(bot, trail, ledger)
    reference = _reference_bars(bars, seen)
    paper = _paper_side(trail)
    bt = _run_backtest(backtest_bot, reference, trail.starting_cash)
    settings = _settings_changes(trail, backtest_bot)
    bad_bars = _bar_differences(seen, reference) if bars is not None else _empty_bad()
    gaps = _time_gaps(seen)
    steps = seen["ts"].drop_duplicates().sort_values().diff().dropna()
    interval = steps.median() if len(steps) else pd.Timedelta(minutes=1)
    explainer = _Explainer(trail, paper, bt, settings, bad_bars, gaps)
    fills_of: dict[str, list[dict[str, Any]]] = {}
    for f in [*paper.fills, *bt.fills]:
        fills_of.setdefault(f["order_id"], []).append(f)
    rows = []
    pairs = _pair_orders(paper.orders, bt.orders, tolerance=interval * 10)
    for p, b in pairs:
        pf = fills_of.get(p["order_id"], []) if p else []
        bf = fills_of.get(b["order_id"], []) if b else []
        for i in range(max(len(pf), len(bf))):
            f1 = pf[i] if i < len(pf) else None
            f2 = bf[i] if i < len(bf) else None
            rows.append((_row(f1, f2, p, b, bt.last_close), p, b))
    rows.sort(key=lambda r: min(t for t in (r[0]["paper_time"], r[0]["backtest_time"]) if t))
    costs = _Costs(dict(trail.config.get("broker") or {}), backtest_bot.broker_config().to_dict())
    out = []
    for row, p, b in rows:
        row["causes"], row["cause"], row["reason"] = {}, "", ""
        if row["difference"]:
            _attribute(row, p, b, explainer, costs, bt.last_close)
        out.append(row)
    trades = pd.DataFrame(out, columns=TRADE_COLUMNS)
    trades["difference"] = trades["difference"].astype(bool)
    summary = _summary(trail, backtest_bot, paper, bt, trades, settings, bad_bars, gaps, seen)
    summary["bars"]["reference"] = len(reference)
    return Reconciliation(
        run_id=run_id, trades=trades, summary=summary, shadow=_shadow(trail, ledger)
    )


def _shadow(trail: RunTrail, ledger: Ledger) -> ShadowReport | None:
    """The broker-vs-shadow report of a run that ran a shadow simulator, else None."""
    from alphaswarm.research.shadow_report import shadow_report, shadow_state

    if shadow_state(ledger.get_run(trail.run_id)) is None:
        return None
    return shadow_report(trail.run_id, ledger)


def _attribute(
    row: dict[str, Any],
    p: dict | None,
    b: dict | None,
    explainer: _Explainer,
    costs: _Costs,
    last: dict[str, float],
) -> None:
    """Split a differing row's ``pnl_effect`` between its causes (``row["causes"]``).

    The paper fill's commission and slippage shares come first (exact, see
    :func:`_cost_shares`); whatever else differs (the quantity, the bar, the price
    before slippage, a fill on one side only) carries the rest, under the cause
    the explainer proves. ``cause`` is the cause with the largest share.
    """
    mark = last.get(row["symbol"], row["paper_price"] or row["backtest_price"])
    pf = None
    if row["paper_qty"] is not None:
        pf = {
            "side": row["side"],
            "qty": row["paper_qty"],
            "price": row["paper_price"],
            "commission": row["paper_commission"],
            "slippage": row.pop("_paper_slippage"),
        }
    shares = _cost_shares(pf, p, costs, mark)
    rest = row["pnl_effect"] - sum(shares.values())
    scale = _EPS * max(1.0, abs(row["paper_price"] or row["backtest_price"] or 0.0))
    other_differs = (
        row["kind"] != "matched"
        or abs(row["qty_diff"] or 0.0) > scale
        or abs(row["time_diff_s"] or 0.0) > 0
        or abs(rest) > 1e-9 * max(1.0, abs(row["pnl_effect"]))
        or not shares
    )
    reasons = []
    causes = dict(shares)
    proved = ""
    if other_differs:
        proved, reason = explainer.explain(row, p, b)
        causes[proved] = causes.get(proved, 0.0) + rest
        reasons.append(reason)
    for cost in ("commission_changed", "slippage_changed"):
        if cost in shares:
            settings = "; ".join(explainer.causes_by_setting.get(cost, []))
            reasons.append(f"{cost} {shares[cost]:+,.2f}: {settings}")
    row["causes"] = causes
    row["cause"] = max(causes, key=lambda c: abs(causes[c]))
    if proved and abs(causes[row["cause"]]) <= _EPS:
        row["cause"] = proved  # no P&L: the cause the explainer proved names the row
    row["reason"] = "; ".join(r for r in reasons if r)


def _empty_bad() -> pd.DataFrame:
    return pd.DataFrame(columns=["ts", "symbol", "problem"])


def _summary(
    trail: RunTrail,
    bot: Bot,
    paper: _Side,
    bt: _Side,
    trades: pd.DataFrame,
    settings: list[dict[str, Any]],
    bad_bars: pd.DataFrame,
    gaps: pd.DataFrame,
    seen: pd.DataFrame,
) -> dict[str, Any]:
    diffs = trades[trades["difference"]]
    explained: dict[str, float] = {}
    counts: dict[str, int] = {}
    for causes in diffs["causes"]:
        for cause, share in causes.items():
            explained[cause] = explained.get(cause, 0.0) + float(share)
            counts[cause] = counts.get(cause, 0) + 1
    # positions held at the end, marked at the run's last closes instead of the backtest's
    final_mark = 0.0
    for f in paper.fills:
        sign = 1.0 if f["side"] == "buy" else -1.0
        s = f["symbol"]
        final_mark += sign * f["qty"] * (paper.last_close.get(s, 0.0) - bt.last_close.get(s, 0.0))
    if abs(final_mark) > 1e-6:
        explained["bars_missing"] = explained.get("bars_missing", 0.0) + final_mark
    paper_pnl = paper.pnl
    if math.isnan(paper_pnl):
        paper_pnl = sum(_effect(f, paper.last_close) for f in paper.fills)
    difference = paper_pnl - bt.pnl
    residual = difference - sum(explained.values())
    if abs(residual) > 1e-6 * max(1.0, abs(difference)):
        explained["unexplained"] = explained.get("unexplained", 0.0) + residual
    kinds = trades["kind"].value_counts().to_dict()
    halted = trail.frames_of("risk.halted")
    stopped = trail.frames_of("session.stopped")
    return {
        "paper_run_id": trail.run_id,
        "status": trail.status,
        "stop_reason": trail.run.get("stop_reason"),
        "backtest_bot": {
            "name": bot.name,
            "spec_hash": bot.spec_hash,
            "same_as_run": bot.spec_hash == trail.config.get("spec_hash"),
        },  # fmt: skip
        "fills": {
            "paper": len(paper.fills),
            "backtest": len(bt.fills),
            "matched": int(kinds.get("matched", 0)),
            "only_in_paper": int(kinds.get("only_in_paper", 0)),
            "only_in_backtest": int(kinds.get("only_in_backtest", 0)),
        },
        "differences": len(diffs),
        "paper_pnl": paper_pnl,
        "backtest_pnl": bt.pnl,
        "pnl_difference": difference,
        "explained": dict(sorted(explained.items(), key=lambda kv: -abs(kv[1]))),
        "counts": counts,
        "settings_changes": settings,
        "bars": {
            "paper": len(seen),
            "reference": len(seen),
            "missing": [
                {"symbol": r.symbol, "ts": r.ts.isoformat(), "problem": r.problem}
                for r in bad_bars.head(50).itertuples()
            ],
            "time_gaps": [
                {
                    "symbol": r.symbol,
                    "from_ts": r.from_ts.isoformat(),
                    "to_ts": r.to_ts.isoformat(),
                    "missing": int(r.missing),
                }
                for r in gaps.head(50).itertuples()
            ],  # fmt: skip
            "feed_gaps": len(trail.feed_gaps()),
        },
        "risk_denials": {"paper": len(paper.denials), "backtest": len(bt.denials)},
        "halt": (
            {"limit": halted[-1].get("limit"), "reason": halted[-1].get("reason")}
            if halted
            else None
        ),
        "stopped": (
            {k: stopped[-1].get(k) for k in ("status", "reason", "mode", "positions_flattened")}
            if stopped
            else None
        ),
        "causes": CAUSES,
    }


make_callable(__name__, "reconcile")  # aw.reconcile(...) calls it; the module stays importable
