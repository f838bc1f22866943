"""``result.save("report.html")`` opened in real Chromium with every network request blocked.

The report must draw its plots (canvases present), show the stats, log no console
error and ask for nothing but the file itself. A screenshot of it is written to
``test-artifacts/backtest_report.png``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import alphaswarm as aw
from alphaswarm.bots import DEMO_SPEC
from alphaswarm.ui.time_axis import TimeAxis

pytestmark = pytest.mark.ui

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

#: Counts canvases inside shadow roots too (Bokeh draws in shadow DOM).
COUNT_CANVASES = """() => {
  let n = 0;
  const walk = (root) => root.querySelectorAll('*').forEach((el) => {
    if (el.tagName === 'CANVAS') { n += 1; }
    if (el.shadowRoot) { walk(el.shadowRoot); }
  });
  walk(document);
  return n;
}"""
#: Text of the page, shadow roots included.
PAGE_TEXT = """() => {
  const parts = [];
  const walk = (root) => root.querySelectorAll('*').forEach((el) => {
    if (el.shadowRoot) { walk(el.shadowRoot); }
    const skip = el.tagName === 'STYLE' || el.tagName === 'SCRIPT';
    if (!skip && !el.children.length && el.textContent) { parts.push(el.textContent); }
  });
  walk(document);
  return parts.join('\\n');
}"""
#: Runs a tick formatter's code with its args for one tick.
RUN_FORMATTER = """([code, args, tick]) => {
  const names = Object.keys(args);
  return new Function(...names, 'tick', code)(...names.map((k) => args[k]), tick);
}"""

#: Runs a hover formatter's code for one value.
RUN_HOVER = """([code, args, value]) => {
  const names = Object.keys(args);
  return new Function(...names, 'value', code)(...names.map((k) => args[k]), value);
}"""
#: Runs a ticker's major-tick code for a visible range.
RUN_TICKER = """([code, args, start, end]) => {
  const names = Object.keys(args);
  const cb_data = {start: start, end: end};
  return new Function(...names, 'cb_data', code)(...names.map((k) => args[k]), cb_data);
}"""


def open_offline(page: Any, path: Path) -> tuple[list[str], list[str]]:
    """Open ``path`` with every non-file request aborted; the blocked URLs and errors."""
    blocked: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    def sent(event: dict[str, Any]) -> None:
        # the favicon bypasses page.route; the DevTools protocol sees every request
        url = event["request"]["url"]
        if not url.startswith(("file:", "data:", "blob:")) and url not in blocked:
            blocked.append(url)

    page.route("**/*", route)
    devtools = page.context.new_cdp_session(page)
    devtools.on("Network.requestWillBeSent", sent)
    devtools.send("Network.enable")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return blocked, errors


def test_saved_report_renders_offline_in_chromium(page: Any, tmp_path: Path) -> None:
    result = aw.backtest(DEMO_SPEC, bars=2_000, store=False)
    report = tmp_path / "report.html"
    result.save(report)
    assert report.stat().st_size > 100_000  # scripts inlined
    page.set_viewport_size({"width": 1400, "height": 1000})
    blocked, errors = open_offline(page, report)
    page.wait_for_function(f"({COUNT_CANVASES})() >= 4", timeout=60_000)
    page.wait_for_load_state("load")
    text = page.evaluate(PAGE_TEXT)
    assert "Sharpe ratio" in text and "Max drawdown" in text and "Win rate" in text
    ret = f"{result.stats['total_return']:.2%}"
    assert ret in text
    assert not re.search(r"\de[+-]\d", text)  # no 1.015e+5 anywhere
    assert blocked == [] and errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "backtest_report.png"), full_page=True)


def test_saved_report_stays_offline_after_a_dashboard_set_the_design(
    page: Any, tmp_path: Path
) -> None:
    """A served dashboard sets Panel's global design; a report saved later ignores it."""
    import panel as pn

    from alphaswarm.ui.design import Fast

    result = aw.backtest(DEMO_SPEC, bars=1_000, store=False)
    report = tmp_path / "report.html"
    with pn.config.set(design=Fast):  # what a dashboard template leaves behind
        result.save(report)
    blocked, errors = open_offline(page, report)
    page.wait_for_function(f"({COUNT_CANVASES})() >= 4", timeout=60_000)
    page.wait_for_load_state("load")
    assert blocked == [] and errors == []


def test_time_axis_labels_read_as_utc_times_in_the_browser(page: Any) -> None:
    result = aw.backtest(DEMO_SPEC, bars=1_200, store=False)
    axis = TimeAxis.of(result.equity.index)
    fmt = axis.formatter()
    page.goto("about:blank")

    def label(tick: float) -> str:
        return page.evaluate(RUN_FORMATTER, [fmt.code, fmt.args, tick])

    assert label(0) == "2024-01-02"  # a session open reads as its date
    assert label(389) == "01-02 20:59"
    assert label(390) == "2024-01-03"  # the next session's open, one bar later
    assert label(1_199) == "01-05 14:59"
    assert label(-1) == "" and label(1_200) == ""
    hover = axis.hover_formatter()  # hovers show the full time, like axis.labels()
    full = page.evaluate(RUN_HOVER, [hover.code, hover.args, 390])
    assert full == "2024-01-03 14:30" == axis.labels([390])[0]
    ticker = axis.ticker()
    ticks = page.evaluate(RUN_TICKER, [ticker.major_code, ticker.args, 0, 1_199])
    assert ticks == [0, 390, 780, 1_170]  # session opens
    ticks = page.evaluate(RUN_TICKER, [ticker.major_code, ticker.args, 400, 700])
    assert ticks == [400, 450, 500, 550, 600, 650, 700]  # round bar counts in one session
    month = TimeAxis.of(aw.backtest(DEMO_SPEC, bars=7_800, store=False).equity.index).ticker()
    ticks = page.evaluate(RUN_TICKER, [month.major_code, month.args, 0, 7_799])
    assert ticks == [0, 1_560, 3_120, 4_680, 6_240]  # every 4th of 20 session opens


def test_dashboard_backtests_tab_draws_the_view(page: Any, served: str, good_bot: Any) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1500, "height": 1200})
    page.goto(served)
    page.locator(".bk-tab", has_text="Backtests").first.click(timeout=20_000)
    page.locator(".alphaswarm-run-backtest button").click(timeout=20_000)
    plots = page.locator(".alphaswarm-backtest-plots canvas")
    expect(plots.first).to_be_attached(timeout=60_000)
    stats = page.locator(".alphaswarm-backtest-stats")
    expect(stats).to_contain_text("Sharpe ratio", timeout=20_000)
    expect(stats).to_contain_text("%")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_backtests.png"), full_page=True)
