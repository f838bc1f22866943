"""The bots, backtest and sweep pages' parts without a browser (real SQLite ledger)."""

from __future__ import annotations

import pytest

import alphaswarm as aw
from alphaswarm.ui.pages.backtests import BacktestPage
from alphaswarm.ui.pages.bot import BotPage, version_diff
from alphaswarm.ui.pages.bots import BotsPage
from alphaswarm.ui.pages.gate_view import evaluate, rule_rows
from alphaswarm.ui.routes import NEGOTIATED, Route, page_path, parse
from tests.ui.conftest import GOOD_BOT


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/bots", Route("bots")),
        ("/bots/", Route("bots")),
        ("/bots/ui-sma", Route("bot", "ui-sma")),
        ("/backtests/bt-1", Route("backtest", "bt-1")),
        ("/sweeps", Route("sweeps")),
        ("/sweeps/grid%201", Route("sweep", "grid 1")),
    ],
)
def test_the_new_page_addresses_parse(path, route):
    assert parse(path) == route
    assert parse(route.path) == route


def test_only_the_bot_pages_share_an_address_with_the_api():
    assert set(NEGOTIATED) == {"bots", "bot"}
    assert page_path("bot", "a/b") == "/bots/a%2Fb"


def test_a_diff_shows_what_changed_between_versions():
    old = aw.Bot(GOOD_BOT).spec
    new = aw.Bot({**GOOD_BOT, "params": {"fast": 5, "slow": 30}}).spec
    diff = version_diff(old, new, "v1", "v2")
    assert "-  slow: 20" in diff.splitlines()
    assert "+  slow: 30" in diff.splitlines()
    assert version_diff(old, old, "v1", "v1") == ""


def test_every_gate_rule_is_listed_and_agrees_with_the_gate(tmp_ledger):
    bot = aw.Bot(GOOD_BOT)
    bot_id, version, _ = tmp_ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    result, missing = evaluate(bot, tmp_ledger, bot_id, version)
    rows = {r.rule: r for r in rule_rows(bot, result, missing)}
    assert result.status == "error"
    assert rows["backtest"].holds is False
    assert rows["sharpe"].holds is None  # not judged without a backtest
    assert rows["kill switch attached"].holds is True

    aw.backtest(bot, bars=2000)
    result, missing = evaluate(bot, tmp_ledger, bot_id, version)
    rows = rule_rows(bot, result, missing)
    assert result.status in ("ok", "warning")
    assert all(r.holds for r in rows), [r for r in rows if not r.holds]


def test_an_invalid_spec_is_refused_in_place_and_writes_nothing(tmp_ledger):
    page = BotsPage(ledger=tmp_ledger)
    assert page.register("name: x\nstrategy: nope\n") is None
    assert page.outcome.visible and "unknown strategy" in page.outcome.object
    assert page.register("- not\n- a mapping\n") is None
    assert tmp_ledger.list_bots() == []
    assert page.register("name: fine\nstrategy: sma_cross\n") == "fine"
    assert [b["id"] for b in tmp_ledger.list_bots()] == ["fine"]


def test_forcing_without_a_reason_starts_nothing(tmp_ledger):
    bot = aw.Bot(GOOD_BOT)
    tmp_ledger.register_bot(bot.name, bot.spec, bot.spec_hash)
    page = BotPage(bot_id="ui-sma", ledger=tmp_ledger)
    assert page.start_paper(force=True) is None
    assert page.message == "no reason"
    assert page.start_paper() is None
    assert page.message.startswith("paper gate refused")
    assert tmp_ledger.list_runs() == []


def test_the_backtest_page_rebuilds_the_stored_result(tmp_ledger):
    stored = aw.backtest(aw.Bot(GOOD_BOT), bars=1500)
    page = BacktestPage(backtest_id=stored.id, ledger=tmp_ledger)
    assert page.result is not None
    assert page.result.metrics == stored.metrics
    assert page.result.bars == stored.bars
    assert page._drift() == ""
    assert len(tmp_ledger.backtests()) == 1  # the re-run is not stored
