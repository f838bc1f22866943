"""Real ``alphaswarm`` server processes, forked from a warm parent so a restart is cheap.

Importing Panel and Bokeh takes seconds on a busy machine; the crash test restarts
the server twenty times. ``ServerForker`` starts one helper process that imports
``alphaswarm.server.app`` once and then forks a fresh server process per request:
each child is a real, separate process (its own pid, its own ledger connection,
its own engine loop) running :func:`alphaswarm.server.app.serve`, exactly what
``alphaswarm serve`` runs. The test kills a child with SIGKILL and asks the helper
to reap it, so its pid is really gone before the next start looks for orphans.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from pathlib import Path

FORKER = r"""
import json, os, sys
import alphaswarm.server.app  # noqa: F401 - the expensive imports, done once
out = sys.stdout
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "start":
        pid = os.fork()
        if pid == 0:
            os.setsid()
            fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            code = 0
            try:
                from alphaswarm.server.app import serve
                serve(port=cmd["port"], db_url=cmd["db"], dashboard=cmd.get("dashboard", False),
                      token=cmd.get("token"))
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        out.write(json.dumps({"pid": pid}) + "\n")
    elif cmd["op"] == "reap":
        _, status = os.waitpid(cmd["pid"], 0)
        out.write(json.dumps({"status": status}) + "\n")
    out.flush()
"""


def healthy(url: str) -> bool:
    """True once ``GET /health`` answers 200."""
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class ServerForker:
    """One warm helper process that forks ``serve()`` children on request."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def _ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server forker exited ({self.proc.poll()})")
        return json.loads(line)

    def start(self, port: int, db_url: str, log: Path, token: str | None = None) -> int:
        """Fork a server on ``port`` with ledger ``db_url``; returns its pid (not yet ready)."""
        reply = self._ask(op="start", port=port, db=db_url, log=str(log), token=token)
        return int(reply["pid"])

    def kill(self, pid: int) -> int:
        """SIGKILL ``pid`` and reap it; returns the raw wait status."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return int(self._ask(op="reap", pid=pid)["status"])

    def close(self) -> None:
        """Stop the helper."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_healthy(url: str, pid: int, timeout: float = 60.0) -> None:
    """Wait for ``url`` to answer, failing early if process ``pid`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url):
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise AssertionError(f"server process {pid} exited before answering") from None
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout} s")
