"""Start-up: ``import alphaswarm`` and ``alphaswarm --version``, each in a fresh interpreter.

Every row starts a new ``python`` process (this one's interpreter, the working
tree first on ``PYTHONPATH``) and times it from spawn to exit; the median of
``--repeat`` runs is printed with the fastest and slowest run and the child's CPU
seconds. ``python -c pass`` is the floor: what the interpreter itself costs.
The import row also reports the import alone, timed inside the child.

Goals (issue 22): ``import alphaswarm`` < 0.5 s, ``alphaswarm --version`` < 0.3 s.
Nothing here asserts them; the figures are printed.

    python bench/startup.py             # 5 runs per row
    python bench/startup.py --quick     # 2 runs per row
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, load, machine_line, parser, table, write_results

NAME = "startup"


def rows() -> list[tuple[str, list[str]]]:
    """(row, command); the import row prints its own import time."""
    py = [sys.executable, "-c"]
    script = Path(sys.executable).parent / "alphaswarm"  # the console script, when installed
    version = [str(script)] if script.exists() else [sys.executable, "-m", "alphaswarm.cli"]
    return [
        ("python -c pass", [*py, "pass"]),
        (
            "import alphaswarm",
            [
                *py,
                "import time; t = time.perf_counter(); import alphaswarm; "
                "print(time.perf_counter() - t)",
            ],
        ),
        ("alphaswarm --version", [*version, "--version"]),
        ("import alphaswarm; aw.Bot", [*py, "import alphaswarm as aw; aw.Bot"]),
        ("import alphaswarm; aw.backtest", [*py, "import alphaswarm as aw; aw.backtest"]),
        ("import alphaswarm; aw.PaperSession", [*py, "import alphaswarm as aw; aw.PaperSession"]),
    ]


def child_env() -> dict[str, str]:
    """This environment with the working tree first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def one_run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Spawn ``cmd`` once: wall and CPU seconds, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "stdout": proc.stdout.strip()}


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=None, help="runs per row (default 5)")
    args = p.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    started = time.perf_counter()
    env = child_env()
    print(machine_line())
    out = []
    for label, cmd in rows():
        runs = [one_run(cmd, env) for _ in range(repeat)]
        walls = [r["wall"] for r in runs]
        row: dict[str, Any] = {
            "what": label,
            "runs": repeat,
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "cpu_s": statistics.median(r["cpu"] for r in runs),
        }
        if label == "import alphaswarm":
            row["import_only_s"] = statistics.median(float(r["stdout"]) for r in runs)
        if label == "alphaswarm --version":
            row["output"] = runs[0]["stdout"]
        out.append(row)
    columns = [
        ("what", "what"),
        ("runs", "runs"),
        ("median_s", "median s"),
        ("min_s", "min s"),
        ("max_s", "max s"),
        ("cpu_s", "CPU s (median)"),
        ("import_only_s", "import alone s"),
    ]
    print(table(out, columns, "Start-up, each run a fresh interpreter (goals: < 0.5 s, < 0.3 s)"))
    print(f"load average after: {load()}")
    write_results(args.results_dir, NAME, {"repeat": repeat, "rows": out}, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
