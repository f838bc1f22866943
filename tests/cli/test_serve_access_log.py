"""``alphaswarm serve`` keeps its access log after Dask's ``distributed`` is imported.

Importing ``distributed`` (which a sweep on a local cluster does) sets the
``tornado`` logger to CRITICAL; the serve command keeps the levels its logging
set-up chose. A real server process: a thread in it imports ``distributed`` once
the server answers, then requests a page; that request's access line must appear.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ui.conftest import free_port

pytest.importorskip("distributed", reason="needs dask's distributed (the [sweep] extra)")

ROOT = Path(__file__).resolve().parents[2]
MARKER = "/health?after=distributed"
SCRIPT = """
import sys, threading, time
import requests

port, db = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}"


def after_start():
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)
    import distributed  # what a sweep on a local cluster imports in the server's process

    status = requests.get(url + "MARKER", timeout=30).status_code
    print("requested", status, flush=True)


threading.Thread(target=after_start, daemon=True).start()
from alphaswarm.cli.commands import main

main(["--debug", "--db", db, "serve", "--port", port])
""".replace("MARKER", MARKER)


def test_the_access_log_survives_importing_distributed(tmp_path):
    port = free_port()
    err = tmp_path / "stderr.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-c", SCRIPT, str(port), f"sqlite:///{tmp_path}/l.db"]
    with err.open("w") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    try:
        line = "-"
        while line and not line.startswith("requested"):  # until answered (or exit)
            line = proc.stdout.readline()
        assert line.startswith("requested 200"), (line, err.read_text()[-3000:])
        deadline = time.monotonic() + 30
        while MARKER not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = err.read_text()
    finally:
        proc.terminate()
        proc.wait(30)
    access = [row for row in log.splitlines() if MARKER in row]
    assert access, "no access log line after importing distributed:\n" + log[-3000:]
    assert "200" in access[0]
