"""The run view in real Chromium at 1440×900 and 390×844 (``pytest -m ui``).

A finished run opened cold shows its whole price history, closed trades, P&L by
symbol and statistics from the ledger; a phone-sized window stacks the parts; the
card and the risk panel say how a run ended.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

import alphaswarm as aw
from alphaswarm.ledger.run_reads import closed_trades, pnl_by_symbol, session_stats
from alphaswarm.paper.runtime import engine_loop
from tests.ui.conftest import click_run, wait_until

pytestmark = pytest.mark.ui

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: Copied to docs/img/ by scripts/screenshots.py.
SCREENSHOT = ARTIFACTS / "run-view.png"

#: Length of the longest ``close`` column of any data source in the page (the price series).
PRICE_POINTS_JS = """() => {
  let n = 0;
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      const d = m.data;
      if (!d || typeof d !== 'object') continue;
      const keys = d instanceof Map ? [...d.keys()] : Object.keys(d);
      if (!keys.includes('close')) continue;
      const col = d instanceof Map ? d.get('close') : d['close'];
      n = Math.max(n, col.length);
    }
  }
  return n;
}"""


def box(page, selector: str) -> dict:
    locator = page.locator(selector).first
    locator.wait_for(timeout=60_000)
    return locator.bounding_box()


def tab(page, name: str) -> None:
    """Open one of the run view's tabs."""
    page.locator(".alphaswarm-run-tabs .bk-tab", has_text=name).first.click(timeout=60_000)


def open_run(page, url: str, run_id: str) -> None:
    page.goto(url, timeout=120_000)
    click_run(page, run_id)


def open_run_address(page, url: str, run_id: str) -> None:
    """Open ``run_id`` by its address, as a bookmark or a shared link does."""
    page.goto(f"{url.rstrip('/')}/runs/{run_id}", timeout=120_000)
    expect(page.locator(".alphaswarm-session-card")).to_contain_text(run_id, timeout=60_000)


@pytest.fixture
def finished_run(good_bot: aw.Bot, tmp_ledger: aw.Ledger) -> aw.PaperSession:
    """A run of 300 bar groups, finished before any page opens."""
    session = aw.PaperSession(good_bot, speed=0, duration_minutes=None, max_bars=300)
    session.start(loop=engine_loop())
    assert session.wait(120)
    return session


