"""Three real server processes on one PostgreSQL ledger share one kill switch.

Engaging on any process stops every running paper session of all of them with final
rows written; starts are refused everywhere afterwards (also by a process started
after the engagement); a process whose listener connection was cut still stops
within its re-read interval; the process that starts a run owns it, any process
streams it, and a survivor marks a dead owner's runs crashed. A per-bot halt, its
release and a change of mode reach every process too.
"""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets.sync.client as ws_client

from tests.pg import fresh_database

from .helpers import (
    BOT_SPEC,
    create_bot,
    listeners,
    sql,
    start_servers,
    start_session,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

SESSIONS_PER_PROCESS = 3
#: The listener re-reads the row every second; generous slack for a loaded CI box.
REREAD_BUDGET_SECONDS = 1.0 + 2.0


@pytest.fixture
def db_url(postgres_url):
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture
def cluster(db_url, tmp_path):
    servers = start_servers(db_url, tmp_path, 3)
    yield servers
    for s in servers:
        s.stop()


def runs(db_url: str) -> dict[str, dict]:
    rows = sql(
        db_url,
        "SELECT id, status, owner, ended_at, total_pnl, stop_reason FROM paper_trading_runs",
    )
    keys = ("id", "status", "owner", "ended_at", "total_pnl", "stop_reason")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def test_kill_switch_across_three_processes(cluster, db_url, tmp_path):
    with contextlib.ExitStack() as stack:
        _kill_switch_across_three_processes(stack, cluster, db_url, tmp_path)


def _kill_switch_across_three_processes(stack, cluster, db_url, tmp_path):
    a, b, c = cluster
    bot_id = create_bot(a)
    with ThreadPoolExecutor(9) as pool:
        responses = list(
            pool.map(
                lambda s: start_session(s, bot_id),
                [s for s in cluster for _ in range(SESSIONS_PER_PROCESS)],
            )
        )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    started = {r.json()["paper_run_id"] for r in responses}
    before = runs(db_url)
    assert {before[i]["status"] for i in started} == {"running"}
    # the process that started a run owns it
    owners = {s.owner: 0 for s in cluster}
    for run_id in started:
        owners[before[run_id]["owner"]] += 1
    assert owners == {s.owner: SESSIONS_PER_PROCESS for s in cluster}

    # any process answers reads, and streams a run that runs elsewhere from the ledger
    a_run = next(i for i in started if before[i]["owner"] == a.owner)
    assert b.get(f"/paper/{a_run}").json()["status"] == "running"
    ws = stack.enter_context(ws_client.connect(f"ws://127.0.0.1:{b.port}/ws/paper/{a_run}?since=0"))
    first = json.loads(ws.recv(timeout=10))
    assert first["task_id"] == a_run

    # cut c's listener connection, then engage on a at once: c misses the NOTIFY
    c_listener = listeners(db_url)[c.owner]
    sql(db_url, "SELECT pg_terminate_backend(:pid)", pid=c_listener)
    t0 = time.monotonic()
    r = a.post("/kill-switch", {"reason": "cluster drill"})
    assert r.status_code == 200, r.text
    body = r.json()
    cluster_report = body["cluster"]
    acked = {p["process"]: p for p in cluster_report["processes"]}
    # the engager reports the acks that came within 250 ms (b's, woken by the NOTIFY,
    # on an idle machine) and names the listening processes it did not hear from
    assert a.owner in acked
    assert {p["sessions"] for p in acked.values()} == {SESSIONS_PER_PROCESS}
    assert set(acked) | set(cluster_report["missing"]) >= {a.owner, b.owner}
    assert all(p["elapsed_ms"] >= 0 and p["after_engage_ms"] >= 0 for p in acked.values())

    def all_killed() -> bool:
        now = runs(db_url)
        return all(now[i]["status"] == "killed" for i in started)

    wait_until(all_killed, REREAD_BUDGET_SECONDS, 0.02)
    assert time.monotonic() - t0 < REREAD_BUDGET_SECONDS + 1.0
    final = runs(db_url)
    for run_id in started:
        assert final[run_id]["ended_at"] is not None and final[run_id]["total_pnl"] is not None
        assert final[run_id]["stop_reason"] == "cluster drill"
    # every process acknowledged the epoch, c through its re-read (its ack row is written
    # after its sessions' rows: on a loaded machine it may come a little later)
    expected = {s.owner: SESSIONS_PER_PROCESS for s in cluster}

    def acks() -> dict:
        return dict(sql(db_url, "SELECT process, sessions FROM kill_switch_acks WHERE epoch = 1"))

    wait_until(lambda: acks() == expected, 60)
    assert acks() == expected
    # c's listener came back
    wait_until(lambda: listeners(db_url).get(c.owner) not in (None, c_listener), 5)

    # the WebSocket on b follows a's run to its end
    stages = []
    while "done" not in stages:
        stages.append(json.loads(ws.recv(timeout=10))["stage"])
    assert "session.stopped" in stages

    # starts are refused everywhere, also by a process started after the engagement
    for s in cluster:
        r = start_session(s, bot_id)
        assert r.status_code == 409 and r.json()["error"] == "kill_switch_engaged", r.text
        assert s.get("/kill-switch").json()["engaged"] is True
    (late,) = start_servers(db_url, tmp_path, 1)
    try:
        r = start_session(late, bot_id)
        assert r.status_code == 409, r.text
        assert late.get("/kill-switch").json()["reason"] == "cluster drill"

        # a reset on one process releases every process (NOTIFY reset)
        assert b.post("/kill-switch/reset").json()["engaged"] is False
        for s in (*cluster, late):
            wait_until(lambda s=s: s.get("/kill-switch").json()["engaged"] is False, 3)
        r = start_session(late, bot_id)
        assert r.status_code == 201, r.text
        late_run = r.json()["paper_run_id"]
    finally:
        late.kill()  # a crash: no final row

    # a survivor marks the dead owner's run crashed (its advisory lock is free)
    wait_until(lambda: runs(db_url)[late_run]["status"] == "crashed", 20, 0.2)
    assert runs(db_url)[late_run]["stop_reason"] == "crashed: process gone"


def test_start_racing_an_engagement_is_refused_or_killed(cluster, db_url):
    """Row-lock ordering: a start either precedes the engagement (then it is killed)
    or follows it (then it is refused); no session survives an engagement."""
    a, b, c = cluster
    bot_id = create_bot(a)
    with ThreadPoolExecutor(16) as pool:
        starts = [pool.submit(start_session, s, bot_id) for _ in range(4) for s in (b, c)]
        time.sleep(0.05)
        engage = pool.submit(a.post, "/kill-switch", {"reason": "race"})
        results = [f.result() for f in starts]
        assert engage.result().status_code == 200
    assert {r.status_code for r in results} <= {201, 409}
    created = [r.json()["paper_run_id"] for r in results if r.status_code == 201]

    def settled() -> bool:
        now = runs(db_url)
        return all(now[i]["status"] == "killed" for i in created)

    wait_until(settled, REREAD_BUDGET_SECONDS, 0.02)
    assert all(v["status"] != "running" for v in runs(db_url).values())


def test_bot_halts_releases_and_mode_changes_reach_every_process(cluster, db_url):
    a, b, c = cluster
    halted_bot = create_bot(a)
    other_bot = create_bot(a, {**BOT_SPEC, "name": "cluster-sma-other"})
    runs_of: dict[str, set[str]] = {halted_bot: set(), other_bot: set()}
    for s in cluster:
        for bot_id in runs_of:
            r = start_session(s, bot_id)
            assert r.status_code == 201, r.text
            runs_of[bot_id].add(r.json()["paper_run_id"])

    def statuses(bot_id: str) -> set[str]:
        now = runs(db_url)
        return {now[i]["status"] for i in runs_of[bot_id]}

    # a per-bot halt on a stops that bot's sessions in all three processes, only those
    r = a.post(f"/bots/{halted_bot}/halt", {"reason": "bot drill"})
    assert r.status_code == 200, r.text
    wait_until(lambda: statuses(halted_bot) == {"stopped"}, REREAD_BUDGET_SECONDS, 0.02)
    assert {runs(db_url)[i]["stop_reason"] for i in runs_of[halted_bot]} == {"bot drill"}
    assert statuses(other_bot) == {"running"}
    for s in cluster:
        assert s.get("/kill-switch").json()["halted_bots"] == [halted_bot]
        r = start_session(s, halted_bot)
        assert r.status_code == 409 and r.json()["error"] == "kill_switch_engaged", r.text

    # its release on b releases it everywhere
    assert b.post("/kill-switch/reset", {"bot": halted_bot}).status_code == 200
    for s in cluster:
        wait_until(lambda s=s: s.get("/kill-switch").json()["halted_bots"] == [], 3)
    r = start_session(c, halted_bot)
    assert r.status_code == 201, r.text
    runs_of[other_bot].add(r.json()["paper_run_id"])  # stopped below with the others

    # reduce_only on a: every process restricts, nothing stops ...
    r = a.post("/kill-switch", {"reason": "slow down", "mode": "reduce_only"})
    assert r.status_code == 200, r.text
    for s in cluster:
        wait_until(lambda s=s: s.get("/kill-switch").json()["mode"] == "reduce_only", 3)
    assert statuses(other_bot) == {"running"}
    # ... then the same engagement in cancel mode on c stops every session everywhere
    r = c.post("/kill-switch", {"reason": "stop now", "mode": "cancel"})
    assert r.status_code == 200, r.text
    wait_until(lambda: statuses(other_bot) == {"killed"}, REREAD_BUDGET_SECONDS, 0.02)
    for s in cluster:
        state = s.get("/kill-switch").json()
        assert state["engaged"] and state["mode"] == "cancel", state
