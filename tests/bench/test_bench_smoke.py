"""Smoke test of the benchmark scripts: each quick mode runs, prints a table, writes JSON.

Runs with the project's interpreter, where the peer frameworks (backtrader,
backtesting.py) are usually absent: the engine script must then skip them with a
note. Nothing here looks at a time. The kill-switch and session scripts are in
``test_bench_smoke_sessions.py`` (a file of their own, so another worker runs them).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.bench.quick import BENCH, assert_table_and_json, quick_run
from tests.bench.test_bench_smoke_sessions import SESSION_SCRIPTS

SCRIPTS = (
    "engine_throughput",
    "paper_replay",
    "ledger_writes",
    "frame_latency",
    "ws_throughput",
    "json_encoding",
)


@pytest.mark.parametrize("name", SCRIPTS)
def test_quick_mode_prints_a_table_and_writes_json(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert_table_and_json(name, tmp_path_factory)


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
    for name in SCRIPTS + SESSION_SCRIPTS:
        assert name in proc.stdout
