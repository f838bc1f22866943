"""The bots pages in real Chromium against ``alphaswarm serve``'s real server.

``/bots`` lists bots and registers one from YAML (errors shown in place);
``/bots/<id>`` shows the gate rule by rule, versions with a diff, backtests and
paper runs as links, runs a backtest, starts a paper session, and overrides the
gate only with a typed reason (which lands in the audit log); ``/backtests/<id>``
shows the re-run result. The API keeps ``/bots`` for non-browser clients.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import requests
from playwright.sync_api import expect

import alphaswarm as aw
from tests.ui.conftest import GOOD_BOT, start_app_server, stop_everything, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.ui

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
#: A second version of the good bot (slower average): the page diffs the two.
GOOD_BOT_V2 = {**GOOD_BOT, "params": {"fast": 5, "slow": 30}}
#: A bot with no backtest: the gate refuses it.
UNTESTED_BOT = {**GOOD_BOT, "name": "ui-untested"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server for the module: a ledger with a two-version bot, its backtest, an untested bot."""
    stop_everything()
    path = tmp_path_factory.mktemp("bots") / "l.db"
    ledger = aw.set_ledger(f"sqlite:///{path}")
    aw.backtest(aw.Bot(GOOD_BOT), bars=2000)  # v1
    result = aw.backtest(aw.Bot(GOOD_BOT_V2), bars=2000)  # v2, passes the gate
    bot = aw.Bot(UNTESTED_BOT)
    ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    thread = start_app_server(ledger)
    yield {"url": thread.url, "ledger": ledger, "backtest": result.id}
    thread.stop()
    stop_everything()
    aw.set_ledger(None)
    ledger.close()


@pytest.fixture
def errors(page) -> list[str]:
    """Console errors and failed requests of the page (must stay empty).

    The template's web-font stylesheet is on another host, which the test machine
    may not reach: it is answered empty, so only this server's requests count.
    """
    page.route(
        re.compile(r"^https?://(?!127\.0\.0\.1[:/])"),
        lambda route: route.fulfill(status=200, body="", content_type="text/css"),
    )
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.append(str(e)))
    page.on("requestfailed", lambda r: seen.append(f"failed {r.url}"))
    return seen


def fits_the_width(page, selector: str) -> bool:
    """Whether the page content ``selector`` is inside the viewport's width, with a width."""
    box = page.locator(selector).bounding_box()
    width = page.viewport_size["width"]
    return (
        box is not None
        and box["x"] >= 0
        and 0 < box["width"]
        and box["x"] + box["width"] <= width + 1
    )


def test_bots_page_lists_bots_and_registers_from_yaml(page, site, errors):
    page.set_viewport_size(WIDE)
    page.goto(site["url"] + "/bots")
    rows = page.locator(".alphaswarm-bots-table tbody tr")
    expect(rows).to_have_count(2, timeout=30_000)
    good = rows.filter(has_text="ui-sma")
    expect(good).to_contain_text("v2")
    expect(good).to_contain_text("PASSES")
    expect(rows.filter(has_text="ui-untested")).to_contain_text("REFUSED")
    expect(good.locator("a")).to_have_attribute("href", "/bots/ui-sma")
    expect(page.locator(".alphaswarm-nav a", has_text="Sweeps")).to_be_visible()

    box = page.locator(".alphaswarm-register-yaml textarea")
    box.fill("name: broken\nstrategy: no_such_strategy\n")
    page.locator(".alphaswarm-register button").click()
    result = page.locator(".alphaswarm-register-result")
    expect(result).to_contain_text("Not registered", timeout=10_000)
    expect(result).to_contain_text("no_such_strategy")
    assert site["ledger"].get_bot("broken") is None

    box.fill("name: ui-new\nstrategy: sma_cross\nparams: {fast: 3, slow: 9}\n")
    page.locator(".alphaswarm-register button").click()
    expect(result.locator("a", has_text="ui-new")).to_have_attribute(
        "href", "/bots/ui-new", timeout=10_000
    )
    expect(rows).to_have_count(3)
    assert site["ledger"].get_bot("ui-new")["latest_version"] == 1
    assert errors == []


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1440x900", "390x844"])
def test_the_bot_page_shows_gate_versions_backtests(page, site, errors, viewport):
    page.set_viewport_size(viewport)
    page.goto(site["url"] + "/bots/ui-sma")
    head = page.locator(".alphaswarm-bot-head")
    expect(head).to_contain_text("ui-sma", timeout=30_000)
    expect(head).to_contain_text("v2")
    verdict = page.locator(".alphaswarm-gate-verdict")
    expect(verdict).to_have_text(re.compile("Paper gate: PASSES"))
    rules = page.locator(".alphaswarm-gate-rules tbody tr")
    for rule in ("sharpe", "max drawdown", "trades", "bars", "kill switch attached"):
        expect(rules.filter(has_text=rule)).to_contain_text("holds")
    link = page.locator(".alphaswarm-bot-backtests a", has_text=site["backtest"])
    expect(link).to_have_attribute("href", f"/backtests/{site['backtest']}")
    expect(page.locator(".alphaswarm-spec-yaml")).to_contain_text("sma_cross")
    diff = page.locator(".alphaswarm-diff")
    expect(diff).to_contain_text("-  slow: 20")
    expect(diff).to_contain_text("+  slow: 30")
    expect(page.locator(".alphaswarm-start-paper button")).to_be_visible()
    assert fits_the_width(page, ".alphaswarm-bot-page")
    name = "bot_page" if viewport == WIDE else "bot_page_phone"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"  # scripts/screenshots.py copies it to docs/img/
    page.screenshot(path=str(shot), full_page=viewport == WIDE)
    assert errors == []


