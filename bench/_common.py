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
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

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


def free_port() -> int:
    """A free port on 127.0.0.1 below the kernel's ephemeral range.

    Ports from ``bind(("127.0.0.1", 0))`` come from the range outgoing connections
    take their local ports from, so another socket may take one before the server
    binds it; ports below that range are only ever taken by an explicit bind.
    """
    try:
        high = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768
    low = max(1024, high - 12000)
    chooser = random.SystemRandom()
    for _ in range(200):
        port = chooser.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


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


# --------------------------------------------------------------------------- kill-switch benches


def add_sessions_arguments(p: argparse.ArgumentParser, default_ns: tuple[int, ...]) -> None:
    """``--sessions N,N,...`` and ``--reps`` of the kill-switch benches."""
    shown = ",".join(map(str, default_ns))
    p.add_argument("--sessions", default=None, help=f"comma-separated N (default {shown})")
    p.add_argument("--reps", type=int, default=None, help="repetitions per N (default 20)")


def sessions_and_reps(
    args: argparse.Namespace, full_ns: tuple[int, ...], quick_ns: tuple[int, ...]
) -> tuple[list[int], int]:
    """The N to measure and the repetitions per N (``--quick``: fewer of both)."""
    if args.sessions:
        ns = [int(x) for x in args.sessions.split(",")]
    else:
        ns = list(quick_ns if args.quick else full_ns)
    return ns, args.reps or (2 if args.quick else 20)


def measure_rows(
    ns: list[int],
    reps: int,
    one: Callable[[int], dict[str, Any]],
    line: Callable[[int, dict[str, Any]], str],
    stats: dict[str, dict[str, str]],
    extra: Callable[[int, list[dict[str, Any]]], dict[str, Any]],
    label: str = "",
) -> list[dict[str, Any]]:
    """A row per N: ``reps`` samples ``one(n)``, each printed as ``line(n, sample)``.

    A row holds ``sessions``, ``reps``, the :func:`spread` of each sample key of
    ``stats`` (key -> ``{statistic: row key}``; a missing value counts as 0), then
    ``extra(n, samples)`` and the ``samples``.
    """
    head = f"[{label}] " if label else ""
    rows = []
    for n in ns:
        samples = []
        for rep in range(reps):
            s = one(n)
            samples.append(s)
            print(f"  {head}N={n:<4d} rep {rep + 1:2d}/{reps}: {line(n, s)}", flush=True)
        row: dict[str, Any] = {"sessions": n, "reps": reps}
        for key, names in stats.items():
            row.update(spread([s[key] or 0.0 for s in samples], **names))
        rows.append({**row, **extra(n, samples), "samples": samples})
    return rows


def spread(values: list[float], **names: str) -> dict[str, float]:
    """Statistics of ``values`` under the given keys: ``median=``, ``p99=``, ``worst=``, ``best=``.

    Examples
    --------
    >>> spread([1.0, 2.0, 3.0], median="m_ms", worst="w_ms")
    {'m_ms': 2.0, 'w_ms': 3.0}
    """
    stats = {
        "median": lambda: statistics.median(values),
        "p99": lambda: percentile(values, 99),
        "worst": lambda: max(values),
        "best": lambda: min(values),
    }
    return {key: stats[stat]() for stat, key in names.items()}


def bench_bot(aw: Any, name: str) -> Any:
    """The SMA bot of the kill-switch benches (attached to the kill switch)."""
    return aw.Bot(
        name=name,
        strategy="sma_cross",
        params={"fast": 5, "slow": 20, "qty": 100},
        universe=["DEMO"],
        risk={"kill_switch_attached": True},
    )


def minute_replay(bars: int) -> Any:
    """Seeded synthetic minute bars of ``DEMO`` as a replay feed on the equities calendar."""
    from alphaswarm.data import ReplayFeed, SyntheticFeed

    frame = SyntheticFeed(["DEMO"], seed=SEED, bars=bars).frame()
    return ReplayFeed(frame, interval="1m", calendar="equities")


def bench_sessions(aw: Any, bot: Any, feed: Any, n: int, **params: Any) -> list[Any]:
    """``n`` paper sessions of ``bot`` on ``feed`` at speed 60, gate forced, not started.

    ``params`` go to :class:`alphaswarm.PaperSession` (``ledger=``).
    """
    return [
        aw.PaperSession(
            bot,
            speed=60,
            duration_minutes=None,
            feed=feed,
            force=True,
            reason="benchmark: gate not under test",
            **params,
        )
        for _ in range(n)
    ]


def tuned_tables(
    rows_by_mode: dict[bool, list[dict[str, Any]]],
    columns: list[tuple[str, str]],
    title: str,
    compared: list[tuple[str, str]],
    compared_title: str,
) -> str:
    """One :func:`table` per tuning mode (``title``, then the mode), then the
    ``compared`` columns of both modes :func:`side_by_side` under ``compared_title``."""
    tables = [
        table(rows, columns, f"{title}, tuning {'on' if tuned else 'off'}")
        for tuned, rows in rows_by_mode.items()
    ]
    return "\n".join([*tables, side_by_side(rows_by_mode, compared, compared_title)])


def tuned_payload(
    modes: tuple[bool, ...], rows_by_mode: dict[bool, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The results' ``tuning``, ``rows`` (untuned) and ``rows_tuned``."""
    return {
        "tuning": ["on" if t else "off" for t in modes],
        "rows": rows_by_mode.get(False, []),
        "rows_tuned": rows_by_mode.get(True, []),
    }
