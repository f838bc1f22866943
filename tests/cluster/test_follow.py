"""KillSwitch.follow: how a process applies an engagement made by another one."""

from __future__ import annotations

from alphaswarm.killswitch import KillSwitch
from alphaswarm.ledger import Ledger


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
