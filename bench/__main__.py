"""Run every benchmark: ``python -m bench [--quick] [--results-dir DIR] [--only a,b]``.

Each script runs in its own process (``sys.executable``, so run this with
``bench/.venv/bin/python`` to include the peer frameworks) and prints its table;
this runner stops at nothing: a failing script is reported and the rest go on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
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


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (the smoke test)")
    p.add_argument("--results-dir", type=Path, default=None, help="where the JSON goes")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    args = p.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SCRIPTS)
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        p.error(f"--only: unknown {', '.join(unknown)}; known: {', '.join(SCRIPTS)}")
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py")]
        if args.quick:
            cmd.append("--quick")
        if args.results_dir is not None:
            cmd += ["--results-dir", str(args.results_dir)]
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s ===", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
