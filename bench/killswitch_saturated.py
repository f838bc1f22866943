"""Kill switch over HTTP while the other routes are saturated, beside the idle figure.

A real server (``alphaswarm serve``) runs in its own process with a few paper
sessions trading. The benchmark times ``POST /kill-switch`` (client: request sent
-> response read; server: ``request_to_engage_ms``, from the moment the server
read the request's headers to ``engage()`` starting, and ``elapsed_ms`` of the
engagement) in two conditions:

* **idle**: nothing else is asked of the server;
* **saturated**: client threads keep the other routes busy the whole time:
  big backtests (``POST /bots/{id}/backtest {"bars": B}``), large YAML bodies
  (about 120 KB of flow lists, parsed off the IOLoop in the bounded pool) and
  oversized bodies (5 MB, refused with a 413 from their headers). The bounded
  pool answers 503 when full; the counts of each answer are printed.

After each engagement ``POST /kill-switch/reset`` and fresh sessions.

    python bench/killswitch_saturated.py            # 20 reps, B = 300000
    python bench/killswitch_saturated.py --quick    # 3 reps, B = 20000
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from _common import load, machine_line, parser, percentile, table, write_results
from _server import Api, alphaswarm_serve, bench_bot

NAME = "killswitch_saturated"


def yaml_body(kib: int = 120) -> bytes:
    """A YAML bot body of about ``kib`` KiB (valid YAML, not JSON): costly to parse."""
    items = ", ".join(["1"] * (kib * 1024 // 3))
    return f"name: load-yaml\nstrategy: sma_cross\nextras: {{pad: [{items}]}}\n".encode()


class Load:
    """Client threads keeping backtests, big bodies and oversized bodies coming."""

    def __init__(self, url: str, bot_id: str, bars: int, backtests: int, bodies: int) -> None:
        self.url, self.bot_id, self.bars = url, bot_id, bars
        self.stop = threading.Event()
        self.answers: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._body = yaml_body()
        self.threads = [
            threading.Thread(target=self._backtests, daemon=True) for _ in range(backtests)
        ] + [threading.Thread(target=self._bodies, daemon=True) for _ in range(bodies)]

    def _count(self, what: str, status: int | str) -> None:
        with self._lock:
            self.answers[f"{what} {status}"] += 1

    def _loop(self, what: str, send: Any) -> None:
        with requests.Session() as http:
            while not self.stop.is_set():
                try:
                    status = send(http).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                self._count(what, status)
                if status == 503:
                    self.stop.wait(0.05)

    def _backtests(self) -> None:
        path = f"{self.url}/bots/{self.bot_id}/backtest"
        self._loop("backtest", lambda s: s.post(path, json={"bars": self.bars}, timeout=600))

    def _bodies(self) -> None:
        big = b"x" * (5 * 1024 * 1024)

        def send(s: requests.Session) -> requests.Response:
            r = s.post(self.url + "/bots", data=self._body, timeout=600)
            self._count("oversized", _oversized(s, self.url, big))
            return r

        self._loop("yaml-120KB", send)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(600)


def _oversized(s: requests.Session, url: str, big: bytes) -> int | str:
    try:
        return s.post(url + "/kill-switch/reset", data=big, timeout=60).status_code
    except requests.RequestException as exc:  # the server may close while we still send
        return type(exc).__name__


def start_sessions(api: Api, bot_id: str, n: int, patience: float = 10.0) -> int:
    """Start up to ``n`` sessions (a full pool answers 503: retried for ``patience`` s)."""
    started = 0
    deadline = time.monotonic() + patience
    body = json.dumps({"starting_cash": 100_000, "speed": 60})
    while started < n and time.monotonic() < deadline:
        r = api.http.post(f"{api.url}/bots/{bot_id}/paper", data=body, timeout=120)
        if r.status_code == 201:
            started += 1
        elif r.status_code == 503:
            time.sleep(0.05)
        else:
            raise RuntimeError(f"POST /bots/{bot_id}/paper -> {r.status_code}: {r.text[:500]}")
    return started


def one_kill(api: Api) -> dict[str, float]:
    t0 = time.perf_counter()
    r = api.http.post(api.url + "/kill-switch", data=json.dumps({"reason": "bench"}), timeout=120)
    client_ms = (time.perf_counter() - t0) * 1e3
    if r.status_code != 200:
        raise RuntimeError(f"POST /kill-switch -> {r.status_code}: {r.text[:500]}")
    body = r.json()
    api.post("/kill-switch/reset", {})
    return {
        "client_ms": client_ms,
        "request_to_engage_ms": float(body.get("request_to_engage_ms") or 0.0),
        "engage_ms": float(body["elapsed_ms"]),
    }


def summarise(condition: str, samples: list[dict[str, float]], extra: dict) -> dict[str, Any]:
    row: dict[str, Any] = {"condition": condition, "reps": len(samples)}
    for key in ("client_ms", "request_to_engage_ms", "engage_ms"):
        values = [s[key] for s in samples]
        row[f"{key}_p50"] = percentile(values, 50)
        row[f"{key}_p95"] = percentile(values, 95)
        row[f"{key}_max"] = max(values)
    return {**row, **extra}


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=None, help="kills per condition (default 20)")
    p.add_argument("--bars", type=int, default=None, help="bars per load backtest (300000)")
    p.add_argument("--sessions", type=int, default=None, help="sessions trading (default 5)")
    args = p.parse_args()
    reps = args.reps or (3 if args.quick else 20)
    bars = args.bars or (20_000 if args.quick else 300_000)
    sessions = args.sessions if args.sessions is not None else (1 if args.quick else 5)
    backtests, bodies = (2, 1) if args.quick else (6, 4)
    started = time.perf_counter()
    print(
        f"{NAME}: alphaswarm serve subprocess, {sessions} session(s), {reps} kills idle and "
        f"under {backtests} backtest client(s) of {bars} bars + {bodies} big-body client(s)"
    )
    print(machine_line())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ks-sat-") as tmp:
        with alphaswarm_serve(Path(tmp) / "ledger.db", Path(tmp)) as (url, _proc):
            api = Api(url)
            bot_id = bench_bot(api)
            samples = []
            for _ in range(reps):
                start_sessions(api, bot_id, sessions)
                time.sleep(0.2)
                samples.append(one_kill(api))
            rows.append(summarise("idle", samples, {"load": ""}))
            with Load(url, bot_id, bars, backtests, bodies) as load_:
                time.sleep(2.0 if args.quick else 5.0)  # let the load fill the pools
                samples = []
                for _ in range(reps):
                    start_sessions(api, bot_id, sessions)
                    time.sleep(0.2)
                    samples.append(one_kill(api))
                answers = dict(load_.answers)
            rows.append(summarise("saturated", samples, {"load": answers}))
            api.close()
    columns = [("condition", "condition"), ("reps", "reps")] + [
        (f"{k}_{q}", f"{k} {q}")
        for k in ("client_ms", "request_to_engage_ms", "engage_ms")
        for q in ("p50", "p95", "max")
    ]
    print(table(rows, columns, "POST /kill-switch latency, ms"))
    print(f"\nload answers while saturated: {rows[-1]['load']}")
    print(f"load average after: {load()}")
    write_results(args.results_dir, NAME, {"rows": rows}, started, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
