"""Run trials: in-process (``serial``) or as Dask futures on a local or remote cluster.

The Dask runner keeps a bounded window of tasks in flight (three per worker thread)
and refills it from ``as_completed``. Trials are batched so one task runs about
``target_seconds`` (the batch size adapts to the measured time per trial, and
shrinks at the tail so every worker stays busy). Tasks carry a small
:class:`~alphaswarm.sweep.trials.TrialBase` and a data reference; only a window that
exists solely on the client is scattered, once. A task that fails (a lost worker, an
exception outside a trial) is retried by Dask up to ``retries`` times; a batch that
still fails is split into single trials, and a single trial that still fails is
recorded as failed. Cancelling releases every future in flight.

Which cluster runs a sweep, in the order Dask libraries follow: the ``client``
given; else the active Client (``distributed.default_client()``: the one a notebook
created last, or the one made current with ``client.as_current()``); else one
default ``LocalCluster`` per process (one single-threaded worker process per core),
started on first use and reused by later sweeps. A scheduler address given as a
string opens one Client per address, reused by later sweeps.
:func:`close_clients` closes what the sweeps opened (also done at interpreter exit).

Per-trial cost: the first wave sends one trial per worker thread; the trial time
measured there sizes the later batches (``target_seconds`` of work per task). The
data window is sent to the workers once (scattered to all of them), not rebuilt by
each worker.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import math
import os
import threading
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alphaswarm.sweep.trials import DataRef as DataRefType
from alphaswarm.sweep.trials import run_batch

if TYPE_CHECKING:
    from collections.abc import Callable

    from alphaswarm.sweep.trials import DataRef, TrialBase, WindowData

__all__ = [
    "BACKENDS",
    "Job",
    "RunStats",
    "Runner",
    "active_client",
    "address_client",
    "close_clients",
    "close_local_cluster",
    "dashboard_link",
    "local_client",
]

BACKENDS = ("local", "serial", "dask")

_LOCAL: dict[str, Any] = {}
_LOCAL_LOCK = threading.Lock()
_BY_ADDRESS: dict[str, Any] = {}


def active_client() -> Any:
    """The Client Dask code would use now (``distributed.default_client()``), or None.

    A Client closed since it became the default does not count.
    """
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        client = default_client()
    except ValueError:
        return None
    return client if getattr(client, "status", None) == "running" else None


def address_client(address: str) -> Any:
    """One Client per scheduler address, opened on first use and reused.

    Parameters
    ----------
    address : str
        ``tcp://host:port`` of a scheduler.
    """
    from distributed import Client

    with _LOCAL_LOCK:
        client = _BY_ADDRESS.get(address)
        if client is not None and client.status == "running":
            return client
        client = Client(address, set_as_default=False)
        _BY_ADDRESS[address] = client
        return client


def dashboard_link(client: Any) -> str | None:
    """The dashboard URL of a client's scheduler, or None when it serves none."""
    try:
        return client.dashboard_link
    except (KeyError, AttributeError, TypeError, OSError):
        return None


def local_client(n_workers: int | None = None) -> Any:
    """The process's default ``LocalCluster`` client (started on first use).

    Parameters
    ----------
    n_workers : int, optional
        Worker processes (one thread each); default one per core. A different number
        than the running cluster's restarts it.
    """
    from distributed import Client, LocalCluster

    n = int(n_workers or os.cpu_count() or 1)
    with _LOCAL_LOCK:
        if _LOCAL.get("n") == n and _LOCAL["client"].status == "running":
            return _LOCAL["client"]
        _close_local()
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster, set_as_default=False)
        _LOCAL.update(n=n, cluster=cluster, client=client)
        return client


#: Seconds the workers of the local cluster get to exit by themselves when it closes.
WORKER_EXIT_TIMEOUT = 60.0


def _close_workers(cluster: Any, timeout: float = WORKER_EXIT_TIMEOUT) -> None:
    """Close every worker of a LocalCluster, giving its process ``timeout`` s to exit.

    Closing a LocalCluster directly gives each worker process four seconds before
    it is killed (with a warning on the notebook cell's stderr); a loaded machine
    can need longer. Workers closed here first leave the cluster nothing to kill.
    """
    nannies = list(getattr(cluster, "workers", {}).values())
    if not nannies:
        return

    async def close_all() -> None:
        await asyncio.gather(
            *(nanny.close(timeout=timeout) for nanny in nannies), return_exceptions=True
        )

    try:
        cluster.sync(close_all)
    except Exception:  # noqa: BLE001 - the cluster's own close follows
        return


