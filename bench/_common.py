"""Shared helpers of the benchmark scripts: arguments, machine info, tables, JSON, RSS.

Imported as ``_common`` by the scripts in this folder (run them by path:
``python bench/engine_throughput.py``; the script's folder is then first on
``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_RESULTS = BENCH_DIR / "results"
SEED = 7

PACKAGES = (
    "alphaswarm",
    "numpy",
    "pandas",
    "sqlalchemy",
    "param",
    "backtrader",
    "backtesting",
    "psutil",
    "psycopg",
)


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every script shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (the smoke test)")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"where <name>.json goes (default {DEFAULT_RESULTS})",
    )
    return p


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages the benchmarks touch (None when absent)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The repository's HEAD commit (read only), if git is available."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and package versions, load average."""
    try:
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem_gib = round(mem_kb / 1024**2, 1)
    except (OSError, StopIteration):
        mem_gib = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "loadavg": load(),
    }


def load() -> list[float] | None:
    """1, 5 and 15 minute load averages (others' tests share these 2 cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB.

    Reads ``VmHWM`` (reset by ``exec``): ``ru_maxrss`` survives ``fork`` + ``exec``
    on Linux, so a worker would report its parent's peak when that is higher.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 1024**2


def current_rss_mib() -> float:
    """Current resident set size, MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def fmt(value: Any) -> str:
    """Human formatting of one table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], title: str = "") -> str:
    """A plain-text (Markdown pipe) table of ``rows``; ``columns`` = [(key, header)]."""
    cells = [[fmt(r.get(k)) for k, _ in columns] for r in rows]
    heads = [h for _, h in columns]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(heads)]
    # text columns (any str value) align left, numbers right
    left = [any(isinstance(r.get(k), str) for r in rows) for k, _ in columns]

    def line(values: list[str]) -> str:
        out = []
        for i, v in enumerate(values):
            out.append(v.ljust(widths[i]) if left[i] else v.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    text = [line(heads), sep, *(line(c) for c in cells)]
    if title:
        text.insert(0, f"\n{title}\n")
    return "\n".join(text)


TUNING_MODES = {"off": (False,), "on": (True,), "both": (False, True)}


def add_tuning_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--tuning off|on|both`` (default both, printed side by side) and its old alias."""
    p.add_argument(
        "--tuning",
        choices=tuple(TUNING_MODES),
        default="both",
        help=f"interpreter tuning ({what}): off, on, or both side by side (default both)",
    )
    p.add_argument("--tune-interpreter", action="store_true", help="same as --tuning on")


def tuning_modes(args: argparse.Namespace) -> tuple[bool, ...]:
    """The tuning settings to measure, in order (untuned first)."""
    return (True,) if args.tune_interpreter else TUNING_MODES[args.tuning]


def side_by_side(
    rows_by_mode: dict[bool, list[dict[str, Any]]],
    metrics: list[tuple[str, str]],
    title: str,
    key: str = "sessions",
) -> str:
    """One table, a row per ``key`` value, each metric untuned then tuned next to it."""
    modes = list(rows_by_mode)
    merged: dict[Any, dict[str, Any]] = {}
    for tuned, rows in rows_by_mode.items():
        for row in rows:
            out = merged.setdefault(row[key], {key: row[key]})
            for metric, _ in metrics:
                out[f"{metric}:{tuned}"] = row.get(metric)
    columns = [(key, key)]
    for metric, header in metrics:
        for tuned in modes:
            columns.append((f"{metric}:{tuned}", f"{header}, tuning {'on' if tuned else 'off'}"))
    return table(list(merged.values()), columns, title)


def write_results(
    results_dir: Path, name: str, payload: dict[str, Any], started: float, quick: bool
) -> Path:
    """Write ``<results_dir>/<name>.json`` with the machine info around ``payload``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "quick": quick,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 2),
        "machine": machine_info(),
        **payload,
    }
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return path


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of ``values``; NaN when empty."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def machine_line() -> str:
    """One line naming the machine, for the top of each printed report."""
    info = machine_info()
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"Python {info['python']}; load {info['loadavg']}"
    )
