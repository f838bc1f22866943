#!/usr/bin/env python
"""Refresh the committed screenshots in ``docs/img/`` (run by hand).

The browser tests write their screenshots to ``test-artifacts/`` only, so running
the suite never changes the tree. This script runs the tests that take the
pictures the docs show and copies those pictures into ``docs/img/``::

    scripts/screenshots.py            # run the tests, then copy
    scripts/screenshots.py --no-run   # copy what the last test run left

Arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMG = ROOT / "docs" / "img"
#: docs image name -> (the test artifact, the tests that write it)
SHOTS: dict[str, tuple[str, str]] = {
    "bot_page.png": (
        "bot_page.png",
        "tests/ui/test_browser_bot_pages.py::test_the_bot_page_shows_gate_versions_backtests",
    ),
    "bot_page_phone.png": (
        "bot_page_phone.png",
        "tests/ui/test_browser_bot_pages.py::test_the_bot_page_shows_gate_versions_backtests",
    ),
    "run-view.png": ("run-view.png", "tests/ui/test_browser_run_view.py"),
    "backtest_report.png": ("backtest_report.png", "tests/ui/test_browser_report.py"),
    "notebook-01.png": ("jupyterlab/notebook-01.png", "tests/ui/test_jupyterlab.py"),
}


def main(argv: list[str] | None = None) -> int:
    """Run the screenshot tests (unless ``--no-run``) and copy their pictures; exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="only copy existing artifacts")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    if not args.no_run:
        tests = sorted({test for _, test in SHOTS.values()})
        # the JupyterLab suite runs in a process of its own (see scripts/test.sh)
        lab = [t for t in tests if "jupyterlab" in t]
        groups = [[t for t in tests if t not in lab], lab]
        for group in groups:
            command = [sys.executable, "-m", "pytest", "-q", *group, *args.pytest_args]
            if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
                print("screenshot tests failed: docs/img/ left as it was", file=sys.stderr)
                return 1
    missing = [artifact for artifact, _ in SHOTS.values() if not (ARTIFACTS / artifact).exists()]
    if missing:
        print(f"missing in test-artifacts/: {', '.join(missing)}", file=sys.stderr)
        return 1
    for name, (artifact, _) in SHOTS.items():
        shutil.copyfile(ARTIFACTS / artifact, DOCS_IMG / name)
        print(f"docs/img/{name} <- test-artifacts/{artifact}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
