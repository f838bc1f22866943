"""KillSwitchWidget: one prominent control over the process kill switch.

Engaging takes two steps: the button opens a confirmation that lists every
halt target and asks the user to type ``HALT``. The widget polls the kill
switch on its pump's tick (rather than watching params that another thread
may set), so every open browser flips to *engaged* within one tick, whether
the switch was engaged here, over REST or from a notebook. An engagement the
ledger has not taken yet (another process holds its lock) shows as
*engaged (saving…)* until its row is written.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from alphaswarm.paper.killswitch import MODES, KillSwitch, kill_switch
from alphaswarm.paper.registry import registry
from alphaswarm.ui.base import LiveView
from alphaswarm.ui.pages.html import fmt_time
from alphaswarm.ui.tables import InlineHTML

CONFIRM_WORD = "HALT"


class KillSwitchWidget(LiveView):
    """Engage (after typing ``HALT``), watch and reset the process kill switch.

    ``header`` is the compact part (state badge and the big button) for a page
    header; ``details`` holds the confirmation step and the last engagement's
    per-target counts, failures and elapsed milliseconds.

    Parameters
    ----------
    switch : KillSwitch, optional
        The switch to drive; the process kill switch by default.
    """

    switch = param.ClassSelector(
        class_=KillSwitch, default=None, allow_None=True, doc="The kill switch driven."
    )
    engaged = param.Boolean(default=False, doc="Engaged as last seen on the tick.")
    actor = param.String(default="dashboard", doc="Recorded as who engaged or reset it.")

    # -- building -------------------------------------------------------------------
    def _build(self) -> None:
        if self.switch is None:
            self.switch = kill_switch()
        self._seen: tuple | None = None
        self.badge = InlineHTML(
            "",
            margin=(8, 10),
            css_classes=["alphaswarm-ks-badge"],
            # on a phone the reason is left to the engagement details below the header
            stylesheets=["@media (max-width: 760px) { .ks-reason { display: none !important; } }"],
        )
        self.engage_button = pn.widgets.Button(
            label="KILL SWITCH",
            color="danger",
            width=150,
            height=40,
            css_classes=["alphaswarm-ks-button"],
            stylesheets=[":host .bk-btn {font-weight: 800; font-size: 15px;}"],
        )
        self.engage_button.on_click(self._ask)
        self.reset_button = pn.widgets.Button(
            label="Reset kill switch", color="success", width=150, visible=False
        )
        self.reset_button.on_click(self._reset)
        self.targets_pane = InlineHTML("", sizing_mode="stretch_width")
        self.mode_select = pn.widgets.Select(
            label="Mode", options=list(MODES), value="cancel", width=140
        )
        self.reason_input = pn.widgets.TextInput(
            label="Reason", value="engaged from the dashboard", width=260
        )
        self.confirm_input = pn.widgets.TextInput(
            label=f"Type {CONFIRM_WORD} to confirm",
            placeholder=CONFIRM_WORD,
            width=200,
            css_classes=["alphaswarm-ks-confirm-input"],
        )
        self.confirm_button = pn.widgets.Button(
            label="Engage kill switch",
            color="danger",
            disabled=True,
            width=170,
            css_classes=["alphaswarm-ks-confirm"],
        )
        self.cancel_button = pn.widgets.Button(label="Cancel", width=90)
        self.confirm_input.param.watch(self._typed, ["value_input", "value"])
        self.confirm_input.param.watch(self._engage, "enter_pressed")
        self.confirm_button.on_click(self._engage)
        self.cancel_button.on_click(self._cancel)
        self.confirm_box = pn.Card(
            self.targets_pane,
            pn.Row(
                self.mode_select,
                self.reason_input,
                self.confirm_input,
                pn.Column(pn.Spacer(height=18), pn.Row(self.confirm_button, self.cancel_button)),
            ),
            title="Engage the kill switch?",
            header_background="#ffcdd2",
            collapsible=False,
            visible=False,
            sizing_mode="stretch_width",
            css_classes=["alphaswarm-ks-confirm-box"],
        )
        self.last_pane = InlineHTML(
            "", sizing_mode="stretch_width", css_classes=["alphaswarm-ks-last"]
        )
        self.header = pn.Row(
            self.badge, self.engage_button, self.reset_button, css_classes=["alphaswarm-ks"]
        )
        self.details = pn.Column(self.confirm_box, self.last_pane, sizing_mode="stretch_width")

    def _load(self) -> None:
        self._update([])

    # -- actions --------------------------------------------------------------------
    def _targets_html(self) -> str:
        running = registry().running()
        items = []
        for name in self.switch.targets:
            what = ""
            if name in ("paper", "bots"):
                what = f" — {len(running)} running paper session(s)"
                if running:
                    what += ": " + ", ".join(html.escape(s.paper_run_id) for s in running[:10])
            items.append(f"<li><b>{html.escape(name)}</b>{what}</li>")
        return (
            "<div>Engaging halts every target below and refuses new sessions until reset:"
            f'<ul class="alphaswarm-ks-targets">{"".join(items)}</ul></div>'
        )

    def _ask(self, _event: Any = None) -> None:
        self.targets_pane.object = self._targets_html()
        self.confirm_input.value = ""
        self.confirm_input.value_input = ""
        self.confirm_button.disabled = True
        self.confirm_box.visible = True

    def _typed(self, *_events: Any) -> None:
        # one call may carry both events (Tab and Enter commit value and value_input together)
        self.confirm_button.disabled = self._confirm_text() != CONFIRM_WORD

    def _confirm_text(self) -> str:
        return (self.confirm_input.value_input or self.confirm_input.value or "").strip()

    def _cancel(self, _event: Any = None) -> None:
        self.confirm_box.visible = False

    def _engage(self, *_events: Any) -> dict[str, Any] | None:
        if not self.confirm_box.visible or self._confirm_text() != CONFIRM_WORD:
            self.confirm_button.disabled = True
            return None
        result = self.engage(self.reason_input.value or "engaged from the dashboard")
        self.confirm_box.visible = False
        return result

    def engage(self, reason: str, mode: str | None = None) -> dict[str, Any]:
        """Engage the switch now (the confirmed action) and show the result."""
        result = self.switch.engage(reason, mode=mode or self.mode_select.value, actor=self.actor)
        self._update([])
        return result

    def _reset(self, _event: Any = None) -> None:
        self.switch.reset(actor=self.actor)
        self._update([])

    # -- the tick -------------------------------------------------------------------
    def _update(self, frames: list[dict[str, Any]]) -> None:
        ks = self.switch
        ks.refresh()  # another process may have engaged it (at most one read a second)
        state = ks.state()
        last = state.get("last") or {}
        key = (
            state["engaged"],
            state["mode"],
            state["reason"],
            state["engaged_at"],
            state["store_ok"],
            state["persisted"],
            last.get("engaged_at"),
            last.get("elapsed_ms"),
        )
        if key == self._seen:
            return
        self._seen = key
        self.engaged = bool(state["engaged"])
        if self.engaged:
            saving = ""
            if not state["persisted"]:  # halted here; the ledger has not taken the row yet
                saving = (
                    ' <span class="ks-saving" title="not written to the ledger yet: '
                    'retried until it is; this process refuses orders meanwhile">'
                    "(saving…)</span>"
                )
            self.badge.object = (
                '<span class="ks-state" data-state="engaged" '
                f'data-persisted="{str(bool(state["persisted"])).lower()}" '
                'style="background:#c62828;'
                'color:white;padding:6px 12px;border-radius:6px;font-weight:800">'
                f"KILL SWITCH ENGAGED ({html.escape(state['mode'])}){saving}</span>"
                f'<span class="ks-reason" title="{html.escape(state["reason"] or "")}" '
                'style="margin-left:8px;color:#eceff1;display:inline-block;max-width:240px;'
                "overflow:hidden;text-overflow:ellipsis;white-space:nowrap;"
                f'vertical-align:middle">{html.escape(state["reason"] or "")}</span>'
            )
        elif not state["store_ok"]:
            self.badge.object = (
                '<span class="ks-state" data-state="failed-closed" style="background:#ef6c00;'
                'color:white;padding:6px 12px;border-radius:6px;font-weight:800">'
                "KILL SWITCH STORE UNAVAILABLE: trading frozen</span>"
            )
        else:
            self.badge.object = (
                '<span class="ks-state" data-state="armed" style="background:#2e7d32;'
                'color:white;padding:6px 12px;border-radius:6px;font-weight:700">'
                "kill switch armed</span>"
            )
        self.engage_button.disabled = self.engaged
        self.reset_button.visible = self.engaged
        if self.engaged:
            self.confirm_box.visible = False
        self.last_pane.object = self._last_html(last)

    @staticmethod
    def _last_html(last: dict[str, Any]) -> str:
        if not last:
            return ""
        rows = []
        cell = "display:inline-block;min-width:110px"
        for name, t in (last.get("targets") or {}).items():
            failures = "; ".join(html.escape(f) for f in t.get("failures") or []) or "–"
            rows.append(
                f'<div class="ks-target" data-target="{html.escape(name)}">'
                f'<span style="{cell}">{html.escape(name)}</span>'
                f'<span style="{cell}">halted {t.get("halted", 0)}</span>'
                f"<span>{failures}</span></div>"
            )
        failures = last.get("failures") or []
        fail_html = (
            '<div style="color:#c62828"><b>failures:</b> '
            + "; ".join(html.escape(f) for f in failures)
            + "</div>"
            if failures
            else '<div style="color:#2e7d32">no failures</div>'
        )
        at = html.escape(fmt_time(last.get("engaged_at")))
        mode, why = (html.escape(str(last.get(k, ""))) for k in ("mode", "reason"))
        return (
            f"<div><b>Last engagement</b> at {at} ({mode}, {why})"
            f' took <b class="ks-elapsed">{last.get("elapsed_ms", 0):.1f} ms</b>'
            f'<div style="font-size:13px">{"".join(rows)}</div>{fail_html}</div>'
        )

    def __panel__(self) -> pn.viewable.Viewable:
        """The header row above the details."""
        return pn.Column(self.header, self.details, sizing_mode="stretch_width")