def _close_local() -> None:
    client, cluster = _LOCAL.pop("client", None), _LOCAL.pop("cluster", None)
    _LOCAL.pop("n", None)
    if cluster is not None:
        _close_workers(cluster)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def close_local_cluster() -> None:
    """Stop the default local cluster, if one was started."""
    with _LOCAL_LOCK:
        _close_local()


def close_clients() -> None:
    """Stop the default local cluster and close the Clients opened for addresses."""
    with _LOCAL_LOCK:
        _close_local()
        clients = list(_BY_ADDRESS.values())
        _BY_ADDRESS.clear()
    for client in clients:
        client.close()


atexit.register(close_clients)


@dataclass(frozen=True)
class Job:
    """One trial to run: its key, parameters, bar slice and warm-up."""

    key: str
    params: dict[str, Any]
    lo: int
    hi: int
    warmup: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        """The form :func:`~alphaswarm.sweep.trials.run_batch` takes."""
        return (self.key, self.params, self.lo, self.hi, self.warmup)


@dataclass
class RunStats:
    """What a run measured: tasks, trial compute seconds, wall seconds, workers."""

    tasks: int = 0
    trials: int = 0
    compute: float = 0.0
    wall: float = 0.0
    workers: int = 1
    retried_batches: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    #: Seconds spent sending the data window to the workers (scatter).
    ship_seconds: float = 0.0
    #: Mean seconds of one trial, measured on the first wave (0 until measured).
    trial_seconds: float = 0.0

    @property
    def overhead_per_task(self) -> float:
        """Seconds per task not spent in trials: ``(wall x workers - compute) / tasks``."""
        if not self.tasks:
            return 0.0
        return max(self.wall * self.workers - self.compute, 0.0) / self.tasks

    @property
    def overhead_per_trial(self) -> float:
        """Seconds per trial not spent in trials: ``(wall x workers - compute) / trials``."""
        if not self.trials:
            return 0.0
        return max(self.wall * self.workers - self.compute, 0.0) / self.trials


