"""The served dashboard's shell: on screen, with a working kill switch, before the rest.

The page's HTML carries the header (banner, kill switch), the kill switch's confirm
box and the start form; the runs, plots and tables are built once the browser shows
it. Here the ledger's read of the runs is held (a slow database) while the user
engages the kill switch: every session is killed and the page says so before the
main area has loaded; once the read returns, the main area shows the killed runs.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from playwright.sync_api import expect

from alphaswarm.paper.killswitch import kill_switch
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.ui


def test_kill_switch_works_while_the_main_area_is_still_loading(
    page: Any, served: str, good_bot: Any, run_session: Any, tmp_ledger: Any, monkeypatch: Any
) -> None:
    sessions = [run_session(good_bot, speed=60, max_bars=None) for _ in range(2)]
    ids = [s.paper_run_id for s in sessions]
    release = threading.Event()
    asked = threading.Event()
    list_runs = tmp_ledger.list_runs

    def slow_list_runs(*args: Any, **kwargs: Any) -> Any:
        asked.set()
        release.wait(120)  # the database answers when the test lets it
        return list_runs(*args, **kwargs)

    monkeypatch.setattr(tmp_ledger, "list_runs", slow_list_runs)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(served, timeout=60_000)
        button = page.locator(".alphaswarm-ks-button button")
        button.wait_for(timeout=60_000)
        # the main area is being built: it waits on the runs the ledger has not returned
        wait_until(asked.is_set, timeout=60)
        expect(page.locator(".alphaswarm-loading")).to_be_visible()
        button.click()
        box = page.locator(".alphaswarm-ks-confirm-box")
        expect(box).to_be_visible(timeout=30_000)
        for run_id in ids:
            expect(box).to_contain_text(run_id)
        page.locator(".alphaswarm-ks-confirm-input input").fill("HALT")
        confirm = page.locator(".alphaswarm-ks-confirm button")
        expect(confirm).to_be_enabled(timeout=30_000)
        confirm.click()
        wait_until(
            lambda: all(tmp_ledger.get_run(i)["status"] == "killed" for i in ids), timeout=60
        )
        expect(page.locator('[data-state="engaged"]')).to_be_visible(timeout=30_000)
        # all of it happened while the main area was still loading
        assert not release.is_set()
        assert page.locator(".alphaswarm-runs").count() == 0
        expect(page.locator(".alphaswarm-loading")).to_be_visible()
    finally:
        release.set()
    assert kill_switch().engaged
    assert all(s.status == "killed" for s in sessions)
    for run_id in ids:
        expect(page.locator(".alphaswarm-runs .tabulator-row", has_text=run_id)).to_contain_text(
            "killed", timeout=60_000
        )
    expect(page.locator(".alphaswarm-loading")).to_have_count(0)
    assert errors == [], errors
