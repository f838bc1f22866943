"""Shared helpers of the server benchmarks: a real ``alphaswarm serve`` subprocess and a client.

The server runs in its own process so the benchmark's client does not share its
GIL. Imported as ``_server`` by the scripts in this folder (like ``_common``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import REPO_ROOT, free_port

from alphaswarm.bots import DEMO_SPEC

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: A bot that honestly passes the paper gate once backtested (the demo bot's spec).
BENCH_SPEC: dict[str, Any] = {**DEMO_SPEC, "name": "bench-server"}


def server_env(home: Path) -> dict[str, str]:
    """The environment of a benchmark server: no token, no default ledger, HOME in tmp."""
    env = dict(os.environ)
    env.pop("ALPHASWARM_TOKEN", None)
    env.pop("ALPHASWARM_DB_URL", None)
    env["HOME"] = str(home)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def alphaswarm_cmd() -> list[str]:
    """``alphaswarm`` of this interpreter (the console script when present)."""
    script = Path(sys.executable).parent / "alphaswarm"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "alphaswarm.cli"]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Wait for ``GET /health`` = 200 (raise if the process exits or time runs out)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} was not healthy within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """SIGINT (the server writes every session's final row), then kill if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


#: How often a server that lost its port to another socket is started again.
PORT_ATTEMPTS = 4
#: What a server prints when its port was taken between the probe and its bind.
PORT_TAKEN = "Address already in use"


class PortTakenError(RuntimeError):
    """The server could not bind its port: another socket took it first."""


def start_server(cmd: list[str], home: Path, port: int, capture: bool = False) -> subprocess.Popen:
    """Start ``cmd`` (a server on ``port``) and wait until it is healthy.

    Its output goes to ``home/server.log``; with ``capture`` its stdout is a pipe
    instead (a line protocol with the benchmark), its stderr still the log.
    Raises :class:`PortTakenError` when the port was taken first.
    """
    log_path = home / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=server_env(home),
            stdout=subprocess.PIPE if capture else log,
            stderr=log if capture else subprocess.STDOUT,
            stdin=subprocess.PIPE,
            text=True,
        )
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc)
        except (RuntimeError, TimeoutError) as exc:
            stop_process(proc)
            log.flush()
            text = log_path.read_text()
            error = PortTakenError if PORT_TAKEN in text else RuntimeError
            raise error(f"{exc}\n{text[-3000:]}") from None
    return proc


@contextlib.contextmanager
def serve_subprocess(
    build_cmd: Callable[[int], list[str]], home: Path, capture: bool = False
) -> Iterator[tuple[int, subprocess.Popen]]:
    """Run the server ``build_cmd(port)`` on a free port until the block ends.

    Yields (port, process). A server that loses its port to another socket before
    binding it is started again on a new port (up to ``PORT_ATTEMPTS`` times).
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        try:
            proc = start_server(build_cmd(port), home, port, capture)
        except PortTakenError:
            if attempt == PORT_ATTEMPTS:
                raise
            continue
        break
    try:
        yield port, proc
    finally:
        stop_process(proc)


@contextlib.contextmanager
def alphaswarm_serve(
    db: Path, home: Path, *, tune_interpreter: bool = False
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``alphaswarm serve --port N --db sqlite:///db`` on a free port; yields (url, process).

    ``tune_interpreter`` adds ``--tune-interpreter`` (the server's opt-in tuning).
    """

    def build(port: int) -> list[str]:
        cmd = [*alphaswarm_cmd(), "serve", "--port", str(port), "--db", f"sqlite:///{db}"]
        return [*cmd, "--tune-interpreter"] if tune_interpreter else cmd

    with serve_subprocess(build, home) as (port, proc):
        yield f"http://127.0.0.1:{port}", proc


class Api:
    """A small JSON client bound to one server (one keep-alive connection)."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self.ws_url = url.replace("http://", "ws://")
        self.http = requests.Session()

    def get(self, path: str) -> Any:
        r = self.http.get(self.url + path, timeout=60)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        data = json.dumps(body) if body is not None else None
        r = self.http.post(self.url + path, data=data, timeout=120)
        if r.status_code not in expect:
            raise RuntimeError(f"POST {path} -> {r.status_code}: {r.text[:2000]}")
        return r.json()

    def close(self) -> None:
        self.http.close()


def bench_bot(api: Api, spec: dict[str, Any] | None = None, bars: int = 7800) -> str:
    """Create the benchmark bot and backtest it over HTTP (so the gate passes); its id."""
    bot_id = api.post("/bots", spec or BENCH_SPEC)["bot_id"]
    api.post(f"/bots/{bot_id}/backtest", {"bars": bars})
    return bot_id
