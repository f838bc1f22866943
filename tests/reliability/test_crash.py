"""SIGKILL a real server process at 20 seeded moments during paper sessions.

One SQLite ledger lives through all 20 crashes. Each round starts a fresh
``serve()`` process (forked from a warm parent, see ``servers.py``), checks the
ledger the previous process left behind, starts three sessions at speed 600
over HTTP and kills the process in one of four phases:

* ``boot``: while it starts (imports, schema, orphan recovery, binding),
* ``after_start``: right after the sessions were started,
* ``fill_burst``: once fills are flowing,
* ``during_stop``: a few milliseconds after ``POST /paper/stop-all`` was sent.

After every restart the ledger must satisfy ``checks.ledger_problems``: every fill
has its order, ``num_fills`` matches the fills, no equity point or frame without
its run, no run left ``running`` (the restart marks it ``crashed`` with a total_pnl),
bars written whole (bars_seen = equity points = bar frames) and frame seq 1..N.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

from alphaswarm.ledger import Ledger
from tests.ports import free_port

from .checks import ledger_problems
from .conftest import FAST_BOT
from .servers import wait_healthy

SEED = 20260808
KILLS = 20
PHASES = ("boot", "after_start", "fill_burst", "during_stop")
SESSIONS = 3
SPEED = 600


def _start_sessions(url: str, first: bool) -> list[str]:
    r = requests.post(url + "/bots", json=FAST_BOT, timeout=30)
    assert r.status_code in (200, 201), r.text
    bot_id = r.json()["bot_id"]
    if first:
        r = requests.post(url + f"/bots/{bot_id}/backtest", json={"bars": 2000}, timeout=60)
        assert r.status_code == 201, r.text
    ids = []
    for _ in range(SESSIONS):
        body = {"starting_cash": 100000, "speed": SPEED, "duration_minutes": None,
                "force": True, "reason": "crash test"}  # fmt: skip
        r = requests.post(url + f"/bots/{bot_id}/paper", json=body, timeout=30)
        assert r.status_code == 201, r.text
        ids.append(r.json()["paper_run_id"])
    return ids


def _stop_all(url: str) -> None:
    try:
        requests.post(url + "/paper/stop-all", json={}, timeout=30)
    except requests.ConnectionError:
        pass  # killed while answering: that is the point


def _fills(url: str) -> int:
    runs = requests.get(url + "/paper?status=running", timeout=10).json()["runs"]
    return sum((run.get("live") or {}).get("num_fills", 0) for run in runs)


@pytest.mark.slow
def test_sigkill_at_20_moments_keeps_the_ledger_consistent(forker, tmp_path):
    rng = random.Random(SEED)
    phases = [PHASES[i % len(PHASES)] for i in range(KILLS)]
    rng.shuffle(phases)
    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    log = tmp_path / "server.log"
    ledger: Ledger | None = None
    failures: dict[int, list[str]] = {}
    killed_running: list[str] = []  # runs a killed process left running, to be crashed
    survived = 0
    unchecked = 0  # kills since the last check
    t0 = time.monotonic()
    try:
        for i in range(KILLS + 1):  # the last start only checks what the 20th kill left
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            pid = forker.start(port, db_url, log)
            phase = phases[i] if i < KILLS else "check"
            if phase == "boot" and i > 0:
                time.sleep(rng.uniform(0.0, 0.8))
                forker.kill(pid)
                unchecked += 1
                continue  # the next start checks (and recovers) for both rounds
            wait_healthy(url, pid)
            if ledger is None:
                ledger = Ledger(url=db_url)
            problems = ledger_problems(ledger)
            runs = requests.get(url + "/paper", timeout=10).json()["runs"]
            statuses = {r["id"]: r["status"] for r in runs}
            for run_id in killed_running:
                if statuses.get(run_id) not in ("crashed", "stopped"):
                    problems.append(f"{run_id}: {statuses.get(run_id)} after the restart")
            if unchecked:
                if problems:
                    failures[i - 1] = problems
                else:
                    survived += unchecked
                unchecked = 0
            if phase == "check":
                forker.kill(pid)
                break
            ids = _start_sessions(url, first=i == 0)
            if phase in ("boot", "after_start"):
                time.sleep(rng.uniform(0.0, 0.3))
            elif phase == "fill_burst":
                deadline = time.monotonic() + 20
                while _fills(url) == 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.5))
            else:  # during_stop
                time.sleep(rng.uniform(0.3, 1.0))
                stopper = threading.Thread(target=_stop_all, args=(url,), daemon=True)
                stopper.start()
                time.sleep(rng.uniform(0.0, 0.06))
            forker.kill(pid)
            unchecked += 1
            killed_running = ids
            if phase == "during_stop":
                stopper.join(30)
        assert ledger is not None
        tally = ledger.sql(
            "SELECT status, count(*) AS n, sum(num_fills) AS fills FROM paper_trading_runs "
            "GROUP BY status"
        ).to_dict("records")
    finally:
        if ledger is not None:
            ledger.close()
    elapsed = time.monotonic() - t0
    crashed = log.read_text(errors="replace").count("marked crashed")
    print(  # noqa: T201 - the figure the lead pastes
        f"\ncrashes survived / tried: {survived} / {KILLS} "
        f"(phases {dict((p, phases.count(p)) for p in PHASES)}, {crashed} runs reported "
        f"crashed in the server log, {elapsed:.0f} s; runs by status: {tally})"
    )
    assert not failures, failures
    assert survived == KILLS
    assert crashed > 0, "the restarts say in their log which runs they marked crashed"
    assert sum(t["fills"] or 0 for t in tally) > 0, "the sessions traded before they were killed"