def test_the_bot_page_runs_a_backtest_and_starts_a_paper_session(page, site, errors):
    page.set_viewport_size(WIDE)
    page.goto(site["url"] + "/bots/ui-sma")
    before = len(site["ledger"].backtests("ui-sma"))
    page.locator(".alphaswarm-run-backtest button").click()
    outcome = page.locator(".alphaswarm-bot-result")
    expect(outcome).to_contain_text("Backtest", timeout=60_000)
    new_id = outcome.locator("a").first.inner_text()
    assert len(site["ledger"].backtests("ui-sma")) == before + 1
    expect(page.locator(".alphaswarm-bot-backtests a", has_text=new_id)).to_be_visible()

    page.locator(".alphaswarm-start-paper button").click()
    expect(outcome).to_contain_text("Started", timeout=30_000)
    run_link = outcome.locator("a").first
    run_id = run_link.inner_text()
    expect(run_link).to_have_attribute("href", f"/runs/{run_id}")
    expect(page.locator(".alphaswarm-bot-runs a", has_text=run_id)).to_be_visible()
    assert site["ledger"].get_run(run_id)["bot_id"] == "ui-sma"
    stop_everything()
    assert errors == []


def test_overriding_the_gate_needs_a_typed_reason_and_is_audited(page, site, errors):
    page.set_viewport_size(WIDE)
    page.goto(site["url"] + "/bots/ui-untested")
    expect(page.locator(".alphaswarm-gate-verdict")).to_contain_text("REFUSED", timeout=30_000)
    expect(page.locator(".alphaswarm-gate-rules tbody tr").first).to_contain_text("fails")
    page.locator(".alphaswarm-start-paper button").click()
    outcome = page.locator(".alphaswarm-bot-result")
    expect(outcome).to_contain_text("The paper gate refused", timeout=30_000)
    expect(outcome).to_contain_text("run a backtest first")

    force = page.locator(".alphaswarm-force-start button")
    expect(force).to_be_disabled()
    page.locator(".alphaswarm-override-reason input").press_sequentially("demo for the desk")
    expect(force).to_be_enabled(timeout=10_000)
    force.click()
    expect(outcome).to_contain_text("gate overridden", timeout=30_000)
    audit = site["ledger"].audit_rows("paper_gate.forced")
    assert [d["reason"] for d in audit["detail"]] == ["demo for the desk"]
    assert audit["detail"].iloc[0]["bot_id"] == "ui-untested"
    stop_everything()
    assert errors == []


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1440x900", "390x844"])
def test_the_backtest_page_shows_the_result(page, site, errors, viewport):
    page.set_viewport_size(viewport)
    page.goto(f"{site['url']}/backtests/{site['backtest']}")
    metrics = page.locator(".alphaswarm-backtest-metrics")
    expect(metrics).to_contain_text("sharpe", timeout=30_000)
    stored = site["ledger"].get_backtest(site["backtest"])
    expect(metrics).to_contain_text(f"{stored['sharpe']:.3f}")
    expect(page.locator("a.alphaswarm-backtest-bot")).to_have_attribute("href", "/bots/ui-sma")
    canvas = page.locator(".alphaswarm-backtest-result canvas").first
    canvas.wait_for(timeout=30_000)
    wait_until(lambda: (canvas.bounding_box() or {}).get("width", 0) > 100, timeout=20)
    assert canvas.bounding_box()["height"] > 50
    expect(page.locator(".alphaswarm-backtest-drift")).to_have_count(0)
    assert fits_the_width(page, ".alphaswarm-backtest-page")
    assert errors == []


