"""``/sweeps`` and ``/sweeps/<name>`` in real Chromium against the real server.

The list shows each sweep with its status; a sweep's page shows its trials, the
best one, the overfitting report as the sweep computed it, and a heatmap of two
swept parameters with a non-zero size; a running sweep's page follows its progress.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

import alphaswarm as aw
from alphaswarm.sweep.api import sweep
from tests.ui.conftest import GOOD_BOT, start_app_server, stop_everything, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.ui

WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server for the module over a ledger with a finished 2×2 sweep."""
    stop_everything()
    path = tmp_path_factory.mktemp("sweeps") / "l.db"
    ledger = aw.set_ledger(f"sqlite:///{path}")
    result = sweep(
        aw.Bot(GOOD_BOT),
        {"fast": [3, 5], "slow": [20, 30]},
        bars=2000,
        name="ui-grid",
        backend="serial",
        progress=False,
        ledger=ledger,
    )
    thread = start_app_server(ledger)
    yield {"url": thread.url, "ledger": ledger, "result": result}
    thread.stop()
    stop_everything()
    aw.set_ledger(None)
    ledger.close()


@pytest.fixture
def errors(page) -> list[str]:
    """Console errors and failed requests (the web-font host is answered empty)."""
    page.route(
        re.compile(r"^https?://(?!127\.0\.0\.1[:/])"),
        lambda route: route.fulfill(status=200, body="", content_type="text/css"),
    )
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.append(str(e)))
    page.on("requestfailed", lambda r: seen.append(f"failed {r.url}"))
    return seen


def test_the_sweeps_page_lists_sweeps(page, site, errors):
    page.set_viewport_size(WIDE)
    page.goto(site["url"] + "/sweeps")
    row = page.locator(".alphaswarm-sweeps-table tbody tr", has_text="ui-grid")
    expect(row).to_contain_text("done", timeout=30_000)
    expect(row).to_contain_text("4")
    expect(row.locator("a", has_text="ui-grid")).to_have_attribute("href", "/sweeps/ui-grid")
    expect(page.locator(".alphaswarm-nav a", has_text="Bots")).to_have_attribute("href", "/bots")
    assert errors == []


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1440x900", "390x844"])
def test_a_sweep_page_shows_trials_report_and_heatmap(page, site, errors, viewport):
    page.set_viewport_size(viewport)
    result = site["result"]
    page.goto(site["url"] + "/sweeps/ui-grid")
    expect(page.locator(".alphaswarm-sweep-status")).to_contain_text("done", timeout=30_000)
    expect(page.locator(".alphaswarm-sweep-trials tbody tr")).to_have_count(4)
    best = result.best_params
    expect(page.locator(".alphaswarm-sweep-best")).to_contain_text(
        f"fast={best['fast']}, slow={best['slow']}"
    )
    report = page.locator(".alphaswarm-sweep-report")
    expect(report).to_contain_text(f"{result.report['dsr']:.3f}")
    expect(report).to_contain_text(f"{result.report['pbo']:.2f}")
    canvas = page.locator(".alphaswarm-sweep-heatmap canvas").first
    canvas.wait_for(timeout=30_000)
    wait_until(lambda: (canvas.bounding_box() or {}).get("width", 0) > 100, timeout=20)
    assert canvas.bounding_box()["height"] > 100
    box = page.locator(".alphaswarm-sweep-page").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1
    assert errors == []


def test_an_unknown_sweep_says_so(page, site, errors):
    page.goto(site["url"] + "/sweeps/no-such-sweep")
    expect(page.locator(".alphaswarm-missing-sweep")).to_contain_text(
        "no-such-sweep", timeout=30_000
    )
    assert errors == []


def test_a_running_sweep_page_follows_its_progress(page, site, errors):
    from alphaswarm.sweep.ledger import SweepStore

    store = SweepStore(site["ledger"])
    done = store.get("ui-grid")
    sweep_id = store.open("ui-live", done["bot_id"], done["config"])
    page.set_viewport_size(WIDE)
    page.goto(site["url"] + "/sweeps/ui-live")
    status = page.locator(".alphaswarm-sweep-status")
    expect(status).to_contain_text("running", timeout=30_000)
    expect(page.locator(".alphaswarm-sweep-trials tbody tr")).to_have_count(0)

    trials = store.trials(done["id"]).to_dict("records")
    store.write(sweep_id, trials[:2])
    expect(page.locator(".alphaswarm-sweep-trials tbody tr")).to_have_count(2, timeout=60_000)
    store.write(sweep_id, trials[2:])
    store.set_status(sweep_id, "done")
    expect(status).to_contain_text("done", timeout=60_000)
    expect(page.locator(".alphaswarm-sweep-trials tbody tr")).to_have_count(4, timeout=60_000)
    expect(page.locator(".alphaswarm-sweep-heatmap canvas").first).to_be_visible(timeout=60_000)
    assert errors == []