def test_a_finished_run_opened_cold_shows_everything_from_the_ledger(
    page, served, finished_run, tmp_ledger
):
    run_id = finished_run.paper_run_id
    stats = session_stats(tmp_ledger, run_id)
    trades = closed_trades(tmp_ledger, run_id)
    by_symbol = pnl_by_symbol(tmp_ledger, run_id)
    assert len(trades) >= 1
    page.set_viewport_size({"width": 1440, "height": 900})
    open_run(page, served, run_id)

    # every bar of the run is on the price chart, not only the last frames
    symbols = len(finished_run.bot.universe)
    wait_until(lambda: page.evaluate(PRICE_POINTS_JS) == stats["bars_seen"] // symbols, 60)

    stats_pane = page.locator(".alphaswarm-run-stats")
    expect(stats_pane).to_contain_text(f"{stats['bars_seen']:,} of {stats['bars_total']:,}")
    expect(stats_pane).to_contain_text(f"{stats['return_pct']:+.2f} %")
    expect(stats_pane).to_contain_text(f"{stats['turnover']:.2f}×")

    # the card: complete, bars of the total, no stop button, no "remaining –"
    card = page.locator(".alphaswarm-session-card")
    expect(card.locator(".session-progress")).to_contain_text("complete", timeout=30_000)
    expect(card.locator(".session-progress")).to_contain_text(
        f"{stats['bars_seen']:,} of {stats['bars_total']:,} bars"
    )
    expect(card).not_to_contain_text("remaining –")
    expect(card.get_by_role("button", name="Stop session")).to_have_count(0)
    expect(page.locator(".alphaswarm-risk")).to_contain_text("mode completed")

    # closed trades, newest first, and P&L by symbol
    tab(page, "Closed trades")
    rows = page.locator(".alphaswarm-trades-table tbody tr")
    expect(rows).to_have_count(min(len(trades), 200), timeout=30_000)
    expect(rows.first).to_contain_text(f"{trades['pnl'].iloc[-1]:,.4g}")
    tab(page, "P&L by symbol")
    symbol_rows = page.locator(".alphaswarm-symbols-table tbody tr")
    expect(symbol_rows).to_have_count(len(by_symbol))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    tab(page, "Closed trades")
    page.set_viewport_size({"width": 1440, "height": 1700})  # the whole view in one picture
    expect(rows.first).to_be_visible(timeout=30_000)
    page.locator(".alphaswarm-positions .tabulator-row").first.wait_for(timeout=30_000)
    page.wait_for_timeout(2000)  # tables re-lay out after the resize: a settled picture
    page.screenshot(path=str(SCREENSHOT))


#: How far the page and its main area (the template's scrolling ``#main``) reach past
#: their width, and how far they are scrolled sideways: 0 and 0 when everything fits.
SIDEWAYS_SCROLL_JS = """() => {
  const out = {};
  const areas = {page: document.scrollingElement, main: document.getElementById('main')};
  for (const [name, el] of Object.entries(areas)) {
    if (!el) continue;
    out[name] = {overflow: el.scrollWidth - el.clientWidth, scrollLeft: el.scrollLeft};
  }
  return out;
}"""


def fits_sideways(page, selector: str) -> dict:
    """The box of ``selector``, asserted inside the window's width and not scrolled away."""
    found = box(page, selector)
    width = page.viewport_size["width"]
    assert found["width"] > 0, (selector, found)
    assert found["x"] >= -1 and found["x"] + found["width"] <= width + 1, (selector, found)
    return found


def assert_no_sideways_scroll(page) -> None:
    sideways = page.evaluate(SIDEWAYS_SCROLL_JS)
    for area in sideways.values():
        assert area["overflow"] <= 0 and area["scrollLeft"] == 0, sideways


def assert_kill_switch_reachable(page, engaged: bool) -> None:
    """The kill switch control is inside the window and nothing covers it (a trial click)."""
    if engaged:
        control = page.get_by_role("button", name="Reset kill switch").first
    else:
        control = page.locator(".alphaswarm-ks-button button").first
    control.wait_for(timeout=60_000)
    found = control.bounding_box()
    size = page.viewport_size
    assert found is not None and found["width"] > 0, found
    assert 0 <= found["x"] and found["x"] + found["width"] <= size["width"], found
    assert 0 <= found["y"] and found["y"] + found["height"] <= size["height"], found
    # Playwright's actionability checks: visible, stable, enabled and hit by a click at
    # its centre (another element on top fails this); trial=True does not click
    control.click(trial=True, timeout=30_000)


def test_the_run_view_stacks_at_phone_width(page, served, finished_run):
    page.set_viewport_size({"width": 390, "height": 844})
    open_run(page, served, finished_run.paper_run_id)
    wait_until(lambda: page.evaluate(PRICE_POINTS_JS) > 0, 60)
    canvas = page.locator(".alphaswarm-plots canvas").first
    wait_until(lambda: (canvas.bounding_box() or {}).get("width", 0) >= 250, 60)
    plots = fits_sideways(page, ".alphaswarm-plots")
    side = fits_sideways(page, ".alphaswarm-side")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-view-390.png"), full_page=True)
    # the plots keep (nearly) the whole width and the positions/risk go below them
    assert plots["width"] >= 300, plots
    assert side["y"] >= plots["y"] + plots["height"] - 1, (plots, side)
    assert_no_sideways_scroll(page)
    assert_kill_switch_reachable(page, engaged=False)


@pytest.mark.parametrize("engaged", [False, True], ids=["armed", "engaged"])
def test_the_run_view_fits_every_width_with_the_kill_switch_uncovered(
    browser, served, finished_run, engaged
):
    """390 to 1920 px, armed and engaged (a long reason): no sideways scroll, switch reachable."""
    from alphaswarm.paper.killswitch import kill_switch

    if engaged:
        kill_switch().engage("layout drill with a long reason " * 3, actor="test")
    for width, height in ((390, 844), (1024, 768), (1440, 900), (1920, 1080)):
        page = browser.new_page(viewport={"width": width, "height": height})
        try:
            open_run(page, served, finished_run.paper_run_id)
            state = "engaged" if engaged else "armed"
            expect(page.locator(f'[data-state="{state}"]')).to_be_visible(timeout=60_000)
            wait_until(lambda page=page: page.evaluate(PRICE_POINTS_JS) > 0, 60)
            canvas = page.locator(".alphaswarm-plots canvas").first
            wait_until(lambda canvas=canvas: (canvas.bounding_box() or {}).get("width", 0), 60)
            for selector in (".alphaswarm-session-card", ".alphaswarm-plots", ".alphaswarm-side"):
                fits_sideways(page, selector)
            assert_no_sideways_scroll(page)
            assert_kill_switch_reachable(page, engaged)
        finally:
            page.close()


def test_the_run_view_keeps_plots_beside_positions_at_1440(page, served, finished_run):
    page.set_viewport_size({"width": 1440, "height": 900})
    open_run(page, served, finished_run.paper_run_id)
    plots = box(page, ".alphaswarm-plots")
    side = box(page, ".alphaswarm-side")
    assert abs(side["y"] - plots["y"]) < 2, (plots, side)
    assert side["x"] >= plots["x"] + plots["width"] - 1, (plots, side)


def test_a_stopped_live_run_says_so_in_the_risk_panel_and_drops_its_stop_button(
    page, served, good_bot, run_session
):
    session = run_session(good_bot, speed=60, max_bars=None)
    page.set_viewport_size({"width": 1440, "height": 900})
    open_run_address(page, served, session.paper_run_id)
    card = page.locator(".alphaswarm-session-card")
    expect(card.get_by_role("button", name="Stop session")).to_be_enabled(timeout=60_000)
    expect(page.locator(".alphaswarm-risk")).to_contain_text("mode active", timeout=60_000)
    expect(card.locator(".session-progress")).to_contain_text("runs until stopped")
    session.kill("test kill")
    assert session.wait(30)
    expect(page.locator(".alphaswarm-risk")).to_contain_text(
        f"mode {session.status}", timeout=60_000
    )
    expect(card.get_by_role("button", name="Stop session")).to_have_count(0, timeout=30_000)
    expect(card.locator(".session-progress")).to_contain_text("ended")


def test_trade_times_follow_the_zone_toggle(browser, served, finished_run):
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, timezone_id="America/New_York"
    )
    page = context.new_page()
    try:
        open_run(page, served, finished_run.paper_run_id)
        tab(page, "Closed trades")
        first = page.locator(".alphaswarm-trades-table tbody tr").first
        expect(first).to_contain_text(" ES", timeout=60_000)  # EST or EDT: the browser's zone
        page.locator(".alphaswarm-zone-toggle").get_by_role("button", name="UTC").click()
        expect(first).to_contain_text(" UTC", timeout=30_000)
        expect(first).not_to_contain_text(" ES")
    finally:
        context.close()


