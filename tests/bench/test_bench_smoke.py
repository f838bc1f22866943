"""Smoke test of the benchmark scripts: each quick mode runs, prints a table, writes JSON.

Runs with the project's interpreter, where the peer frameworks (backtrader,
backtesting.py) are usually absent: the engine script must then skip them with a
note. Nothing here looks at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = (
    "engine_throughput",
    "paper_replay",
    "killswitch_latency",
    "ledger_writes",
    "http_killswitch",
    "killswitch_saturated",
    "frame_latency",
    "ws_throughput",
    "concurrent_sessions",
    "startup",
    "killswitch_sqlite_follow",
    "json_encoding",
)


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


@pytest.mark.parametrize("name", SCRIPTS)
def test_quick_mode_prints_a_table_and_writes_json(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
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


def test_engine_skips_missing_peers_and_plain_loop_agrees(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    proc, results = quick_run("engine_throughput", tmp_path_factory)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((results / "engine_throughput.json").read_text())["rows"]
    engines = {row["framework"] for row in rows}
    ours = {"alphaswarm", "alphaswarm-parquet", "alphaswarm-csv", "alphaswarm-event"}
    assert engines == ours | {"backtrader", "backtesting", "plain"}
    for row in rows:
        if row["framework"] in ours | {"plain"}:
            assert "fills" in row, row
        if "fills" not in row:
            assert row["note"].startswith("skipped"), row
        elif row["framework"] != "alphaswarm":
            # the event path and the floor follow the vectorized path's fills exactly
            assert row["fills_vs_alphaswarm"] == 0, row


def test_runner_lists_every_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for name in SCRIPTS:
        assert name in proc.stdout
