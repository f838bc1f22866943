"""A click on a live run's row opens it even when the table redraws under the pointer.

Panel's Tabulator redraws every row when a live run's numbers are patched in. A
press and release that straddle a redraw land on two different row elements, the
browser fires no click, and the run did not open. Here the test presses on a row,
redraws the table itself (as a patch does) and checks the row really was replaced,
then releases: the run opens.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

import alphaswarm as aw
from alphaswarm.paper.runtime import engine_loop

pytestmark = pytest.mark.ui

#: Redraw the runs table as a patch does; true when the row under the pointer was replaced.
REDRAW_JS = """async (runId) => {
  const views = [...Bokeh.index.all_views()].filter(
    (v) => v.model.type.endsWith("Tabulator") && v.model.css_classes.includes("alphaswarm-runs"))
  const rowOf = (id) => {
    for (const v of views) {
      for (const row of v.el.shadowRoot.querySelectorAll(".tabulator-row")) {
        const cell = row.querySelector('[tabulator-field="id"]')
        if (cell && cell.textContent.trim() === id) return row
      }
    }
    return null
  }
  const before = rowOf(runId)
  for (const v of views) await v.tabulator.setData(v.getData())
  return before !== null && !before.isConnected && rowOf(runId) !== null
}"""


def box_of(locator: Any) -> dict[str, float]:
    """The on-screen box of ``locator``; polled, since a redraw detaches rows for a moment."""
    deadline = time.monotonic() + 30
    while True:
        box = locator.bounding_box(timeout=30_000)
        if box is not None:
            return box
        assert time.monotonic() < deadline, f"{locator} never showed on screen"
        time.sleep(0.1)


@pytest.fixture
def live_and_finished(good_bot: aw.Bot, tmp_ledger: aw.Ledger) -> tuple[str, str]:
    """A finished run, then a live one (its row patched every few seconds)."""
    done = aw.PaperSession(good_bot, speed=0, duration_minutes=None, max_bars=60)
    done.start(loop=engine_loop())
    assert done.wait(60)
    live = aw.PaperSession(good_bot, speed=60, duration_minutes=None)
    live.start(loop=engine_loop())
    return done.paper_run_id, live.paper_run_id


@pytest.mark.parametrize("which", ["live", "finished"])
def test_a_click_that_straddles_a_redraw_opens_the_run(page, served, live_and_finished, which):
    finished, live = live_and_finished
    run_id = live if which == "live" else finished
    other = finished if which == "live" else live
    page.goto(f"{served.rstrip('/')}/runs/{other}", timeout=120_000)
    card = page.locator(".alphaswarm-session-card")
    expect(card).to_contain_text(other, timeout=60_000)
    row = page.locator(".alphaswarm-runs .tabulator-row", has_text=run_id)
    box = box_of(row)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    assert page.evaluate(REDRAW_JS, run_id), "the row under the pointer was not redrawn"
    page.mouse.up()
    expect(card).to_contain_text(run_id, timeout=15_000)
    expect(page.locator(".alphaswarm-runs .tabulator-row.tabulator-selected")).to_contain_text(
        run_id, timeout=10_000
    )


def test_a_drag_from_one_row_to_another_opens_nothing(page, served, live_and_finished):
    finished, live = live_and_finished
    page.goto(f"{served.rstrip('/')}/runs/{live}", timeout=120_000)
    card = page.locator(".alphaswarm-session-card")
    expect(card).to_contain_text(live, timeout=60_000)
    rows = page.locator(".alphaswarm-runs .tabulator-row")
    start = box_of(rows.filter(has_text=finished))
    end = box_of(rows.filter(has_text=live))
    page.mouse.move(start["x"] + 20, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + 20, end["y"] + end["height"] / 2, steps=5)
    page.mouse.up()
    page.wait_for_timeout(1500)  # what a selection would take to show
    expect(card).to_contain_text(live)
    expect(card).not_to_contain_text(finished)