#: Price points shown once, then one more each time the page receives an update.
UPDATES_SEEN_JS = """() => {
  let n = 0;
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      const d = m.data;
      if (!d || typeof d !== 'object') continue;
      const keys = d instanceof Map ? [...d.keys()] : Object.keys(d);
      if (keys.includes('close')) n += (d instanceof Map ? d.get('close') : d['close']).length;
    }
  }
  return n;
}"""


def test_closing_tabs_of_a_streaming_run_leaves_no_unretrieved_task(
    context, served, good_bot, run_session, caplog
):
    """Tabs closed at many points while the run streams to them: no write task fails unnoticed.

    Each tab closes at another point of the stream: as soon as the run shows, or after
    its first, second, ... update; a close that lands in the middle of a patch's writes
    is the case Panel leaves unretrieved (``tests/ui/test_socket_writes.py`` provokes it
    on purpose).
    """
    import gc
    import logging

    from alphaswarm.ui.base import FramePump

    caplog.set_level(logging.ERROR, logger="asyncio")
    session = run_session(good_bot, speed=600, max_bars=None)
    baseline = FramePump.live_pumps()
    for updates in range(8):
        p = context.new_page()
        p.set_viewport_size({"width": 1440, "height": 900})
        # by its address: a tab of the run view itself (what is closed is the subject here)
        p.goto(f"{served.rstrip('/')}/runs/{session.paper_run_id}", timeout=120_000)
        expect(p.locator(".alphaswarm-session-card")).to_contain_text(
            session.paper_run_id, timeout=60_000
        )
        shown = wait_until(lambda p=p: p.evaluate(UPDATES_SEEN_JS), 60)
        if updates:
            # the tab closes right after its n-th update arrived, while more are on the way
            wait_until(
                lambda p=p, shown=shown, updates=updates: (
                    p.evaluate(UPDATES_SEEN_JS) >= shown + updates
                ),
                60,
                interval=0.01,
            )
        p.close()
    wait_until(lambda: FramePump.live_pumps() <= baseline, timeout=60)
    wait_until(lambda: session.bars_seen > 0, timeout=10)
    assert session.status == "running"  # the stream went on through every close
    gc.collect()  # an unretrieved task exception is reported when its task is collected
    never = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert never == []


