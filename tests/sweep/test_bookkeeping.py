"""Honest bookkeeping of sweeps: N, the gate, walk-forward reports, killed sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
from sqlalchemy import text

from alphaswarm.ledger import Ledger
from alphaswarm.sweep.api import gate_failures, overfit_report
from alphaswarm.sweep.ledger import SweepStore
from alphaswarm.sweep.stats import block_moments
from tests.sweep.helpers import serial_sweep, serial_walk_forward, small_bot

# ----------------------------------------------------------------------------- honest N


def test_n_counts_distinct_trial_keys_not_rows(led):
    bot = small_bot()
    first = serial_sweep(
        bot,
        {"fast": [3, 5], "slow": [20]},
        ledger=led,
        name="n-1",
    )
    assert first.report["n_trials"] == 2
    # another sweep with the same two trials and one new one: 5 rows, 3 distinct trials
    second = serial_sweep(
        bot,
        {"fast": [3, 5, 8], "slow": [20]},
        ledger=led,
        name="n-2",
    )
    with led.engine().connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM sweep_trials")).scalar()
    assert rows == 5
    assert second.report["n_trials"] == 3 and second.report["n_sweep"] == 3
    # the first sweep run again under its name: still the same 3 trials
    again = serial_sweep(
        bot,
        {"fast": [3, 5], "slow": [20]},
        ledger=led,
        name="n-1",
    )
    assert again.progress.resumed == 2 and again.report["n_trials"] == 3


# ----------------------------------------------------------------------------- the gate


def _anti_persistent_trials() -> tuple[pd.DataFrame, dict[str, list[list[float]]]]:
    """Four trials whose in-sample winner is the out-of-sample loser, and a high-DSR winner."""
    rng = np.random.default_rng(0)
    patterns = {"A": [1, 1, -1, -1], "B": [-1, -1, 1, 1], "C": [1, -1, 1, -1], "D": [-1, 1, -1, 1]}
    blocks = {}
    for key, pattern in patterns.items():
        r = np.concatenate([0.01 * p + 0.001 * rng.standard_normal(50) for p in pattern])
        blocks[key] = block_moments(r, 4)
    trials = pd.DataFrame(
        {
            "trial_key": list(patterns),
            "status": "done",
            "sharpe": [4.0, 0.2, 0.0, -0.2],
            "sr": [0.3, 0.01, 0.0, -0.01],
            "days": 500,
            "skew": 0.0,
            "kurt": 3.0,
        }
    )
    return trials, blocks


def test_passes_gate_needs_both_dsr_and_pbo():
    trials, blocks = _anti_persistent_trials()
    rep = overfit_report(trials, blocks, "sharpe", pbo_blocks=4)
    assert rep["winner"] == "A"
    assert rep["dsr"] >= 0.95  # DSR alone would pass
    assert rep["pbo"] >= 0.2
    assert rep["passes_gate"] is False
    assert rep["gate_failures"] == [f"PBO {rep['pbo']:.2f} >= 0.2"]


def test_gate_failures_name_each_rule():
    assert gate_failures(0.99, 0.1) == []
    assert gate_failures(0.5, 0.1) == ["DSR 0.500 < 0.95"]
    assert gate_failures(0.5, 0.5) == ["DSR 0.500 < 0.95", "PBO 0.50 >= 0.2"]
    assert gate_failures(float("nan"), float("nan"))[1].startswith("PBO not computed")


def test_the_result_says_which_rule_failed():
    res = serial_sweep(
        small_bot(),
        {"fast": [3, 5, 8], "slow": [20, 30]},
        ledger=False,
    )
    rep = res.report
    assert rep["passes_gate"] == (rep["dsr"] >= 0.95 and rep["pbo"] < 0.2)
    shown = repr(res)
    if rep["passes_gate"]:
        assert "gate passes" in shown
    else:
        assert "gate fails: " + "; ".join(rep["gate_failures"]) in shown


# ----------------------------------------------------------------------------- walk-forward


def test_walk_forward_reports_folds_and_flags_a_losing_winner():
    wf = serial_walk_forward(
        small_bot(),
        {"fast": [3, 8], "slow": [20, 40]},
        train=200,
        test=100,
        gap=5,
        ledger=False,
    )
    shown = repr(wf.in_sample)
    assert "dsr=nan" not in shown and "N=0" not in shown
    fold_dsr = ", ".join(f"{d:.3f}" for d in wf.folds["dsr"])
    assert f"folds=3, dsr by fold=[{fold_dsr}]" in shown and "N by fold=[4, 4, 4]" in shown
    # fold 0's best parameters lose money in sample: flagged, not passed off as a winner
    losing = wf.folds[wf.folds["is_sharpe"] < 0]
    assert list(losing["fold"]) == [0] and wf.losing_folds == [0]
    assert losing["warning"].str.contains("negative Sharpe").all()
    assert wf.folds.loc[wf.folds["is_sharpe"] >= 0, "warning"].isna().all()
    assert "negative Sharpe in fold 0" in repr(wf)
    # the two phases have progress bars of their own names
    assert wf.in_sample.progress.label.endswith(" in-sample")
    assert wf.out_of_sample.progress.label.endswith(" out-of-sample")


# ----------------------------------------------------------------------------- killed sweeps

DOOMED = textwrap.dedent(
    """
    import sys
    from alphaswarm.sweep import sweep
    from tests.sweep.helpers import small_bot

    grid = {"fast": list(range(2, 40)), "slow": [50, 60, 70, 80, 90]}
    sweep(small_bot(), grid, bars=20_000, backend="serial", ledger=sys.argv[1],
          name="doomed", progress=False)
    """
)


def _status(url: str, name: str) -> str | None:
    with Ledger(url=url) as ledger:
        row = SweepStore(ledger).get(name)
    return None if row is None else row["status"]


def _owner_connections(url: str, pid: int) -> int:
    """PostgreSQL: connections still holding the owner lock of process ``pid``."""
    with Ledger(url=url) as ledger, ledger.engine().connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :n"),
            {"n": f"alphaswarm-owner:%:{pid}"},
        ).scalar()


def test_a_killed_sweep_is_interrupted_at_the_next_start(ledger_url):
    url = ledger_url
    with Ledger(url=url) as ledger:  # schema in place before the child starts
        SweepStore(ledger).list()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", DOOMED, url], cwd=root, env=env)
    try:
        deadline = time.monotonic() + 120
        while _status(url, "doomed") != "running":
            assert child.poll() is None, "the sweep process ended before it was killed"
            assert time.monotonic() < deadline, "the sweep never started"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _status(url, "doomed") == "running"  # nothing else noticed yet
    if url.startswith("postgresql"):  # the server drops the dead process's lock connection
        deadline = time.monotonic() + 60
        while _owner_connections(url, child.pid):
            assert time.monotonic() < deadline, "the killed process's connection stayed"
            time.sleep(0.05)
    with Ledger(url=url) as ledger:
        serial_sweep(
            small_bot(),
            {"fast": [3], "slow": [20]},
            ledger=ledger,
            name="next",
        )
        assert SweepStore(ledger).get("doomed")["status"] == "interrupted"
        assert SweepStore(ledger).get("next")["status"] == "done"


def test_a_live_sweep_of_another_process_is_not_interrupted(led):
    store = SweepStore(led)
    sweep_id = store.open("alive", None, {"kind": "sweep"})
    parent = f"{led.owner.rpartition(':')[0]}:{os.getppid()}"  # a live pid on this host
    _set_owner(led, sweep_id, parent)
    assert store.recover() == []
    assert store.get("alive")["status"] == "running"
    _set_owner(led, sweep_id, "elsewhere.example:123", heartbeat="2000-01-01T00:00:00+00:00")
    assert store.recover() == ["alive"]
    assert store.get("alive")["status"] == "interrupted"


def _set_owner(led: Ledger, sweep_id: str, owner: str, heartbeat: str | None = None) -> None:
    from sqlalchemy import select, update

    from alphaswarm.ledger.schema import sweeps

    with led.engine().begin() as conn:
        cfg = conn.execute(select(sweeps.c.config).where(sweeps.c.id == sweep_id)).scalar()
        cfg = {**cfg, "owner": owner}
        if heartbeat:
            cfg["heartbeat_at"] = heartbeat
        conn.execute(update(sweeps).where(sweeps.c.id == sweep_id).values(config=cfg))
