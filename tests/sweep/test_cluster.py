"""Sweeps on real Dask clusters: a LocalCluster and a `dask scheduler` + 2 `dask worker` processes.

Same metrics as serial; a worker killed mid-sweep loses no trial; a sweep cancelled
halfway resumes to exactly the grid with no duplicates; progress reaches the count.
Used as a Dask user would: the active Client receives the tasks, an address opens
one Client for all sweeps, the dashboard link is on the result, the data window is
shipped once, batches follow the measured trial time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from alphaswarm.ledger import Ledger
from alphaswarm.sweep import sweep
from alphaswarm.sweep.runner import close_clients
from tests.ports import free_port as _free_port
from tests.sweep.helpers import BARS, GRID, assert_same_metrics, small_bot

distributed = pytest.importorskip("distributed")
from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin  # noqa: E402

pytestmark = [
    # distributed's own shutdown chatter (closing comms while a worker dies / the
    # cluster stops); narrowly scoped to this module.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore:.*Port .* is already in use.*:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:tornado.*"),
    pytest.mark.timeout(240),
]

KILL_GRID = {"fast": [2, 3, 4, 5, 6, 8, 10, 12], "slow": [20, 25, 30, 40, 50]}
KILL_BARS = 2500
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def serial_reference():
    return sweep(small_bot(), GRID, bars=BARS, backend="serial", ledger=False, progress=False)


@pytest.fixture(scope="module")
def kill_reference():
    return sweep(
        small_bot(), KILL_GRID, bars=KILL_BARS, backend="serial", ledger=False, progress=False
    )


@pytest.fixture(scope="module")
def local_client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        yield client


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """`dask scheduler` and `dask worker --nworkers 2` as subprocesses on 127.0.0.1."""
    root = tmp_path_factory.mktemp("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(VENV_BIN / "dask")
    logs = [open(root / "scheduler.log", "w"), open(root / "workers.log", "w")]  # noqa: SIM115
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    workers = subprocess.Popen(
        [
            dask,
            "worker",
            address,
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--memory-limit",
            "1GiB",
            "--no-dashboard",
            "--local-directory",
            str(root),
        ],
        stdout=logs[1],
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                client = Client(address, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        with client:
            client.wait_for_workers(2, timeout=60)
            yield address, client
    finally:
        close_clients()  # the Client sweeps opened for the address, before its scheduler stops
        for proc in (workers, scheduler):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (workers, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()


@pytest.fixture
def led(tmp_path):
    with Ledger(url=f"sqlite:///{tmp_path}/sweeps.db") as ledger:
        yield ledger


def rows_in_ledger(ledger: Ledger, sweep_id: str) -> tuple[int, int]:
    with ledger.engine().connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT trial_key) FROM sweep_trials "
                    "WHERE sweep_id = :s"
                ),
                {"s": sweep_id},
            ).one()
        )


def kill_one_worker_when(client, res, at: int) -> int:
    """Wait until ``at`` trials finished, then SIGKILL one worker process; its pid."""
    deadline = time.monotonic() + 60
    while res.progress.finished < at and not res.done:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not res.done, "the sweep finished before a worker could be killed"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    return victim


# ----------------------------------------------------------------------------- LocalCluster


def test_local_cluster_same_metrics_as_serial(local_client, serial_reference):
    res = sweep(small_bot(), GRID, bars=BARS, client=local_client, ledger=False, progress=False)
    assert res.status == "done"
    assert_same_metrics(res.trials, serial_reference.trials)
    assert res.report["dsr"] == serial_reference.report["dsr"]
    assert res.report["pbo"] == serial_reference.report["pbo"]


def test_local_cluster_scatters_client_only_data(local_client, serial_reference):
    bot = small_bot()
    frame = bot.make_feed().frame(limit=BARS)
    res = sweep(bot, GRID, feed=frame, client=local_client, ledger=False, progress=False)
    assert res.trials["sharpe"].tolist() == serial_reference.trials["sharpe"].tolist()


def test_local_cluster_worker_killed_mid_sweep_loses_no_trial(local_client, kill_reference, led):
    res = sweep(
        small_bot(),
        KILL_GRID,
        bars=KILL_BARS,
        client=local_client,
        ledger=led,
        progress=False,
        wait=False,
        target_seconds=0.2,
    )
    kill_one_worker_when(local_client, res, 8)
    res.wait(120)
    assert res.status == "done", res.error
    assert (res.trials["status"] == "done").all()
    assert len(res.trials) == 40 and rows_in_ledger(led, res.sweep_id) == (40, 40)
    assert_same_metrics_kill(res.trials, kill_reference.trials)
    local_client.wait_for_workers(2, timeout=60)


def assert_same_metrics_kill(a, b):
    cols = ["trial_key", "fast", "slow", "sharpe", "total_return", "num_trades", "sr"]
    key = "trial_key"
    assert a[cols].sort_values(key).values.tolist() == b[cols].sort_values(key).values.tolist()


def test_local_cluster_cancel_halfway_resumes_to_exactly_the_grid(
    local_client, kill_reference, led
):
    bot = small_bot()
    res = sweep(
        bot,
        KILL_GRID,
        bars=KILL_BARS,
        client=local_client,
        ledger=led,
        name="cancel-local",
        progress=False,
        wait=False,
        target_seconds=0.1,
    )
    res.progress.param.watch(lambda e: res.cancel() if e.new >= 20 else None, "done")
    res.wait(120)
    assert res.status == "cancelled"
    kept = rows_in_ledger(led, res.sweep_id)[0]
    assert 20 <= kept < 40
    resumed = sweep(
        bot,
        KILL_GRID,
        bars=KILL_BARS,
        client=local_client,
        ledger=led,
        name="cancel-local",
        progress=False,
    )
    assert resumed.status == "done" and resumed.progress.resumed == kept
    assert resumed.stats.trials == 40 - kept
    assert rows_in_ledger(led, resumed.sweep_id) == (40, 40)
    assert resumed.progress.finished == 40 and resumed.progress.value == 100
    assert_same_metrics_kill(resumed.trials, kill_reference.trials)


def test_default_local_backend(serial_reference):
    from alphaswarm.sweep.runner import close_local_cluster

    try:
        res = sweep(small_bot(), GRID, bars=BARS, n_workers=2, ledger=False, progress=True)
    finally:
        close_local_cluster()
    assert_same_metrics(res.trials, serial_reference.trials)
    assert res.progress.done == 12


class SlowExit(WorkerPlugin):
    """A worker that needs longer than distributed's 4 s to exit (a loaded machine)."""

    def teardown(self, worker: object) -> None:
        time.sleep(5)


