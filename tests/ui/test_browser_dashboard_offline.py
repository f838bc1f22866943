"""The dashboard asks nothing of the network: no Google Fonts, no CDN, no console error.

Chromium loads the served dashboard with every request recorded; only the
loopback server may be asked. A run is selected so its live view (plots, tables,
the reconciliation tab's chart) is rendered too.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import wait_until
from tests.ui.test_browser_dashboard import open_dashboard, select_run

pytestmark = pytest.mark.ui

LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")


def test_dashboard_makes_no_request_off_the_machine(
    page: Any, served: str, good_bot: Any, run_session: Any
) -> None:
    outside: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    session = run_session(good_bot, speed=600, max_bars=300)
    open_dashboard(page, served)
    select_run(page, session.paper_run_id)
    wait_until(lambda: page.locator("canvas").count() > 0, timeout=60)
    page.wait_for_load_state("networkidle", timeout=60_000)
    assert outside == [], "\n".join(sorted({u.split("?")[0] for u in outside}))
    assert errors == [], errors
