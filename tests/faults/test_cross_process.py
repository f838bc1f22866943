"""The kill switch across processes on one SQLite ledger, from plain Python.

A fresh process answers from the persisted row (no ``set_ledger`` needed: the
default ledger is read on first use), and an engagement made by another process
stops this process's sessions through the ``data_version`` watcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import alphaswarm as aw
from alphaswarm.paper.killswitch import kill_switch
from tests.reliability.checks import ledger_problems

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, db_path: Path, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter whose default ledger is ``db_path``; its JSON."""
    env = dict(os.environ)
    env["ALPHASWARM_DB_URL"] = f"sqlite:///{db_path}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


STATE = "import json, alphaswarm as aw; print(json.dumps(aw.kill_switch().state()['engaged']))"


def test_a_fresh_process_answers_from_the_persisted_state(ledger, db_path):
    kill_switch().engage("engaged here", actor="test")
    assert _python(STATE, db_path) is True
    released = _python(
        "import json, alphaswarm as aw; print(json.dumps(aw.kill_switch().reset()['engaged']))",
        db_path,
    )
    assert released is False
    assert ledger.kill_switch_state()["engaged"] is False  # the reset was written
    assert kill_switch().state()["engaged"] is False  # and this process re-reads it
    kill_switch().check_start()  # a start is allowed again here


def test_another_process_engages_and_this_session_is_killed(ledger, bot, db_path):
    session = aw.PaperSession(bot, speed=60, duration_minutes=None, max_bars=100_000).start()
    deadline = time.monotonic() + 60
    while session.bars_seen < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session.status == "running"
    out = _python(
        "import json, time, alphaswarm as aw\n"
        "ks = aw.kill_switch()\n"
        "t = time.time()\n"
        "r = ks.engage('from another process')\n"
        "print(json.dumps({'at': t, 'persisted': r['persisted'], 'engaged': r['engaged']}))",
        db_path,
    )
    assert out["persisted"] and out["engaged"]
    assert session.wait(60), "the session was not killed by the other process's engagement"
    latency_ms = (session.ended_at.timestamp() - out["at"]) * 1e3
    print(f"cross-process kill (SQLite, data_version watcher): {latency_ms:.0f} ms")
    assert session.status == "killed" and session.stop_reason == "from another process"
    assert ledger_problems(ledger) == []