#: The tick labels of every y axis titled ``equity``, as Bokeh formats them on screen.
EQUITY_TICKS_JS = """() => {
  const out = [];
  const walk = (v) => {
    if (!v) return;
    const m = v.model;
    if (m && m.type === 'LinearAxis' && m.axis_label === 'equity') {
      const range = v.panel.side === 'left' || v.panel.side === 'right'
        ? v.coordinates.y_scale.source_range : v.coordinates.x_scale.source_range;
      const ticks = m.ticker.get_ticks(range.start, range.end, range, NaN).major;
      out.push(m.formatter.doFormat(ticks, {loc: 0}));
    }
    for (const c of (v.child_views || [])) walk(c);
    for (const c of (v.renderer_views ? [...v.renderer_views.values()] : [])) walk(c);
  };
  const idx = Bokeh.index;
  for (const root of (idx instanceof Map ? [...idx.values()] : Object.values(idx))) walk(root);
  return out;
}"""


def test_a_flat_equity_curve_has_distinct_tick_labels(page, served, good_bot):
    session = aw.PaperSession(good_bot, speed=0, duration_minutes=None, max_bars=8)
    session.start(loop=engine_loop())
    assert session.wait(60) and session.num_fills == 0  # no trade: equity stays flat
    page.set_viewport_size({"width": 1440, "height": 900})
    open_run(page, served, session.paper_run_id)
    labels = wait_until(lambda: [t for t in page.evaluate(EQUITY_TICKS_JS) if len(t) > 1], 60)
    for ticks in labels:
        assert len(set(ticks)) == len(ticks), ticks


#: The earliest time on the price series (epoch ms), or null while it is empty.
FIRST_PRICE_TS_JS = """() => {
  let first = null;
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      const d = m.data;
      if (!d || typeof d !== 'object') continue;
      const keys = d instanceof Map ? [...d.keys()] : Object.keys(d);
      if (!keys.includes('close') || !keys.includes('ts')) continue;
      const col = d instanceof Map ? d.get('ts') : d['ts'];
      for (const t of col) if (first === null || t < first) first = t;
    }
  }
  return first;
}"""


def test_a_live_run_opened_late_shows_its_price_from_the_first_bar(
    page, served, good_bot, run_session, tmp_ledger
):
    """The bus holds the last 200 frames only: the earlier bars come from the ledger."""
    from alphaswarm.ledger.run_reads import price_history

    session = run_session(good_bot, speed=600, max_bars=None)
    wait_until(lambda: session.bars_seen >= 150, timeout=120)
    first = price_history(tmp_ledger, session.paper_run_id)["ts"].iloc[0]
    assert session.frames.recent()[0]["seq"] > 1  # the bus no longer holds the first bar
    page.set_viewport_size({"width": 1440, "height": 900})
    open_run_address(page, served, session.paper_run_id)
    expected_ms = first.value // 1_000_000
    wait_until(lambda: page.evaluate(FIRST_PRICE_TS_JS) is not None, 60)
    assert page.evaluate(FIRST_PRICE_TS_JS) == expected_ms