def test_unknown_bot_and_backtest_say_so(page, site, errors):
    page.goto(site["url"] + "/bots/no-such-bot")
    expect(page.locator(".alphaswarm-missing-bot")).to_contain_text("no-such-bot", timeout=30_000)
    page.goto(site["url"] + "/backtests/bt-nothing")
    expect(page.locator(".alphaswarm-missing-backtest")).to_contain_text(
        "bt-nothing", timeout=30_000
    )
    assert errors == []


@pytest.mark.parametrize("path", ["/bots", "/bots/ui-sma"])
def test_api_clients_keep_the_json_and_browsers_get_the_page(site, path):
    for accept in ("*/*", "application/json", "application/json, text/html"):
        api = requests.get(site["url"] + path, headers={"Accept": accept}, timeout=10)
        assert api.status_code == 200, accept
        assert api.headers["Content-Type"].startswith("application/json"), accept
        body = api.json()
        assert ("bots" in body) if path == "/bots" else body["bot_id"] == "ui-sma"
    page = requests.get(site["url"] + path, headers={"Accept": BROWSER_ACCEPT}, timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "<html" in page.text.lower()


def test_times_are_in_the_browser_zone_and_named(browser, site):
    context = browser.new_context(timezone_id="America/New_York", viewport=WIDE)
    try:
        page = context.new_page()
        page.route(
            re.compile(r"^https?://(?!127\.0\.0\.1[:/])"),
            lambda route: route.fulfill(status=200, body="", content_type="text/css"),
        )
        page.goto(site["url"] + "/bots/ui-sma")
        expect(page.locator(".alphaswarm-zone")).to_have_text(
            "times in America/New_York", timeout=30_000
        )
        created = pd.Timestamp(site["ledger"].get_bot("ui-sma")["created_at"])
        created = created.tz_localize("UTC") if created.tzinfo is None else created
        local = created.tz_convert("America/New_York").strftime("%Y-%m-%d %H:%M:%S %Z")
        expect(page.locator(".alphaswarm-bot-head")).to_contain_text(f"registered {local}")
        page.goto(f"{site['url']}/backtests/{site['backtest']}")
        expect(page.locator(".alphaswarm-backtest-page")).to_contain_text(
            "(bar time)", timeout=30_000
        )
        expect(page.locator(".alphaswarm-zone")).to_have_text("times in America/New_York")

        from alphaswarm.paper.runtime import engine_loop

        run = aw.PaperSession(aw.Bot(GOOD_BOT_V2), speed=0, duration_minutes=None, max_bars=60)
        run.start(loop=engine_loop())
        run.wait(60)
        started = pd.Timestamp(site["ledger"].get_run(run.paper_run_id)["started_at"])
        started = started.tz_localize("UTC") if started.tzinfo is None else started
        local = started.tz_convert("America/New_York").strftime("%Y-%m-%d %H:%M:%S %Z")
        page.goto(f"{site['url']}/runs/{run.paper_run_id}")
        row = page.locator(".alphaswarm-runs .tabulator-row", has_text=run.paper_run_id)
        expect(row).to_contain_text(local, timeout=30_000)
    finally:
        context.close()


def test_a_kill_of_the_open_run_shows_a_toast(page, site, errors):
    from alphaswarm.paper.runtime import engine_loop

    page.set_viewport_size(WIDE)
    bot = aw.Bot(GOOD_BOT_V2)
    session = aw.PaperSession(bot, speed=1, duration_minutes=None).start(loop=engine_loop())
    try:
        page.goto(f"{site['url']}/runs/{session.paper_run_id}")
        card = page.locator(".alphaswarm-session-card")
        expect(card).to_contain_text(session.paper_run_id, timeout=30_000)
        session.kill("toast drill")
        toast = page.locator(".notyf__toast", has_text="killed")
        expect(toast).to_be_visible(timeout=15_000)
        expect(toast).to_contain_text("toast drill")
    finally:
        stop_everything()
    assert errors == []
