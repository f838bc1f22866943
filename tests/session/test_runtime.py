"""Two runtimes in one process: two ledgers, two kill switches, two registries."""

from __future__ import annotations

import time

import pytest

import alphaswarm as aw
from alphaswarm.data import ReplayFeed
from alphaswarm.paper import runtime as rt_module
from alphaswarm.paper.explain import explain_order
from alphaswarm.paper.runtime import Runtime, use_runtime
from tests.reconcile.conftest import make_bars, scripted_spec
from tests.session.conftest import demo_bot


def _wait_for_bars(session: aw.PaperSession, n: int = 1, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while session.bars_seen < n and not session.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session.bars_seen >= n, f"no bar within {timeout}s: {session!r}"


@pytest.fixture
def two_runtimes(tmp_path):
    a = Runtime(ledger=f"sqlite:///{tmp_path}/a.db", name="a")
    b = Runtime(ledger=f"sqlite:///{tmp_path}/b.db", name="b")
    yield a, b
    for runtime in (a, b):
        runtime.kill_switch.reset(actor="test")
        runtime.close()
        runtime.ledger.close()


def test_a_kill_in_one_runtime_leaves_the_other_trading(two_runtimes):
    a, b = two_runtimes
    bot = demo_bot()
    for runtime in (a, b):
        aw.backtest(bot, ledger=runtime.ledger)
    sa = aw.PaperSession(bot, runtime=a, speed=60, duration_minutes=None).start()
    sb = aw.PaperSession(bot, runtime=b, speed=60, duration_minutes=None).start()
    assert sa.ledger_ is a.ledger and sb.ledger_ is b.ledger
    _wait_for_bars(sa)
    _wait_for_bars(sb)

    result = a.kill_switch.engage("drill in a", actor="test")

    assert result["targets"]["paper"]["halted"] + result["targets"]["bots"]["halted"] == 1
    assert sa.finished and sa.status == "killed"
    assert not sb.finished and sb.status == "running"
    assert a.registry.running() == [] and b.registry.running() == [sb]
    seen = sb.bars_seen
    _wait_for_bars(sb, seen + 1)  # B keeps taking bars after A's kill
    assert not b.kill_switch.engaged
    assert b.ledger.kill_switch_state()["engaged"] in (False, 0, None)
    assert b.ledger.audit_rows("kill_switch.engage").empty
    assert len(a.ledger.audit_rows("kill_switch.engage")) == 1
    runs_b = b.ledger.sql("SELECT status FROM paper_trading_runs")
    assert list(runs_b["status"]) == ["running"]
    assert sb.stop("test done") and sb.wait(30) and sb.status == "stopped"


def test_a_session_keeps_the_runtime_it_was_made_with(two_runtimes):
    a, _ = two_runtimes
    with use_runtime(a) as active:
        assert active is a and Runtime.default() is a
        assert aw.kill_switch() is a.kill_switch and aw.registry() is a.registry
        assert aw.get_ledger() is a.ledger
        session = aw.PaperSession(demo_bot())
    assert Runtime.default() is not a
    assert session.runtime is a and session.ledger_ is a.ledger


def test_the_accessors_are_views_of_the_default_runtime(tmp_path):
    previous = rt_module.set_runtime(None)
    try:
        default = Runtime.default()
        assert Runtime.default() is default
        assert aw.kill_switch() is default.kill_switch
        assert aw.registry() is default.registry
        assert not default.ledger_opened  # nothing opened until asked for
        led = aw.set_ledger(f"sqlite:///{tmp_path}/d.db")
        assert default.ledger is led and aw.get_ledger() is led
        assert aw.PaperSession(demo_bot()).runtime is default
        default.close()
        led.close()
    finally:
        rt_module.set_runtime(previous)


def test_explain_asks_the_runtime_registry_why_an_order_is_open(two_runtimes, monkeypatch):
    monkeypatch.setenv("ALPHASWARM_STRATEGY_MODULES", "tests.reconcile")
    a, _ = two_runtimes
    session = aw.PaperSession(
        aw.Bot(scripted_spec(params={"plan": [[5, "limit", 10, 50.0]]})),
        runtime=a,
        feed=ReplayFeed.from_frame(make_bars(n=2000)),
        speed=300,
        duration_minutes=None,
        force=True,
        reason="runtime test",
    ).start()
    deadline = time.monotonic() + 60
    while session.bars_seen < 8 and not session.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not session.finished
    order_id = session.orders["id"].iloc[0]
    live = a.registry.why_open(session.paper_run_id, order_id)
    assert live is not None and live.startswith("limit 50.00")  # the live broker's words
    assert aw.registry().why_open(session.paper_run_id, order_id) is None  # not the default's
    explained = explain_order(a.ledger, session.paper_run_id, order_id, a.registry)
    assert explained["open_reason"].startswith("limit 50.00")
    assert session.explain(order_id)["open_reason"].startswith("limit 50.00")
    assert a.registry.why_open(session.paper_run_id, "no-such-order") is None
    session.stop("test done")
    assert a.registry.why_open(session.paper_run_id, order_id) is None  # finished


def test_closing_a_runtime_ends_every_thread_it_started(tmp_path):
    import threading

    before = {t.ident for t in threading.enumerate()}
    runtime = Runtime(ledger=f"sqlite:///{tmp_path}/c.db", name="closing")
    bot = demo_bot()
    aw.backtest(bot, ledger=runtime.ledger)
    session = aw.PaperSession(bot, runtime=runtime, speed=60, duration_minutes=None).start()
    _wait_for_bars(session)
    runtime.kill_switch.engage("drill", actor="test")
    assert session.status == "killed"
    runtime.close()
    runtime.ledger.close()

    def extra() -> list[str]:
        return [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]

    deadline = time.monotonic() + 30
    while extra() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert extra() == []
