"""Library calls leave the interpreter as they found it; tuning is an opt-in that cleans up.

Each check runs in a fresh interpreter, so other tests' threads, frozen objects
or switch interval cannot hide (or fake) a change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, tmp_path: Path, timeout: float = 180) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["ALPHASWARM_DB_URL"] = f"sqlite:///{tmp_path / 'default-ledger.db'}"
    env["ALPHASWARM_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


STATE = """
import gc, importlib, json, sys, threading

def state():
    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "gc_enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "switch": sys.getswitchinterval(),
    }
"""


def test_backtest_without_store_changes_nothing_interpreter_wide(tmp_path):
    out = run_python(
        STATE
        + """
import alphaswarm as aw
bt = importlib.import_module("alphaswarm.backtest")  # the module, in any version
from alphaswarm.paper import runtime

during = []
summarize = bt.summarize
def spying_summarize(*args, **kwargs):  # runs inside the backtest
    during.append(gc.isenabled())
    return summarize(*args, **kwargs)
bt.summarize = spying_summarize

bot = aw.Bot(name="quiet", strategy="sma_cross", universe=["DEMO"])
before = state()
count = threading.active_count()
for engine in ("vector", "event"):
    result = aw.backtest(bot, bars=600, store=False, engine=engine)
    assert result.id is None and result.bars == 600
after = state()
print(json.dumps({
    "before": before, "after": after, "during": during,
    "count": [count, threading.active_count()],
    "ledger_opened": runtime.current().ledger_opened,
}))
""",
        tmp_path,
    )
    assert out["after"] == out["before"]
    assert out["count"][0] == out["count"][1]
    assert out["during"] == [True, True], "the collector stays on while a backtest runs"
    assert not out["ledger_opened"]
    assert not (tmp_path / "default-ledger.db").exists()


def test_a_stored_backtest_starts_only_the_ledger_checkpointer(tmp_path):
    out = run_python(
        STATE
        + """
import alphaswarm as aw

bot = aw.Bot(name="stored", strategy="sma_cross", universe=["DEMO"])
before = state()
result = aw.backtest(bot, bars=300)
print(json.dumps({"before": before, "after": state(), "id": result.id}))
""",
        tmp_path,
    )
    before, after = out["before"], out["after"]
    assert out["id"].startswith("bt-")
    assert (tmp_path / "default-ledger.db").exists()
    new = sorted(set(after.pop("threads")) - set(before.pop("threads")))
    assert new == ["alphaswarm-wal-checkpoint"]
    assert after == before


def test_the_kill_switch_starts_its_small_pool_with_a_second_halt_target(tmp_path):
    out = run_python(
        """
import json, threading
from alphaswarm.paper.killswitch import KillSwitch

start = threading.active_count()
ks = KillSwitch()
created = threading.active_count()
ks.register("paper", lambda reason, mode: 1)
one = threading.active_count()
ks.register("bots", lambda reason, mode: 2)
two = threading.active_count()
result = ks.engage("test")
print(json.dumps({"counts": [start, created, one, two, threading.active_count()],
                  "halted": {k: v["halted"] for k, v in result["targets"].items()},
                  "workers": getattr(KillSwitch, "POOL_WORKERS", None)}))
""",
        tmp_path,
    )
    start, created, one, two, end = out["counts"]
    assert created == start and one == start
    assert two == start + out["workers"] <= start + 2
    assert end == two
    assert out["halted"]["paper"] == 1 and out["halted"]["bots"] == 2


PAPER = """
import weakref
import alphaswarm as aw
from alphaswarm.data import SyntheticFeed

def wait_for(predicate, timeout=60.0):
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

class Holder:
    \"\"\"50 MB the host owns, in a reference cycle (only the collector frees it).\"\"\"
    def __init__(self):
        self.payload = bytearray(50 * 1024 * 1024)
        self.me = self

ledger = aw.Ledger(url="sqlite:///" + "{db}")
bot = aw.Bot(name="host", strategy="sma_cross", universe=["DEMO"])
"""


def test_a_paper_session_changes_nothing_interpreter_wide(tmp_path):
    db = (tmp_path / "paper.db").as_posix()
    out = run_python(
        STATE
        + PAPER.replace("{db}", db)
        + """
before = state()
feed = SyntheticFeed(["DEMO"], seed=3, bars=120)
session = aw.PaperSession(bot, feed=feed, ledger=ledger, speed=0, force=True, reason="t")
session.start()
assert session.wait(120)
print(json.dumps({"before": before, "after": state(), "status": session.status}))
""",
        tmp_path,
    )
    before, after = out["before"], out["after"]
    assert out["status"] == "completed"
    for key in ("gc_enabled", "frozen", "switch"):
        assert after[key] == before[key], key


@pytest.mark.parametrize("tuned", [False, True], ids=["tuning-off", "tuning-on"])
def test_a_host_cycle_is_reclaimed_after_the_session_ends(tmp_path, tuned):
    db = (tmp_path / "paper.db").as_posix()
    out = run_python(
        STATE
        + PAPER.replace("{db}", db)
        + f"""
tuned = {tuned!r}
before = state()
if tuned:
    from alphaswarm.paper import tuning
    tuning.enable()
held = Holder()
ref = weakref.ref(held)
feed = SyntheticFeed(["DEMO"], seed=3, bars=100_000)
session = aw.PaperSession(bot, feed=feed, ledger=ledger, speed=60, force=True, reason="t")
session.start()
froze = None
if tuned:
    # the freezer takes what the sessions and the host hold out of the collector's sight
    froze = wait_for(lambda: tuning.heap_freezer() is not None and tuning.heap_freezer().frozen)
    del held
    gc.collect()
    kept_while_frozen = ref() is not None
else:
    del held
    kept_while_frozen = None
session.stop("test over")
assert session.wait(60)

def reclaimed():
    gc.collect()
    return ref() is None

ok = wait_for(reclaimed)
frozen_after = wait_for(lambda: gc.get_freeze_count() == 0)
if tuned:
    tuning.disable()
print(json.dumps({{"froze": froze, "kept_while_frozen": kept_while_frozen, "reclaimed": ok,
                  "unfrozen": frozen_after, "before": before, "after": state()}}))
""",
        tmp_path,
    )
    assert out["reclaimed"], "the host's 50 MB cycle must be reclaimed once the session ended"
    assert out["unfrozen"]
    if tuned:
        assert out["froze"] is True
        assert out["kept_while_frozen"] is True, "frozen while the session ran"
    for key in ("gc_enabled", "frozen", "switch"):
        assert out["after"][key] == out["before"][key], key


def test_a_sweep_without_a_ledger_changes_nothing_interpreter_wide(tmp_path):
    out = run_python(
        STATE
        + """
import alphaswarm as aw

trials = importlib.import_module("alphaswarm.sweep.trials")
during = []
run_vectorized = trials.run_vectorized
def spying_run_vectorized(*args, **kwargs):  # runs inside every trial
    during.append(gc.isenabled())
    return run_vectorized(*args, **kwargs)
trials.run_vectorized = spying_run_vectorized

bot = aw.Bot(name="quiet-sweep", strategy="sma_cross", universe=["DEMO"])
before = state()
result = aw.sweep(bot, {"fast": [5, 10]}, bars=400, backend="serial", ledger=False,
                  progress=False)
print(json.dumps({"before": before, "after": state(), "during": during,
                  "trials": len(result.trials)}))
""",
        tmp_path,
    )
    assert out["trials"] == 2
    assert out["during"] and all(out["during"]), "the collector stays on in every trial"
    assert out["after"] == out["before"]
    assert not (tmp_path / "default-ledger.db").exists()