def test_close_local_cluster_lets_slow_workers_exit(caplog: pytest.LogCaptureFixture) -> None:
    """No worker process is killed (no "still alive ... killing" on stderr) when it is slow."""
    import logging

    from alphaswarm.sweep import runner

    client = runner.local_client(2)
    client.register_plugin(SlowExit())
    nannies = list(runner._LOCAL["cluster"].workers.values())
    with caplog.at_level(logging.INFO, logger="distributed"):
        runner.close_local_cluster()
    killed = [r.getMessage() for r in caplog.records if "kill" in r.getMessage().lower()]
    assert killed == []
    assert len(nannies) == 2
    processes = [getattr(n.process, "process", None) for n in nannies]
    assert not any(p is not None and p.is_alive() for p in processes)


# ----------------------------------------------------------------------------- dask CLI cluster


def test_cli_cluster_same_metrics_as_serial(cli_cluster, serial_reference):
    address, _ = cli_cluster
    res = sweep(small_bot(), GRID, bars=BARS, client=address, ledger=False, progress=False)
    assert res.status == "done"
    assert_same_metrics(res.trials, serial_reference.trials)


def test_cli_cluster_worker_killed_mid_sweep_loses_no_trial(cli_cluster, kill_reference, led):
    address, client = cli_cluster
    res = sweep(
        small_bot(),
        KILL_GRID,
        bars=KILL_BARS,
        client=client,
        ledger=led,
        progress=False,
        wait=False,
        target_seconds=0.2,
    )
    kill_one_worker_when(client, res, 8)
    res.wait(120)
    assert res.status == "done", res.error
    assert (res.trials["status"] == "done").all()
    assert rows_in_ledger(led, res.sweep_id) == (40, 40)
    assert res.progress.finished == 40
    assert_same_metrics_kill(res.trials, kill_reference.trials)
    client.wait_for_workers(2, timeout=60)


def test_cli_cluster_cancel_halfway_resumes(cli_cluster, kill_reference, led):
    address, _ = cli_cluster
    bot = small_bot()
    res = sweep(
        bot,
        KILL_GRID,
        bars=KILL_BARS,
        client=address,
        ledger=led,
        name="cancel-cli",
        progress=False,
        wait=False,
        target_seconds=0.1,
    )
    res.progress.param.watch(lambda e: res.cancel() if e.new >= 20 else None, "done")
    res.wait(120)
    assert res.status == "cancelled"
    kept = rows_in_ledger(led, res.sweep_id)[0]
    resumed = sweep(
        bot,
        KILL_GRID,
        bars=KILL_BARS,
        client=address,
        ledger=led,
        name="cancel-cli",
        progress=False,
    )
    assert resumed.progress.resumed == kept < 40
    assert rows_in_ledger(led, resumed.sweep_id) == (40, 40)
    assert_same_metrics_kill(resumed.trials, kill_reference.trials)


# ----------------------------------------------------------------------------- as a Dask user


class TrialTaskCounter(SchedulerPlugin):
    """Counts the sweep tasks that finished on this scheduler."""

    name = "alphaswarm-trial-task-counter"

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish == "memory" and str(key).startswith("alphaswarm-trials"):
            self.keys.add(str(key))


def _counted(dask_scheduler) -> int:
    return len(dask_scheduler.plugins[TrialTaskCounter.name].keys)


