"""What a notebook cell shows when something is refused or misconfigured: one readable
kit exception that says what to do, never a raw SQLAlchemy or driver traceback."""

from __future__ import annotations

import traceback

import pytest

import alphaswarm as aw
from alphaswarm.data import FeedError
from alphaswarm.ledger import LedgerError
from alphaswarm.paper.runtime import engine_loop


@pytest.fixture
def tmp_ledger(tmp_path):
    """A fresh SQLite ledger as the process default; the kill switch released after."""
    led = aw.set_ledger(f"sqlite:///{tmp_path}/l.db")
    yield led
    if aw.kill_switch().engaged:
        aw.kill_switch().reset(actor="test")
    aw.set_ledger(None)
    led.close()


@pytest.fixture
def good_bot(tmp_ledger):
    """A bot with a recent passing backtest."""
    bot = aw.Bot({"name": "errors-sma", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20},
                  "risk": {"kill_switch_attached": True, "max_position_qty": 500,
                           "max_drawdown_pct": 0.05}})  # fmt: skip
    aw.backtest(bot, bars=2000)
    return bot


def _shown(exc: BaseException) -> str:
    """The traceback text a cell prints for ``exc``."""
    return "".join(traceback.format_exception(exc))


def test_plain_path_in_env_is_an_sqlite_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALPHASWARM_DB_URL", "ledger.db")
    led = aw.Ledger()
    try:
        assert led.url == f"sqlite:///{tmp_path / 'ledger.db'}"
        assert led.runs().empty
        assert (tmp_path / "ledger.db").exists()
    finally:
        led.close()


def test_plain_path_given_to_set_ledger(tmp_path):
    led = aw.set_ledger(str(tmp_path / "sub" / "my.db"))
    try:
        assert led.dialect == "sqlite"
        assert led.runs().empty
        assert (tmp_path / "sub" / "my.db").exists()
    finally:
        aw.set_ledger(None)
        led.close()


@pytest.mark.parametrize(
    "url", ["foo://somewhere", "postgres+nodriver://u@h/db", "sqlite+zz:///x.db"]
)
def test_bad_url_is_one_readable_ledger_error(url, monkeypatch):
    monkeypatch.setenv("ALPHASWARM_DB_URL", url)
    with pytest.raises(LedgerError) as info:
        aw.Ledger().runs()
    text = _shown(info.value)
    assert "expected sqlite:///" in str(info.value)
    assert "sqlalchemy" not in text.split("LedgerError")[0].lower()  # nothing chained above
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_gate_refusal_says_what_to_do(tmp_ledger):
    bot = aw.Bot({"name": "never-backtested", "strategy": "sma_cross"})
    with pytest.raises(aw.GateRefused) as info:
        aw.PaperSession(bot, speed=0).start(loop=engine_loop())
    assert "aw.backtest(bot)" in str(info.value) and "force=True" in str(info.value)


def test_kill_switch_refusal_says_how_to_reset(good_bot):
    aw.kill_switch().engage("drill", actor="test")
    with pytest.raises(aw.KillSwitchEngaged) as info:
        aw.PaperSession(good_bot, speed=0).start(loop=engine_loop())
    assert "aw.kill_switch().reset()" in str(info.value)
    assert "alphaswarm kill --reset" in str(info.value)


def test_unknown_symbol_names_the_available_ones(tmp_ledger):
    bot = aw.Bot({"name": "no-such", "strategy": "sma_cross", "universe": ["NOPE"],
                  "data": {"feed": "sample"}})  # fmt: skip
    with pytest.raises(FeedError, match="no data for 'NOPE'; available: .*AAPL"):
        aw.backtest(bot)