class Runner:
    """Runs jobs on a backend and reports finished rows.

    Parameters
    ----------
    backend : str
        ``"local"`` (the active Client, else the default LocalCluster), ``"serial"``
        (in this process) or ``"dask"`` (the given ``client``).
    client : distributed.Client or str, optional
        A client, or a scheduler address ``tcp://host:port`` (implies Dask).
    n_workers : int, optional
        Workers of the default local cluster (default one per core).
    retries : int
        Dask retries of a failed task before it is split and recorded.
    target_seconds : float
        Aimed duration of one task.
    window_per_slot : int
        Tasks in flight per worker thread.
    """

    def __init__(
        self,
        backend: str = "local",
        client: Any = None,
        n_workers: int | None = None,
        retries: int = 2,
        target_seconds: float = 1.0,
        window_per_slot: int = 3,
    ) -> None:
        if client is not None and backend == "local":
            backend = "dask"
        if backend not in BACKENDS:
            raise ValueError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        if backend == "dask" and client is None:
            raise ValueError("backend 'dask' needs client= (a Client or 'tcp://host:port')")
        self.backend = backend
        self.client = client
        self.n_workers = n_workers
        self.retries = retries
        self.target_seconds = target_seconds
        self.window_per_slot = window_per_slot
        self.stats = RunStats()
        self._trial_seconds: float | None = None
        self._client: Any = None
        #: Where the trials run, in words (set by :meth:`connect`).
        self.where = "this process" if backend == "serial" else ""
        #: The scheduler's dashboard URL (None for serial runs or without a dashboard).
        self.dashboard: str | None = None

    # -- cluster -------------------------------------------------------------------------
    def connect(self) -> Any:
        """Find or start the cluster (idempotent); the Client, or None for serial runs.

        Sets :attr:`where` and :attr:`dashboard`.
        """
        if self.backend == "serial":
            return None
        if self._client is not None:
            return self._client
        if isinstance(self.client, str):
            client = address_client(self.client)
            where = f"scheduler {self.client}"
        elif self.client is not None:
            client, where = self.client, "the given Client"
        else:
            client = active_client()
            where = "the active Client"
            if client is None:
                client, where = local_client(self.n_workers), "a local cluster"
        self._client = client
        self.dashboard = dashboard_link(client)
        try:
            n = len(client.scheduler_info().get("workers", {}))
        except (OSError, AttributeError):
            n = 0
        self.where = f"{where} ({n} worker{'s' * (n != 1)})" if n else where
        return client

    # -- batching ------------------------------------------------------------------------
    def _observe(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            t = row.get("elapsed", 0.0)
            self.stats.compute += t
            self.stats.trials += 1
            prev = self._trial_seconds
            self._trial_seconds = t if prev is None else 0.8 * prev + 0.2 * t
        if self.stats.trials:
            self.stats.trial_seconds = self.stats.compute / self.stats.trials

    def _batch_size(self, pending: int, slots: int) -> int:
        """Trials in the next task: ``target_seconds`` of measured work, a fair share at most."""
        if self._trial_seconds is None:
            return 1
        size = max(1, int(self.target_seconds / max(self._trial_seconds, 1e-6)))
        fair = max(1, math.ceil(pending / (2 * slots)))  # leave work for every worker
        return max(1, min(size, fair, 1000))

    def small_grid_note(self) -> str | None:
        """A sentence when the measured work was too small for a cluster to pay off."""
        if self.backend == "serial" or not self.stats.trials:
            return None
        slots = max(self.stats.workers, 1)
        work = self.stats.compute
        if slots > 1 and work >= slots * self.target_seconds:
            return None
        return (
            f"grid too small to benefit from {slots} worker{'s' * (slots != 1)}: "
            f"{self.stats.trials} trials x {1000 * self.stats.trial_seconds:.1f} ms = "
            f"{work:.2f} CPU-s of work, less than {self.target_seconds:g} s per worker; "
            "backend='serial' runs it without the cluster's start and per-task costs"
        )

    # -- entry point ---------------------------------------------------------------------
    def run(
        self,
        base: TrialBase,
        data: DataRef | None,
        window: WindowData,
        jobs: list[Job],
        on_rows: Callable[[list[dict[str, Any]]], None],
        cancel: threading.Event,
    ) -> str:
        """Run ``jobs``; call ``on_rows`` with each batch of finished rows.

        Parameters
        ----------
        base : TrialBase
            Shared trial settings.
        data : DataRef or None
            The window by reference; ``None`` when it exists only on the client. Dask
            runs scatter the window itself to every worker either way (see
            ``ship``), so it is built once, here.
        window : WindowData
            The window in memory on the client.
        jobs : list of Job
            Trials to run.
        on_rows : callable
            Receives lists of row dicts (see :func:`~alphaswarm.sweep.trials.run_batch`).
        cancel : threading.Event
            Set to stop: futures are cancelled and ``"cancelled"`` returned.

        Returns
        -------
        str
            ``"done"`` or ``"cancelled"``.
        """
        t0 = time.perf_counter()
        try:
            if self.backend == "serial":
                return self._run_serial(base, window, jobs, on_rows, cancel)
            return self._run_dask(base, data, window, jobs, on_rows, cancel)
        finally:
            self.stats.wall = time.perf_counter() - t0

    def _run_serial(
        self,
        base: TrialBase,
        window: WindowData,
        jobs: list[Job],
        on_rows: Callable[[list[dict[str, Any]]], None],
        cancel: threading.Event,
    ) -> str:
        self.stats.workers = 1
        for job in jobs:
            if cancel.is_set():
                return "cancelled"
            rows = run_batch(base, window, [job.as_tuple()])
            self.stats.tasks += 1
            self._observe(rows)
            on_rows(rows)
        return "done"

    def _ship(self, client: Any, data: DataRef | None, window: WindowData) -> Any:
        """The data argument of the tasks: the window scattered to every worker once.

        A reference (``data``) is kept when the window is too large to hold in one
        worker's memory twice over; workers then build and cache it themselves.
        """
        if data is not None and _window_bytes(window) > SCATTER_LIMIT:
            return data
        t0 = time.perf_counter()
        shipped = client.scatter(window, broadcast=True, hash=False)
        self.stats.ship_seconds = time.perf_counter() - t0
        return shipped

    def _run_dask(
        self,
        base: TrialBase,
        data: DataRef | None,
        window: WindowData,
        jobs: list[Job],
        on_rows: Callable[[list[dict[str, Any]]], None],
        cancel: threading.Event,
    ) -> str:
        from distributed import as_completed

        client = self.connect()
        if not client.scheduler_info().get("workers"):
            client.wait_for_workers(1, timeout=60)
        slots = max(sum(client.nthreads().values()), 1)
        self.stats.workers = slots
        if not jobs:
            return "done"
        shipped = {"arg": self._ship(client, data, window)}
        pending = list(reversed(jobs))  # pop() from the end keeps the given order
        inflight: dict[Any, tuple[list[Job], int]] = {}
        ac = as_completed(loop=client.loop)
        tag = uuid.uuid4().hex[:8]

        def submit(batch: list[Job], attempt: int) -> None:
            digest = hashlib.sha1("".join(j.key for j in batch).encode()).hexdigest()[:12]
            fut = client.submit(
                run_batch,
                base,
                shipped["arg"],
                [j.as_tuple() for j in batch],
                key=f"alphaswarm-trials-{tag}-{digest}-{attempt}",
                retries=self.retries,
                pure=False,
            )
            inflight[fut] = (batch, attempt)
            ac.add(fut)
            self.stats.tasks += 1
            self.stats.batch_sizes.append(len(batch))

        window_size = self.window_per_slot * slots
        try:
            while pending or inflight:
                if cancel.is_set():
                    client.cancel(list(inflight))
                    inflight.clear()
                    return "cancelled"
                # until a trial was measured, one single-trial task per worker thread
                limit = window_size if self._trial_seconds is not None else slots
                while pending and len(inflight) < limit:
                    size = self._batch_size(len(pending), slots)
                    submit([pending.pop() for _ in range(min(size, len(pending)))], 0)
                ready = ac.next_batch(block=False) if ac.has_ready() else []
                if not ready:
                    time.sleep(0.02)  # the window keeps the workers busy meanwhile
                    continue
                for fut in ready:
                    entry = inflight.pop(fut, None)
                    if entry is None:
                        continue
                    batch, attempt = entry
                    rows = _result(fut) if fut.status == "finished" else None
                    if rows is not None:
                        self._observe(rows)
                        on_rows(rows)
                    elif fut.status == "error":
                        self._failed(fut, batch, attempt, submit, on_rows)
                    else:  # cancelled or lost: e.g. every worker holding the bars died
                        self._lost(client, shipped, data, window, batch, attempt, submit, on_rows)
                    fut.release()
            return "done"
        finally:
            if not isinstance(shipped["arg"], DataRefType):
                shipped["arg"].release()

    def _lost(
        self,
        client: Any,
        shipped: dict[str, Any],
        data: DataRef | None,
        window: WindowData,
        batch: list[Job],
        attempt: int,
        submit: Callable[[list[Job], int], None],
        on_rows: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        """A task that ended without a result: ship the bars again if they are gone, resubmit."""
        arg = shipped["arg"]
        if not isinstance(arg, DataRefType) and arg.status != "finished":
            arg.release()
            shipped["arg"] = self._ship(client, data, window)
        if attempt < self.retries + 1:
            self.stats.retried_batches += 1
            submit(batch, attempt + 1)
            return
        error = f"task lost {attempt + 1} times (workers died)"
        on_rows(
            [
                {"key": j.key, "status": "failed", "error": error, "metrics": None, "elapsed": 0.0}
                for j in batch
            ]
        )

    def _failed(
        self,
        fut: Any,
        batch: list[Job],
        attempt: int,
        submit: Callable[[list[Job], int], None],
        on_rows: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.stats.retried_batches += 1
        if len(batch) > 1:
            for job in batch:  # isolate the trial that breaks the task
                submit([job], attempt + 1)
            return
        try:
            exc = fut.exception()
        except CancelledError as lost:  # gone with its worker since it erred
            exc = lost
        error = f"{type(exc).__name__}: {exc} (task failed after {self.retries} retries)"
        on_rows(
            [
                {
                    "key": batch[0].key,
                    "status": "failed",
                    "error": error,
                    "metrics": None,
                    "elapsed": 0.0,
                }
            ]
        )


def _result(fut: Any) -> list[dict[str, Any]] | None:
    """A finished task's rows, or None when they were lost before they came back."""
    from distributed.client import FutureCancelledError

    try:
        return fut.result()
    except (FutureCancelledError, CancelledError):  # the worker holding them died
        return None


#: Windows larger than this (bytes of bar arrays) go by reference instead of scatter.
SCATTER_LIMIT = 1 << 30


def _window_bytes(window: WindowData) -> int:
    cols = ("ts", "symbol", "open", "high", "low", "close", "volume")
    return sum(int(getattr(window.block, c).nbytes) for c in cols)
