"""Start-up: ``import alphaswarm``, ``alphaswarm --version``, ``alphaswarm serve --demo``.

Every row starts a new ``python`` process (this one's interpreter, the working
tree first on ``PYTHONPATH``) and times it from spawn to exit; the median of
``--repeat`` runs is printed with the fastest and slowest run and the child's CPU
seconds. ``python -c pass`` is the floor: what the interpreter itself costs.
The import row also reports the import alone, timed inside the child.

The ``alphaswarm serve --demo`` row spawns the server (a fresh ledger file and
HOME in a temporary directory, a free port) and times spawn to the first
``GET /health`` answered 200 (polled every 20 ms), and the CPU seconds the server
had used by then (``/proc``: what the wall time is on an idle machine, roughly);
the demo session running
(``GET /paper?status=running`` listing it) is printed beside it. The server is
then stopped with SIGINT (not timed).

Goals (issue 22): ``import alphaswarm`` < 0.5 s, ``alphaswarm --version`` < 0.3 s,
``alphaswarm serve --demo`` answering HTTP < 2 s. Nothing here asserts them; the
figures are printed.

    python bench/startup.py             # 5 runs per row
    python bench/startup.py --quick     # 2 runs per row
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, free_port, load, machine_line, parser, table, write_results

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


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return 0, b""


def serve_run(env: dict[str, str], timeout: float = 120.0) -> dict[str, Any]:
    """``alphaswarm serve --demo`` once: spawn to /health 200, and to the demo running."""
    script = Path(sys.executable).parent / "alphaswarm"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "alphaswarm.cli"]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [*cli, "serve", "--demo", "--port", str(port), "--db", f"sqlite:///{tmp}/ledger.db"]
        run_env = {**env, "HOME": tmp}
        run_env.pop("ALPHASWARM_TOKEN", None)
        run_env.pop("ALPHASWARM_DB_URL", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        answered = running = answered_cpu = None
        try:
            deadline = t0 + timeout
            while answered is None or running is None:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd!r} exited:\n{proc.stderr.read()[-2000:]}")
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{cmd!r}: no answer within {timeout:.0f} s")
                if answered is None and _get(url + "/health")[0] == 200:
                    answered = time.perf_counter() - t0
                    answered_cpu = _process_cpu(proc.pid)
                elif answered is not None:
                    status, body = _get(url + "/paper?status=running")
                    if status == 200 and json.loads(body).get("runs"):
                        running = time.perf_counter() - t0
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": answered, "running": running, "cpu": cpu, "cpu_to_answer": answered_cpu}


def _process_cpu(pid: int) -> float | None:
    """CPU seconds a running process has used so far (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    runs = [serve_run(env) for _ in range(repeat)]
    walls = [r["wall"] for r in runs]
    out.append(
        {
            "what": "alphaswarm serve --demo answering HTTP",
            "runs": repeat,
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "cpu_s": statistics.median(r["cpu"] for r in runs),
            "demo_running_s": statistics.median(r["running"] for r in runs),
            "cpu_to_answer_s": statistics.median(r["cpu_to_answer"] or 0.0 for r in runs),
        }
    )
    columns = [
        ("what", "what"),
        ("runs", "runs"),
        ("median_s", "median s"),
        ("min_s", "min s"),
        ("max_s", "max s"),
        ("cpu_s", "CPU s (median)"),
        ("import_only_s", "import alone s"),
        ("cpu_to_answer_s", "server CPU s to its answer"),
        ("demo_running_s", "demo session running s"),
    ]
    title = "Start-up, each run a fresh interpreter (goals: < 0.5 s, < 0.3 s, serve < 2 s)"
    print(table(out, columns, title))
    print(f"load average after: {load()}")
    write_results(args.results_dir, NAME, {"repeat": repeat, "rows": out}, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
