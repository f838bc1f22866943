"""A paper session whose bot says ``broker: {kind: alpaca_paper}`` (the loopback Alpaca)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import alphaswarm as aw
from alphaswarm.bots import BotSpecError
from tests.broker.conftest import wait_for
from tests.session.conftest import demo_bot, ledger, runtime  # noqa: F401 - the ledger fixture

FILLS_SQL = "SELECT order_id, qty, price FROM paper_fills WHERE paper_run_id = :run_id"


def test_a_paper_session_trades_through_the_alpaca_paper_broker(
    ledger,  # noqa: F811
    alpaca_keys,
    trading_server,
):
    trading_server.auto_fill = {"DEMO": 100.0}
    bot = demo_bot(broker={"kind": "alpaca_paper", "calendar": "24x7", "urls": trading_server.urls})
    aw.backtest(bot, ledger=ledger)
    frames: list[dict] = []
    session = aw.PaperSession(bot, speed=0, duration_minutes=390)
    session.frames.subscribe(frames.append)
    session.start()
    assert session.wait(120), "session did not finish"
    engine_broker = session._engine.broker
    wait_for(lambda: trading_server.listening() == 0, what="the session to close its stream")
    stages = Counter(f["stage"] for f in frames)
    assert stages["order.placed"] > 0
    assert trading_server.hits["POST /v2/orders"] == stages["order.placed"]
    fills = ledger.sql(FILLS_SQL, run_id=session.paper_run_id)
    # At speed 0 the bars can run out before the broker's first fill arrives over its
    # stream: a fill reported after the last bar is recorded, though no bar is left to
    # frame it. So the fills are counted in the ledger, and the frames are at most them.
    assert len(fills) > 0
    assert len(fills) == len(engine_broker.fills) >= stages["order.filled"]
    assert set(fills["price"]) == {100.0}  # the broker's price, not the simulator's
    state = ledger.sql(
        "SELECT state FROM paper_trading_runs WHERE id = :run_id", run_id=session.paper_run_id
    )["state"][0]
    state = json.loads(state) if isinstance(state, str) else state
    by_cid = trading_server.call(lambda: {c: o["id"] for c, o in trading_server.by_cid.items()})
    assert state["broker"]["kind"] == "alpaca_paper"
    assert state["broker"]["order_ids"] == {c[len("aw-") :]: i for c, i in by_cid.items()}
    prefix = f"aw-{session.paper_run_id}-o"
    assert all(
        cid.startswith(prefix) for cid in trading_server.call(lambda: list(trading_server.by_cid))
    )
    # the broker's ids are columns of the ledger's order rows too
    rows = ledger.sql(
        "SELECT id, broker_order_id FROM paper_orders WHERE paper_run_id = :run_id",
        run_id=session.paper_run_id,
    )
    assert len(rows) == len(by_cid)
    assert (
        dict(zip(rows["id"], rows["broker_order_id"], strict=True)) == state["broker"]["order_ids"]
    )


def test_broker_order_ids_land_in_the_ledger_on_both_backends(
    session_ledger, alpaca_keys, trading_server
):
    trading_server.auto_fill = {"DEMO": 100.0}
    bot = demo_bot(broker={"kind": "alpaca_paper", "calendar": "24x7", "urls": trading_server.urls})
    aw.backtest(bot, ledger=session_ledger)
    session = aw.PaperSession(bot, speed=0, duration_minutes=120)
    session.start()
    assert session.wait(120), "session did not finish"
    wait_for(lambda: trading_server.listening() == 0, what="the session to close its stream")
    rows = session_ledger.sql(
        "SELECT id, broker_order_id FROM paper_orders WHERE paper_run_id = :run_id",
        run_id=session.paper_run_id,
    )
    by_cid = trading_server.call(lambda: {c: o["id"] for c, o in trading_server.by_cid.items()})
    assert len(rows) == len(by_cid) > 0
    assert dict(zip(rows["id"], rows["broker_order_id"], strict=True)) == {
        c[len("aw-") :]: i for c, i in by_cid.items()
    }
    # a simulated run leaves the column empty
    simulated = demo_bot()
    aw.backtest(simulated, ledger=session_ledger)
    sim = aw.PaperSession(simulated, speed=0, duration_minutes=60)
    sim.start()
    assert sim.wait(120)
    empty = session_ledger.sql(
        "SELECT broker_order_id FROM paper_orders WHERE paper_run_id = :run_id",
        run_id=sim.paper_run_id,
    )
    assert len(empty) > 0 and empty["broker_order_id"].isna().all()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"kind": "ib_live"}, "broker.kind: 'ib_live' is not one of simulated, alpaca_paper"),
        ({"kind": "alpaca_paper", "key_env": "PK 123/abc"}, "environment variable, not a key"),
        ({"kind": "alpaca_paper", "api_key": "PK123"}, "unknown key"),
    ],
)
def test_the_broker_block_is_checked(block, message):
    with pytest.raises(BotSpecError, match=message):
        demo_bot(broker=block)


def test_the_kill_switch_cancels_open_orders_at_the_broker(
    ledger,  # noqa: F811
    alpaca_keys,
    trading_server,
):
    from alphaswarm.paper.killswitch import kill_switch

    trading_server.cancel_delay = 0.02  # orders stay open: nothing fills them
    bot = demo_bot(
        params={"fast": 2, "slow": 4},
        broker={"kind": "alpaca_paper", "calendar": "24x7", "urls": trading_server.urls},
    )
    aw.backtest(bot, ledger=ledger)
    frames: list[dict] = []
    session = aw.PaperSession(bot, speed=6000, duration_minutes=None)
    session.frames.subscribe(frames.append)
    session.start()
    try:
        wait_for(lambda: trading_server.open_count() >= 1, what="an open order at the broker")
        kill_switch().engage("drill", actor="test")
        assert session.wait(30) and session.status == "killed"
    finally:
        session._engine.broker.broker.close()
    assert trading_server.open_count() == 0
    cancelled = [f for f in frames if f["stage"] == "order.cancelled"]
    assert cancelled and all("broker confirmed in" in f["reason"] for f in cancelled)
    confirmations = session._engine.broker.last_cancel
    assert confirmations and all(c.confirmed for c in confirmations)


def test_a_simulated_broker_block_keeps_its_fill_model():
    bot = demo_bot(broker={"kind": "simulated", "slippage_bps": 5})
    assert bot.broker_config().slippage_bps == 5
    assert demo_bot(broker={"slippage_bps": 2}).broker_config().slippage_bps == 2
    alpaca = demo_bot(broker={"kind": "alpaca_paper", "calendar": "equities"})
    assert alpaca.broker_config().slippage_bps == 0  # the fill model's defaults
