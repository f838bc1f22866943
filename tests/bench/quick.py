"""Runs a benchmark script's quick mode once per test session, for the smoke tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

_RUNS: dict[str, tuple] = {}


def quick_run(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Run one script's quick mode once per test session (into its own results dir).

    Each script runs inside the test that asks for it first, so each has the whole
    per-test time limit of its own.
    """
    if name not in _RUNS:
        env = {**os.environ}
        env.pop("ALPHASWARM_DB_URL", None)
        results = tmp_path_factory.mktemp(name)
        env["HOME"] = str(results)  # any default ledger lands in the tmp dir
        proc = subprocess.run(
            [sys.executable, str(BENCH / f"{name}.py"), "--quick", "--results-dir", str(results)],
            capture_output=True,
            text=True,
            timeout=280,
            env=env,
        )
        _RUNS[name] = (proc, results)
    return _RUNS[name]


def assert_table_and_json(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The quick mode of ``name`` exits 0, prints a table and writes its JSON."""
    proc, results = quick_run(name, tmp_path_factory)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table_lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(table_lines) >= 3, proc.stdout
    doc = json.loads((results / f"{name}.json").read_text())
    assert doc["benchmark"] == name
    assert doc["quick"] is True
    assert doc["machine"]["cores"] >= 1
    assert doc["machine"]["python"]
    assert doc["rows"]
