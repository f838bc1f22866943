"""KillSwitch.follow: how a process applies an engagement made by another one."""

from __future__ import annotations

from alphaswarm.ledger import Ledger
from alphaswarm.paper.killswitch import KillSwitch


def counting_switch() -> tuple[KillSwitch, list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []
    ks = KillSwitch()
    ks.register("agents", lambda reason, mode: calls.append((reason, mode)) or 2)
    return ks, calls


def test_a_new_epoch_halts_once_and_a_reset_releases():
    ks, calls = counting_switch()
    kill = {"engaged": True, "epoch": 3, "mode": "flatten", "reason": "drill"}
    result = ks.follow(kill)
    assert calls == [("drill", "flatten")] and result["targets"]["agents"]["halted"] == 2
    assert ks.engaged and ks.mode == "flatten" and ks.reason == "drill"
    assert ks.follow(kill) is None and ks.follow({**kill, "epoch": 2}) is None
    assert len(calls) == 1  # the notification and every re-read halt once per epoch
    ks.follow({"engaged": False, "epoch": 2})
    assert ks.engaged  # an older reset does not release a newer engagement
    ks.follow({"engaged": False, "epoch": 3})
    assert not ks.engaged
    ks.follow({**kill, "epoch": 4})
    assert ks.engaged and len(calls) == 2


def test_adopt_takes_the_state_without_halting():
    ks, calls = counting_switch()
    ks.follow({"engaged": True, "epoch": 1, "mode": "cancel"}, adopt=True)
    assert ks.engaged and calls == []


def test_sqlite_stays_single_process(tmp_path):
    ks, calls = counting_switch()
    with Ledger(url=f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        ks.attach_ledger(ledger)
        assert ks._listener is None  # no listener thread on SQLite
        result = ks.engage("drill")
        assert "cluster" not in result and len(calls) == 1
        assert ledger.kill_switch_state()["epoch"] == 1
        ks.refresh(force=True, wait=True)
        assert len(calls) == 1  # our own engagement is not applied twice
        ks.reset()
        assert ks.engage("again")["engaged"] and ledger.kill_switch_state()["epoch"] == 2
        ks.attach_ledger(None)


def test_the_same_epoch_in_a_new_mode_is_applied_once():
    ks, calls = counting_switch()
    ks.follow({"engaged": True, "epoch": 5, "mode": "reduce_only", "reason": "drill"})
    assert calls == [("drill", "reduce_only")]
    # re-engaged elsewhere in another mode: same epoch, new mode -> applied here
    result = ks.follow({"engaged": True, "epoch": 5, "mode": "flatten", "reason": "worse"})
    assert calls[-1] == ("worse", "flatten") and ks.mode == "flatten"
    assert result["epoch"] is None  # no new epoch: nothing to acknowledge
    assert ks.follow({"engaged": True, "epoch": 5, "mode": "flatten"}) is None
    assert len(calls) == 2


def test_per_bot_halts_of_the_row_halt_here_and_releases_release():
    ks = KillSwitch()
    halted: list[tuple[str, str, str]] = []
    ks.register_bot_halt(lambda bot, reason, mode: halted.append((bot, reason, mode)) or 1)
    scope = {"halted_bots": ["b1"], "bot_halts": {"b1": {"reason": "bad fills", "mode": "flatten"}}}
    assert ks.follow_bots({"scope": scope}, wait=True) == ["b1"]
    assert halted == [("b1", "bad fills", "flatten")] and ks.halted_bots == ["b1"]
    assert ks.order_mode("b1") == "halted" and ks.order_mode("b2") is None
    assert ks.follow_bots({"scope": scope}, wait=True) == []  # applied once
    assert ks.follow_bots({"scope": {"halted_bots": []}}, wait=True) == []
    assert ks.halted_bots == [] and ks.order_mode("b1") is None and len(halted) == 1


def test_a_row_older_than_our_own_write_changes_no_bot(tmp_path):
    ks = KillSwitch()
    with Ledger(url=f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        ks.attach_ledger(ledger)
        stale = ledger.kill_switch_state()
        ks.engage("one bot", bot="b1")
        assert ks.follow_bots(stale, wait=True) == [] and ks.halted_bots == ["b1"]
        ks.refresh(force=True, wait=True)
        assert ks.halted_bots == ["b1"]
        ks.reset(bot="b1")
        assert ks.halted_bots == [] and ledger.kill_switch_state()["scope"]["halted_bots"] == []
        ks.attach_ledger(None)
