"""Fixtures of the dashboard tests: a temp ledger, a gate-passing bot, a served dashboard.

Browser tests (``-m ui``) drive Debian's ``/usr/bin/chromium`` through
pytest-playwright; they are skipped, naming chromium, when it is missing.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

import alphaswarm as aw
from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.paper.registry import registry
from alphaswarm.paper.runtime import engine_loop
from alphaswarm.server import ServerThread
from alphaswarm.ui.base import _ALL_PUMPS
from tests.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Bot spec that passes the paper gate after a backtest (seeded synthetic feed).
GOOD_BOT = {
    "name": "ui-sma",
    "strategy": "sma_cross",
    "params": {"fast": 5, "slow": 20},
    "risk": {"kill_switch_attached": True, "max_position_qty": 500, "max_drawdown_pct": 0.05},
}


def stop_everything() -> None:
    """Stop every running session and release the kill switch."""
    running = registry().running()
    if running:
        registry().stop_many(running, "stopped", "test cleanup")
    for session in running:
        session.wait(5)
    if kill_switch().engaged or kill_switch().halted_bots:
        kill_switch().reset(actor="test")


@pytest.fixture(autouse=True)
def close_left_pumps() -> Iterator[None]:
    """Close the pumps a test built outside a served page, once it is over.

    Such a pump ticks on whatever asyncio loop runs in its thread, as in a notebook,
    and one feeding a view bound to no run (a runs list, the kill switch) never
    idles. Left open, it ticked in a later test's Playwright loop, polling the
    ledger that test had made slow, and hung that test's thread for two minutes.
    """
    yield
    for pump in list(_ALL_PUMPS):
        if pump._doc is None and not pump.closed:
            pump.close()


@pytest.fixture
def tmp_ledger(tmp_path: Any) -> Iterator[aw.Ledger]:
    """A fresh SQLite ledger as the process default; sessions stopped and switch reset after."""
    stop_everything()
    led = aw.set_ledger(f"sqlite:///{tmp_path}/l.db")
    yield led
    stop_everything()
    aw.set_ledger(None)
    led.close()


@pytest.fixture
def good_bot(tmp_ledger: aw.Ledger) -> aw.Bot:
    """A bot with a recent, passing backtest in ``ledger``."""
    bot = aw.Bot(GOOD_BOT)
    aw.backtest(bot, bars=2000)
    return bot


@pytest.fixture
def run_session(tmp_ledger: aw.Ledger) -> Callable[..., aw.PaperSession]:
    """Start a session of a bot (defaults: speed 0, 400 bars) on the engine loop."""

    def start(bot: aw.Bot, **params: Any) -> aw.PaperSession:
        params.setdefault("speed", 0)
        params.setdefault("duration_minutes", None)
        params.setdefault("max_bars", 400)
        return aw.PaperSession(bot, **params).start(loop=engine_loop())

    return start


def click_run(page: Any, run_id: str, attempts: int = 2) -> None:
    """Click ``run_id``'s row in the runs table until its run view shows.

    Panel's table redraws its rows on every update; a press and release that
    straddle a redraw make no click, and the runs list hears of them from its own
    press listener (``alphaswarm.ui.row_press``, proven by
    ``test_browser_runs_clicks.py``). A second click is allowed for a page still
    loading its runs when the first lands; the last waits a full minute, and a
    failure reports the clicks the page saw and the state of its tables.
    """
    from playwright.sync_api import expect

    row = page.locator(".alphaswarm-runs .tabulator-row", has_text=run_id)
    card = page.locator(".alphaswarm-session-card")
    page.evaluate(RECORD_CLICKS_JS)
    for attempt in range(1, attempts + 1):
        row.click(timeout=60_000)
        try:
            expect(card).to_contain_text(run_id, timeout=60_000 if attempt == attempts else 10_000)
            return
        except AssertionError as exc:
            if attempt == attempts:
                raise AssertionError(
                    f"the run view never showed after {attempts} clicks on {run_id}'s row; "
                    f"in the browser: {page.evaluate(CLICK_STATE_JS)}"
                ) from exc


#: Record, in the page, what each click landed on (inside Bokeh's shadow roots).
RECORD_CLICKS_JS = """() => {
  if (window.__alphaswarmClicks) return
  window.__alphaswarmClicks = []
  for (const type of ["mousedown", "mouseup", "click"]) {
    document.addEventListener(type, (e) => {
      const t = e.composedPath()[0]
      const name = t && t.className ? String(t.className) : String(t && t.tagName)
      window.__alphaswarmClicks.push(`${type}:${name.slice(0, 60)}`)
    }, true)
  }
}"""

#: What the browser knows when a click on a runs-table row did nothing: the clicks it
#: saw and the state of every Tabulator view (one stuck "updating" ignores row clicks).
CLICK_STATE_JS = """() => {
  const tables = []
  const views = window.Bokeh && Bokeh.index.all_views ? [...Bokeh.index.all_views()] : []
  for (const view of views) {
    if (view.model.type.endsWith("Tabulator")) {
      tables.push({selection_updating: view._selection_updating,
                   initializing: view._initializing,
                   selected: view.model.source.selected.indices,
                   rows: view.model.source.get_length()})
    }
  }
  return JSON.stringify({clicks: window.__alphaswarmClicks || [], tables})
}"""


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


# -- browser -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def base_url() -> None:
    """No base URL: tests navigate to the server they start (replaces pytest-base-url's)."""
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian's Chromium headless (skip when it is not installed)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need chromium at {CHROMIUM} (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": CHROMIUM_ARGS,
    }


def start_app_server(ledger: aw.Ledger, **options: Any) -> ServerThread:
    """``alphaswarm serve``'s server (dashboard and API) on a free loopback port, answering.

    ``options`` go to :func:`alphaswarm.server.app.build_server`.
    """
    thread = ServerThread("127.0.0.1", free_port(), ledger=ledger, **options).start()
    wait_until(lambda: requests.get(thread.url + "/health", timeout=5).status_code == 200, 30)
    return thread


@pytest.fixture
def app_server(tmp_ledger: aw.Ledger) -> Iterator[str]:
    """``alphaswarm serve``'s server over ``tmp_ledger``; yields its URL (no trailing slash)."""
    thread = start_app_server(tmp_ledger)
    yield thread.url
    stop_everything()
    thread.stop()


@pytest.fixture
def served(tmp_ledger: aw.Ledger) -> Iterator[str]:
    """The dashboard as ``alphaswarm serve`` serves it, on a free loopback port; yields ``url/``."""
    thread = start_app_server(
        tmp_ledger,
        # Closed tabs are cleaned up within seconds. A lifetime shorter than a page load
        # on a loaded machine lets the server drop the session before the page's socket
        # connects; the socket then gets a fresh session whose styles name the CDN.
        check_unused_sessions_milliseconds=1000,
        unused_session_lifetime_milliseconds=10_000,
    )
    yield thread.url + "/"
    stop_everything()
    thread.stop()
