"""The multi-bot page of the dashboard in real Chromium (``pytest -m ui tests/ui``)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import alphaswarm as aw
from tests.ui.conftest import GOOD_BOT, wait_until

pytestmark = pytest.mark.ui


def combined_equity(page) -> float:
    text = page.locator(".alphaswarm-multibot-totals .combined-equity").inner_text()
    return float(text.replace(",", ""))


def test_two_bots_combined_and_one_stopped(page, served, run_session):
    bots = [aw.Bot({**GOOD_BOT, "name": name}) for name in ("ui-sma-a", "ui-sma-b")]
    first, second = (
        run_session(bot, speed=60, max_bars=None, force=True, reason="ui test") for bot in bots
    )
    page.set_viewport_size({"width": 1500, "height": 1400})
    page.goto(served, timeout=120_000)
    page.locator(".bk-tab", has_text="All bots").first.click(timeout=60_000)
    totals = page.locator(".alphaswarm-multibot-totals")
    expect(totals.locator(".running-count")).to_have_text("2", timeout=60_000)
    # the running sessions' equity and P&L together; the P&L of all runs apart, named so
    expect(totals).to_contain_text("2 running: equity")
    expect(totals).to_contain_text("P&L of every run listed")
    # the two sessions start with 100,000 each; a few bars of trading move it a little
    assert abs(combined_equity(page) - 200_000) < 2_000
    table = page.locator(".alphaswarm-multibot-runs")
    for s in (first, second):
        expect(table).to_contain_text(s.paper_run_id, timeout=60_000)

    stop = page.locator(".alphaswarm-multibot-stop", has_text=first.paper_run_id)
    stop.locator("button").click(timeout=60_000)
    wait_until(lambda: first.status == "stopped", timeout=60)
    assert first.status == "stopped" and first.stop_reason == "stopped from the multi-bot view"
    expect(totals.locator(".running-count")).to_have_text("1", timeout=60_000)
    expect(page.locator(".alphaswarm-multibot-stop")).to_have_count(1)
    expect(page.locator(".alphaswarm-multibot-stop")).to_contain_text(second.paper_run_id)
    assert not second.finished and second.status == "running"
    # the combined equity is now the one running bot's
    expect(totals.locator(".combined-equity")).to_have_text(
        re.compile(r"^\d{2,3},\d{3}\.\d\d$"), timeout=60_000
    )
    assert abs(combined_equity(page) - 100_000) < 1_000
    expect(totals).to_contain_text("1 running: equity")
    expect(totals.locator(".running-pnl")).to_be_visible()
    assert not second.finished
