"""``/sweeps`` and ``/sweeps/<name>``: parameter sweeps as the ledger holds them.

The list shows every sweep with its status and finished trials; a sweep's page
shows its trials, the best one, the overfitting report (deflated Sharpe of the
winner, probability of backtest overfitting) recomputed from the stored trials,
and a heatmap of the objective when two parameters were swept. The page of a
running sweep re-reads it every few seconds until it ends.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd
import panel as pn
import param

from alphaswarm.paper.runtime import get_ledger
from alphaswarm.sweep.api import SweepResult, overfit_report, score
from alphaswarm.sweep.ledger import OOS_PREFIX, SweepStore
from alphaswarm.ui.pages.html import Link, fmt_number, fmt_time, table
from alphaswarm.ui.routes import page_path

#: Metrics shown per trial, with their formats.
TRIAL_METRICS = (
    ("sharpe", ".3f"),
    ("max_drawdown", ".2%"),
    ("total_return", ".2%"),
    ("num_trades", ".0f"),
)
#: Statuses a sweep row can have, as the list shows them.
STATUS_LABELS = {"running": "running", "done": "done", "cancelled": "cancelled", "failed": "failed"}


def trials_frame(
    store: SweepStore, sweep_id: str
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """A sweep's trials, their per-block moments (for PBO) and the swept parameters.

    The trials come one row each, their params and metrics as columns.
    """
    raw = store.trials(sweep_id)
    records, blocks, names = [], {}, []
    for row in raw.to_dict("records"):
        params = row.get("params") or {}
        metrics = row.get("metrics") or {}
        for name in params:
            if name not in names:
                names.append(name)
        rec = {
            "trial_key": row["trial_key"],
            **params,
            "status": row["status"],
            "error": row["error"],
        }
        rec.update({k: v for k, v in metrics.items() if k not in ("blocks", "slice")})
        if row["status"] == "done" and "blocks" in metrics:
            blocks[row["trial_key"]] = metrics["blocks"]
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    for col in ("trial_key", "status", "error", "sr", "days", "skew", "kurt"):
        if col not in frame.columns:
            frame[col] = None
    for col, _ in TRIAL_METRICS:
        if col not in frame.columns:
            frame[col] = float("nan")
    return frame, blocks, names


class SweepsPage(pn.viewable.Viewer):
    """Every sweep in the ledger, newest first."""

    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.table = pn.pane.HTML("", sizing_mode="stretch_width")
        self.retime()

    def retime(self) -> None:
        """Read the sweeps and show them (again, once the browser's zone is known)."""
        store = SweepStore(self.ledger or get_ledger())
        rows = [
            (
                Link(s["name"], page_path("sweep", s["name"])),
                STATUS_LABELS.get(s["status"], s["status"]),
                Link(s["bot_id"], page_path("bot", s["bot_id"])) if s.get("bot_id") else "",
                int(s.get("trials") or 0),
                fmt_time(s.get("created_at")),
            )
            for s in store.list()
        ]
        self.table.object = table(
            ["sweep", "status", "bot", "trials", "started"],
            rows,
            "alphaswarm-sweeps-table",
            empty="No sweeps yet: run aw.sweep(bot, grid, name=...) or alphaswarm sweep.",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        return pn.Column(
            pn.pane.Markdown("## Sweeps"),
            self.table,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-sweeps-page"],
        )


class SweepPage(pn.viewable.Viewer):
    """One sweep: trials, the best trial, DSR and PBO, and a heatmap for two parameters."""

    name = param.String(default="", doc="The sweep's name (or id).")
    ledger = param.Parameter(default=None, doc="Ledger to read; the process default otherwise.")

    refresh_ms = param.Integer(
        default=2000, bounds=(250, None), doc="Milliseconds between re-reads of a running sweep."
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.store = SweepStore(self.ledger or get_ledger())
        self._callback: Any = None
        self._read()
        self.head = pn.pane.HTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-sweep-head"]
        )
        self.report_pane = pn.pane.HTML("", sizing_mode="stretch_width")
        self.heatmap_holder = pn.Column(
            sizing_mode="stretch_width", css_classes=["alphaswarm-sweep-heatmap"]
        )
        self.trials_pane = pn.pane.HTML("", sizing_mode="stretch_width")
        self._show()
        if self.running and pn.state.curdoc is not None:
            # a running sweep: follow its progress until it ends
            self._callback = pn.state.add_periodic_callback(self.reload, period=self.refresh_ms)

    @property
    def running(self) -> bool:
        """Whether the sweep is still running."""
        return self.row is not None and self.row.get("status") == "running"

    def _read(self) -> None:
        self.row = self.store.get(self.name)
        self.frame = pd.DataFrame()
        self.report: dict[str, Any] = {}
        self.names: list[str] = []
        if self.row is not None:
            config = self.row.get("config") or {}
            self.objective = config.get("objective") or "sharpe"
            self.frame, blocks, self.names = trials_frame(self.store, self.row["id"])
            if len(self.frame):
                in_sample = self.frame[
                    ~self.frame["trial_key"].astype(str).str.startswith(OOS_PREFIX)
                ]
                n_family = self.store.family_trials(self.row.get("bot_id"))
                self.report = overfit_report(in_sample, blocks, self.objective, n_family)

    def _show(self) -> None:
        if self.row is None:
            return
        self.head.object = self._head()
        self.report_pane.object = self._report_html()
        plot = self.heatmap()
        self.heatmap_holder.objects = (
            [pn.panel(plot, sizing_mode="stretch_width", min_height=340)]
            if plot is not None
            else []
        )
        self.trials_pane.object = self._trials_html()

    def reload(self) -> None:
        """Re-read the sweep and show it; stop following it once it has ended."""
        self._read()
        self._show()
        if not self.running and self._callback is not None:
            self._callback.stop()
            self._callback = None

    def best(self) -> pd.Series | None:
        """The winning finished trial (by the sweep's objective), or ``None``."""
        done = self.frame[self.frame["status"] == "done"] if len(self.frame) else self.frame
        if done.empty:
            return None
        scores = score(done, self.objective)
        if scores.notna().sum() == 0:
            return None
        return done.loc[scores.idxmax()]

    def _report_html(self) -> str:
        r = self.report
        best = self.best()
        parts = [
            f"<div>objective <b>{html.escape(str(self.objective))}</b> · trials on record "
            f"(N) <b>{r.get('n_trials', 0)}</b> · in this sweep <b>{r.get('n_sweep', 0)}</b></div>"
        ]
        if best is not None:
            params = ", ".join(f"{n}={best[n]}" for n in self.names)
            key = html.escape(str(best["trial_key"])[:12])
            sharpe = fmt_number(best.get("sharpe"), ".3f")
            parts.append(
                f'<div class="alphaswarm-sweep-best">best trial <code>{key}</code>: '
                f"{html.escape(params)} · sharpe {sharpe}</div>"
            )
        dsr, pbo = r.get("dsr", float("nan")), r.get("pbo", float("nan"))
        verdict = "passes" if r.get("passes_gate") else "does not pass"
        parts.append(
            f'<div class="alphaswarm-sweep-report">deflated Sharpe (DSR) of the winner '
            f"<b>{fmt_number(dsr, '.3f')}</b> ({verdict} DSR ≥ 0.95) · probability of "
            f"backtest overfitting (PBO) <b>{fmt_number(pbo, '.2f')}</b>"
            + (
                f" over {r['pbo_blocks']} blocks"
                if isinstance(r.get("pbo_blocks"), int) and math.isfinite(pbo)
                else ""
            )
            + "</div>"
        )
        return "".join(parts)

    def _trials_html(self) -> str:
        frame = self.frame
        if len(frame):
            frame = frame.assign(_score=score(frame, self.objective)).sort_values(
                "_score", ascending=False, na_position="last"
            )
        rows = [
            (
                str(r["trial_key"])[:12],
                *(r.get(n) for n in self.names),
                r["status"],
                *(fmt_number(r.get(m), spec) for m, spec in TRIAL_METRICS),
            )
            for r in frame.to_dict("records")
        ]
        return table(
            ["trial", *self.names, "status", *(m for m, _ in TRIAL_METRICS)],
            rows,
            "alphaswarm-sweep-trials",
            empty="No trials finished yet.",
        )

    def heatmap(self) -> Any:
        """The objective over the first two swept parameters (``None`` for fewer)."""
        done = self.frame[self.frame["status"] == "done"] if len(self.frame) else self.frame
        if len(self.names) < 2 or done.empty:
            return None
        result = SweepResult(
            name=self.row["name"],
            objective=self.objective,
            trials=self.frame,
            params_names=self.names,
        )
        metric = self.objective if self.objective in self.frame.columns else "sharpe"
        return result.heatmap(self.names[0], self.names[1], metric)

    def _head(self) -> str:
        row = self.row
        bot = (
            f' · bot <a href="{html.escape(page_path("bot", row["bot_id"]))}">'
            f"{html.escape(row['bot_id'])}</a>"
            if row.get("bot_id")
            else ""
        )
        counts = ", ".join(f"{n} {s}" for s, n in sorted((row.get("counts") or {}).items()))
        return (
            f'<h2 style="margin:4px 0">Sweep {html.escape(row["name"])}</h2>'
            f'<div class="alphaswarm-sweep-status">status <b>{html.escape(row["status"])}</b>'
            f" · trials {html.escape(counts or 'none')}{bot} · started "
            f"{fmt_time(row.get('created_at'))} · "
            f'<a href="{page_path("sweeps")}">all sweeps</a></div>'
        )

    def retime(self) -> None:
        """Show the times again (the browser's zone became known)."""
        if self.row is not None:
            self.head.object = self._head()

    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        if self.row is None:
            return pn.pane.Alert(
                f"No sweep <code>{html.escape(self.name)}</code> in this ledger. "
                f'<a href="{page_path("sweeps")}">All sweeps</a>.',
                alert_type="warning",
                css_classes=["alphaswarm-missing-sweep"],
            )
        parts: list[Any] = [
            self.head,
            pn.pane.Markdown("### Overfitting report"),
            self.report_pane,
            self.heatmap_holder,
            pn.pane.Markdown("### Trials"),
            self.trials_pane,
        ]
        return pn.Column(*parts, sizing_mode="stretch_width", css_classes=["alphaswarm-sweep-page"])
