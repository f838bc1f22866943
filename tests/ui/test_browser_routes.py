"""Page addresses in real Chromium against a real server: deep links, history, landing.

``/runs/<id>`` opens that run; opening another run puts its address in the address
bar; reload keeps it; back and forward go to the earlier run; the overview opens the
demo's run when one is running; an unknown run says so.
"""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

import alphaswarm as aw
from alphaswarm.paper.runtime import engine_loop
from alphaswarm.server.demo import DEMO_RUN_NAME

pytestmark = pytest.mark.ui


@pytest.fixture
def two_runs(good_bot: aw.Bot, tmp_ledger: aw.Ledger) -> list[str]:
    """Two finished runs of the good bot, oldest first."""
    ids = []
    for _ in range(2):
        session = aw.PaperSession(good_bot, speed=0, duration_minutes=None, max_bars=60)
        session.start(loop=engine_loop())
        session.wait(60)
        assert session.finished
        ids.append(session.paper_run_id)
    return ids


def card(page) -> object:
    return page.locator(".alphaswarm-session-card")


def test_a_run_address_opens_that_run(page, app_server, two_runs):
    first, second = two_runs
    page.goto(f"{app_server}/runs/{first}")
    expect(card(page)).to_contain_text(first, timeout=30_000)
    expect(card(page)).not_to_contain_text(second)


def test_opening_a_run_sets_the_address_and_history_follows(page, app_server, two_runs):
    first, second = two_runs
    page.goto(f"{app_server}/runs/{first}")
    expect(card(page)).to_contain_text(first, timeout=30_000)

    page.locator(".alphaswarm-runs .tabulator-row", has_text=second).click()
    expect(card(page)).to_contain_text(second, timeout=10_000)
    expect(page).to_have_url(re.compile(f"/runs/{second}$"), timeout=10_000)

    page.reload()
    expect(card(page)).to_contain_text(second, timeout=30_000)

    page.go_back()
    expect(page).to_have_url(re.compile(f"/runs/{first}$"), timeout=10_000)
    expect(card(page)).to_contain_text(first, timeout=30_000)

    page.go_forward()
    expect(page).to_have_url(re.compile(f"/runs/{second}$"), timeout=10_000)
    expect(card(page)).to_contain_text(second, timeout=30_000)


def test_an_unknown_run_says_so(page, app_server, tmp_ledger):
    page.goto(f"{app_server}/runs/pr-nothing-here")
    expect(page.locator(".alphaswarm-missing-run")).to_contain_text(
        "pr-nothing-here", timeout=30_000
    )


def test_the_overview_opens_the_demo_run(page, app_server, good_bot):
    demo = aw.PaperSession(good_bot, speed=1, duration_minutes=None, run_name=DEMO_RUN_NAME)
    demo.start(loop=engine_loop())
    try:
        page.goto(app_server + "/")
        expect(card(page)).to_contain_text(demo.paper_run_id, timeout=30_000)
        expect(page).to_have_url(re.compile(r"/$"))  # the overview keeps its address
    finally:
        demo.stop()
        demo.wait(10)


def test_the_api_keeps_its_routes_beside_the_pages(app_server, two_runs):
    runs = requests.get(f"{app_server}/paper", timeout=10)
    assert runs.status_code == 200
    assert {r["id"] for r in runs.json()["runs"]} >= set(two_runs)
    page = requests.get(f"{app_server}/runs/{two_runs[0]}", timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]


def test_a_trailing_slash_is_the_same_page(page, app_server, two_runs):
    first, _ = two_runs
    loads = []
    page.on("load", lambda _p: loads.append(1))
    page.goto(f"{app_server}/runs/{first}/")
    expect(card(page)).to_contain_text(first, timeout=30_000)
    page.goto(f"{app_server}/runs/")
    page.locator(".alphaswarm-runs").first.wait_for(timeout=30_000)
    expect(page.locator(".alphaswarm-runs .tabulator-row").first).to_be_visible(timeout=10_000)
    assert len(loads) == 2  # no reload loop


def boxes_overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("engaged", [False, True], ids=["armed", "engaged"])
@pytest.mark.parametrize("size", [(390, 844), (1024, 768), (1440, 900)], ids=str)
def test_the_kill_switch_is_on_screen_and_uncovered(browser, app_server, tmp_ledger, size, engaged):
    from alphaswarm.paper.killswitch import kill_switch

    if engaged:
        kill_switch().engage("layout drill with a long reason " * 3, actor="test")
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(app_server + "/")
        button = page.locator(".alphaswarm-ks-button button").first
        button.wait_for(timeout=30_000)
        state = "engaged" if engaged else "armed"
        expect(page.locator(f'[data-state="{state}"]')).to_be_visible(timeout=10_000)
        page.wait_for_timeout(500)  # let the header settle its wrap
        box = button.bounding_box()
        assert box is not None and box["width"] > 0
        assert 0 <= box["x"] and box["x"] + box["width"] <= width, box
        assert 0 <= box["y"] and box["y"] + box["height"] <= height, box
        toggle = page.locator(".pn-toggle-theme").first.bounding_box()
        header = [button]
        if engaged:
            header.append(page.locator(".alphaswarm-ks").first)
        for item in header:
            item_box = item.bounding_box()
            assert toggle is None or not boxes_overlap(item_box, toggle), (item_box, toggle)
        if width < 760:  # a phone opens with the sidebar closed
            expect(page.locator("#sidebar")).to_have_class(re.compile("hidden"), timeout=10_000)
    finally:
        page.close()


def test_opening_a_run_from_the_overview_requests_nothing_that_fails(page, app_server, two_runs):
    """The address changes to ``/runs/<id>`` without a reload: the stylesheets the run
    view then asks for are still found (not looked up under ``/runs/static/...``)."""
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))
    first, second = two_runs
    page.goto(f"{app_server}/")
    page.locator(".alphaswarm-runs .tabulator-row", has_text=second).click()
    expect(page).to_have_url(re.compile(f"/runs/{second}$"), timeout=30_000)
    expect(card(page)).to_contain_text(second, timeout=30_000)
    page.locator(".alphaswarm-runs .tabulator-row", has_text=first).click()
    expect(page).to_have_url(re.compile(f"/runs/{first}$"), timeout=30_000)
    expect(card(page)).to_contain_text(first, timeout=30_000)
    page.wait_for_timeout(2000)  # stylesheets of the new view load after it is shown
    assert failed == []
