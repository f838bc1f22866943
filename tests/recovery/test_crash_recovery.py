"""A process that dies mid-session leaves a consistent ledger, and the next start says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import alphaswarm as aw
from alphaswarm.ledger import Ledger

CHILD = textwrap.dedent(
    """
    import sys, time
    import alphaswarm as aw
    aw.set_ledger(sys.argv[1])
    bot = aw.Bot(name="crashy", strategy="sma_cross", params={"fast": 3, "slow": 8},
                 risk={"kill_switch_attached": True})
    aw.backtest(bot)
    s = aw.PaperSession(bot, speed=600, duration_minutes=None,
                        force=True, reason="crash test").start()
    print(s.paper_run_id, flush=True)
    time.sleep(600)
    """
)


def _consistent(ledger: Ledger, run_id: str) -> None:
    orphan_fills = ledger.sql(
        "SELECT count(*) AS n FROM paper_fills f LEFT JOIN paper_orders o ON o.id = f.order_id "
        "WHERE f.paper_run_id = :r AND o.id IS NULL",
        r=run_id,
    )["n"].iloc[0]
    assert orphan_fills == 0, "every fill has its order"
    run = ledger.get_run(run_id)
    n = ledger.sql("SELECT count(*) AS n FROM paper_fills WHERE paper_run_id = :r", r=run_id)
    assert run["num_fills"] == n["n"].iloc[0]
    assert run["total_pnl"] is not None


def test_sigkill_mid_session_then_recovery(tmp_path):
    url = f"sqlite:///{tmp_path}/crash.db"
    crashed_ids = []
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True
        )
        run_id = proc.stdout.readline().strip()
        assert run_id.startswith("paper-")
        time.sleep(0.4 + 0.3 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        ledger = Ledger(url=url)
        assert ledger.get_run(run_id)["status"] == "running"
        aw.set_ledger(ledger)  # "the next start"
        try:
            run = ledger.get_run(run_id)
            assert run["status"] == "crashed"
            assert run["stop_reason"].startswith("crashed")
            _consistent(ledger, run_id)
            crashed_ids.append(run_id)
        finally:
            aw.set_ledger(None)
            ledger.close()
    assert len(crashed_ids) == 3


def test_live_runs_of_this_process_are_left_alone(tmp_path):
    ledger = aw.set_ledger(f"sqlite:///{tmp_path}/mine.db")
    try:
        bot = aw.Bot(name="mine", strategy="sma_cross", risk={"kill_switch_attached": True})
        aw.backtest(bot)
        s = aw.PaperSession(bot, speed=60, duration_minutes=None, force=True, reason="t").start()
        aw.set_ledger(ledger)
        assert ledger.get_run(s.paper_run_id)["status"] == "running"
        s.stop("done")
    finally:
        aw.set_ledger(None)
        ledger.close()
