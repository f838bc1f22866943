"""Smoke test of the kill-switch and session benchmark scripts (see test_bench_smoke.py)."""

from __future__ import annotations

import pytest

from tests.bench.quick import assert_table_and_json

SESSION_SCRIPTS = (
    "killswitch_latency",
    "http_killswitch",
    "killswitch_saturated",
    "concurrent_sessions",
    "startup",
    "killswitch_sqlite_follow",
)


@pytest.mark.parametrize("name", SESSION_SCRIPTS)
def test_quick_mode_prints_a_table_and_writes_json(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert_table_and_json(name, tmp_path_factory)