def test_the_active_client_receives_the_sweeps_tasks(local_client, serial_reference):
    from distributed import Client

    from alphaswarm.sweep import runner

    address = local_client.scheduler.address
    with Client(address) as user_client:  # a notebook's `client = Client(...)`
        user_client.register_plugin(TrialTaskCounter())
        try:
            res = sweep(small_bot(), GRID, bars=BARS, ledger=False, progress=False)
            counted = user_client.run_on_scheduler(_counted)
        finally:
            user_client.unregister_scheduler_plugin(TrialTaskCounter.name)
    assert runner._LOCAL == {}, "the sweep started a cluster of its own"
    assert res.status == "done" and res.stats.tasks > 0
    assert counted == res.stats.tasks
    assert res.where.startswith("the active Client")
    assert_same_metrics(res.trials, serial_reference.trials)


def test_a_client_made_current_receives_the_tasks(local_client):
    from alphaswarm.sweep import runner

    local_client.register_plugin(TrialTaskCounter())
    try:
        with local_client.as_current():
            res = sweep(small_bot(), GRID, bars=BARS, ledger=False, progress=False)
        counted = local_client.run_on_scheduler(_counted)
    finally:
        local_client.unregister_scheduler_plugin(TrialTaskCounter.name)
    assert runner._LOCAL == {}
    assert counted == res.stats.tasks > 0


def test_the_dashboard_link_is_on_the_result_and_the_progress(local_client):
    res = sweep(small_bot(), GRID, bars=BARS, client=local_client, ledger=False, progress=False)
    link = local_client.dashboard_link
    assert link.startswith("http://")
    assert res.dashboard == link and res.progress.dashboard == link
    assert f"dashboard={link}" in repr(res)
    assert f'href="{link}"' in res._repr_html_()
    serial = sweep(small_bot(), GRID, bars=BARS, backend="serial", ledger=False, progress=False)
    assert serial.dashboard is None and "dashboard" not in repr(serial)


def test_the_window_is_shipped_once_not_rebuilt_by_workers(local_client):
    from alphaswarm.sweep.trials import cache_stats

    before = local_client.run(cache_stats)
    res = sweep(small_bot(), GRID, bars=BARS + 7, client=local_client, ledger=False, progress=False)
    after = local_client.run(cache_stats)
    assert res.status == "done" and res.stats.ship_seconds > 0
    assert {w: s["misses"] for w, s in after.items()} == {
        w: s["misses"] for w, s in before.items()
    }, "a worker built the data window itself"


def test_batches_follow_the_measured_trial_time(local_client):
    grid = {"fast": list(range(2, 14)), "slow": [20, 30, 40, 50]}
    # target_seconds far above the work: batch sizes and the note do not depend on timing
    res = sweep(
        small_bot(),
        grid,
        bars=BARS,
        client=local_client,
        ledger=False,
        progress=False,
        target_seconds=1000,
    )
    slots = res.stats.workers
    assert slots == 2 and res.stats.trial_seconds > 0
    # one single-trial task per worker measures a trial; the next batches are sized from it
    assert res.stats.batch_sizes[:slots] == [1] * slots
    assert res.stats.batch_sizes[slots] > 1
    assert sum(res.stats.batch_sizes) == len(res.trials) == 48
    # less work than one task per worker: too small for a cluster, and the result says so
    assert any("too small to benefit" in n for n in res.notes)
    serial = sweep(small_bot(), grid, bars=BARS, backend="serial", ledger=False, progress=False)
    assert serial.notes == []


def test_an_address_opens_one_client_for_every_sweep(cli_cluster):
    address, client = cli_cluster

    def others(dask_scheduler, me=client.id):
        return sorted(c for c in dask_scheduler.clients if c != me and c != "fire-and-forget")

    sweep(small_bot(), GRID, bars=BARS, client=address, ledger=False, progress=False)
    first = client.run_on_scheduler(others)
    sweep(small_bot(), GRID, bars=BARS, client=address, ledger=False, progress=False)
    second = client.run_on_scheduler(others)
    assert len(first) == 1 and first == second


def test_every_worker_killed_mid_sweep_loses_no_trial(local_client, kill_reference):
    """The bars die with the workers that held them: they are shipped again, nothing lost."""
    res = sweep(
        small_bot(),
        KILL_GRID,
        bars=KILL_BARS,
        client=local_client,
        ledger=False,
        progress=False,
        wait=False,
        target_seconds=0.2,
    )
    deadline = time.monotonic() + 60
    while res.progress.finished < 8 and not res.done:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not res.done, "the sweep finished before the workers could be killed"
    for pid in local_client.run(os.getpid).values():
        os.kill(pid, signal.SIGKILL)
    res.wait(180)
    assert res.status == "done", res.error
    assert (res.trials["status"] == "done").all() and len(res.trials) == 40
    assert_same_metrics_kill(res.trials, kill_reference.trials)
    local_client.wait_for_workers(2, timeout=60)
