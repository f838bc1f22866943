"""Interpreter tuning: off by default, explicit to turn on, undone when turned off."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from alphaswarm.paper import tuning
from alphaswarm.paper.killswitch import KillSwitch


@pytest.fixture(autouse=True)
def _tuning_off():
    before = sys.getswitchinterval()
    assert not tuning.enabled()
    yield
    tuning.disable()
    sys.setswitchinterval(before)
    gc.enable()


def test_latency_critical_changes_nothing_without_tuning():
    before = sys.getswitchinterval()
    with tuning.latency_critical():
        assert gc.isenabled()
        assert sys.getswitchinterval() == before


def test_enable_and_disable_restore_the_switch_interval():
    before = sys.getswitchinterval()
    tuning.enable(2.5)
    assert tuning.enabled()
    assert sys.getswitchinterval() == pytest.approx(0.0025)
    tuning.enable(1.0)  # again: the value before the first enable is what comes back
    tuning.disable()
    assert not tuning.enabled()
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("bad", [0, -1, 101, True])
def test_enable_refuses_a_switch_interval_out_of_range(bad):
    before = sys.getswitchinterval()
    with pytest.raises(ValueError, match="switch_interval_ms"):
        tuning.enable(bad)
    assert not tuning.enabled() and sys.getswitchinterval() == before


def test_overlapping_halts_on_two_threads_turn_the_collector_back_on_once():
    tuning.enable(1.0)
    inside, release = threading.Event(), threading.Event()
    seen = []

    def other() -> None:
        with tuning.latency_critical():
            inside.set()
            release.wait(30)
            seen.append(gc.isenabled())

    with tuning.latency_critical():
        assert not gc.isenabled()
        assert sys.getswitchinterval() == pytest.approx(tuning.HALT_SWITCH_INTERVAL_S)
        thread = threading.Thread(target=other)
        thread.start()
        assert inside.wait(30)
    # this thread's block ended first: the other one still holds the collector off
    assert not gc.isenabled()
    release.set()
    thread.join(30)
    assert seen == [False]
    assert gc.isenabled()
    assert sys.getswitchinterval() == pytest.approx(0.001)


def test_a_collector_the_host_turned_off_stays_off():
    tuning.enable(1.0)
    gc.disable()
    with tuning.latency_critical():
        pass
    assert not gc.isenabled()


@pytest.mark.parametrize("tuned", [False, True])
def test_an_engagement_changes_the_interpreter_only_when_tuned(tuned):
    if tuned:
        tuning.enable(1.0)
    before = sys.getswitchinterval()
    ks = KillSwitch()
    seen = []
    ks.register(
        "paper", lambda reason, mode: seen.append((gc.isenabled(), sys.getswitchinterval())) or 0
    )
    ks.engage("test")
    if tuned:
        assert seen == [(False, tuning.HALT_SWITCH_INTERVAL_S)]
    else:
        assert seen == [(True, before)]
    assert gc.isenabled() and sys.getswitchinterval() == before
    assert not ks.engaging.is_set()


@pytest.mark.parametrize("value", ["", "1"])
def test_panel_serve_plugin_opts_in_only_with_the_environment_variable(value, tmp_path):
    import json
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "ALPHASWARM_TUNE_INTERPRETER": value}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["ALPHASWARM_DB_URL"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    env.pop("ALPHASWARM_TOKEN", None)
    code = (
        "import json, sys\n"
        "before = sys.getswitchinterval()\n"
        "import alphaswarm.server.routes\n"
        "from alphaswarm.paper import tuning\n"
        "print(json.dumps([before, sys.getswitchinterval(), tuning.enabled()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after, enabled = json.loads(proc.stdout.strip().splitlines()[-1])
    if value:
        assert enabled and after == pytest.approx(tuning.DEFAULT_SWITCH_INTERVAL_MS / 1000)
    else:
        assert not enabled and after == before
