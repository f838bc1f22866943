"""Dashboard first paint and fill-to-browser latency, N browsers open on running sessions.

A real ``alphaswarm serve --demo`` subprocess (the README's main job) serves the
dashboard; Debian's Chromium (Playwright, ``/usr/bin/chromium``) opens it in N
fresh browser contexts at the same moment. For each page, from navigation start:

* ``html``: the page's HTML has arrived (the server built the page's shell);
* ``first paint``: the browser's first contentful paint;
* ``kill switch``: the header's KILL SWITCH button is on screen (it works from then on);
* ``run view``: the landing run's session card and its equity canvas on screen
  (what a user waits for);

median, p90 and worst over the N pages, for N = 1 and 20 (``--quick``: 1 and 3).
Beside it, the floor: a bare Panel page (one Markdown pane, ``panel serve`` in its own
process) opened the same way.

Then fill-to-browser latency: a second session of the demo bot runs at 600× (a fill
every second or two); N browsers open its run view; each records when every fill's
row appears in its fills table. A fill's time is the ``ts`` of its ``order.filled``
frame (stamped by the engine; a session commits a frame to the ledger before it
publishes it), read from the run's WebSocket. Latency = row visible - frame ts,
over every (fill, browser) pair: p50, p99 and worst.

Goals (issue 23): first paint < 1 s; fill-to-browser p99 < 1 s with 20 browsers.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import free_port, load, machine_line, parser, percentile, table, write_results
from _server import Api, alphaswarm_cmd, serve_subprocess

NAME = "dashboard_paint"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
#: How long a page may take to show a part before it counts as missing (ms).
PAGE_TIMEOUT_MS = 300_000
#: Speed of the session whose fills are timed (bars per bar interval).
FAST_SPEED = 600

#: Resolves to performance.now() once the selector's element exists, looking into
#: shadow roots (Panel renders its components inside them).
DEEP_WAIT_JS = """(selectors) => {
  const deep = (root, sel) => {
    const hit = root.querySelector(sel);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) {
        const found = deep(el.shadowRoot, sel);
        if (found) return found;
      }
    }
    return null;
  };
  return selectors.every((s) => deep(document, s)) ? performance.now() : null;
}"""

#: Record when each fill row first appears in the page's fills table (order id -> epoch
#: ms): a MutationObserver on the table's shadow root sees each row as it is inserted.
WATCH_FILLS_JS = """() => {
  window.__fillSeen = {};
  const hosts = [];
  const find = (root) => {
    root.querySelectorAll('.alphaswarm-fills').forEach((h) => hosts.push(h));
    root.querySelectorAll('*').forEach((el) => { if (el.shadowRoot) find(el.shadowRoot); });
  };
  find(document);
  const scan = (root) => {
    const now = Date.now();
    root.querySelectorAll('.tabulator-row').forEach((row) => {
      for (const cell of row.querySelectorAll('.tabulator-cell')) {
        const t = cell.textContent;
        if (/-o\\d+$/.test(t)) {
          if (!(t in window.__fillSeen)) window.__fillSeen[t] = now;
          break;
        }
      }
    });
  };
  const roots = [];
  const collect = (root) => {
    roots.push(root);
    root.querySelectorAll('*').forEach((el) => { if (el.shadowRoot) collect(el.shadowRoot); });
  };
  hosts.forEach((h) => collect(h.shadowRoot || h));
  for (const root of roots) {
    scan(root);
    new MutationObserver(() => scan(root)).observe(root, { childList: true, subtree: true,
      characterData: true });
  }
  return roots.length;
}"""

FLOOR_APP = """
import panel as pn
pn.pane.Markdown("# floor\\nA bare Panel page.").servable()
"""

RUN_VIEW = [".alphaswarm-session-card", "canvas"]
SHELL = [".alphaswarm-ks-button"]


async def timings(page: Any, content: list[str], shell: list[str] | None) -> dict[str, float]:
    """ms from navigation start: HTML, first paint, the shell (when asked) and the content."""
    from playwright.async_api import TimeoutError as PageTimeout

    out: dict[str, float] = {"shell_ms": float("nan"), "content_ms": float("nan")}
    for key, selectors in (("shell_ms", shell), ("content_ms", content)):
        if not selectors:
            continue
        try:  # a page that never gets there counts as missing (NaN), not as a crash
            handle = await page.wait_for_function(
                DEEP_WAIT_JS, arg=selectors, polling="raf", timeout=PAGE_TIMEOUT_MS
            )
        except PageTimeout:
            continue
        out[key] = float(await handle.json_value())
    nav = await page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0] || {};"
        " const p = performance.getEntriesByName('first-contentful-paint')[0] || {};"
        " return [n.responseEnd, p.startTime]; }"
    )
    out["html_ms"] = float(nav[0] if nav[0] is not None else "nan")
    out["first_paint_ms"] = float(nav[1] if nav[1] is not None else "nan")
    return out


async def open_page(
    browser: Any, url: str, content: list[str], shell: list[str] | None
) -> tuple[Any, dict[str, float]]:
    """Open ``url`` in a fresh context; (context, timings)."""
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    page = await context.new_page()
    await page.goto(url, wait_until="commit", timeout=300_000)
    return context, await timings(page, content, shell)


async def launch(p: Any) -> Any:
    return await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


async def wave(
    url: str, n: int, content: list[str], shell: list[str] | None
) -> list[dict[str, float]]:
    """N pages opened at the same moment in one Chromium (after one warm-up page)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await launch(p)
        try:
            context, _ = await open_page(browser, url, content, shell)  # warm the caches
            await context.close()
            opened = await asyncio.gather(
                *(open_page(browser, url, content, shell) for _ in range(n))
            )
            for context, _ in opened:
                await context.close()
            return [t for _, t in opened]
        finally:
            await browser.close()


async def frames_of(ws_url: str, stop: asyncio.Event, out: list[dict[str, Any]]) -> None:
    """Collect the run's ``order.filled`` frames until ``stop`` is set."""
    from websockets.asyncio.client import connect

    async with connect(ws_url, max_size=None, compression=None) as ws:
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            frame = json.loads(msg)
            if frame.get("stage") == "order.filled":
                out.append(frame)


async def fill_latency(url: str, run_id: str, n: int, seconds: float) -> dict[str, Any]:
    """N browsers on the run's view; latency of each new fill's row in each of them."""
    from playwright.async_api import async_playwright

    page_url = f"{url}/runs/{run_id}"
    async with async_playwright() as p:
        browser = await launch(p)
        try:
            opened = []
            for _ in range(n):  # opened together: the same load as the paint wave
                opened.append(browser.new_context(viewport={"width": 1440, "height": 1000}))
            contexts = await asyncio.gather(*opened)
            pages = await asyncio.gather(*(c.new_page() for c in contexts))
            await asyncio.gather(
                *(pg.goto(page_url, wait_until="commit", timeout=300_000) for pg in pages)
            )
            shown = await asyncio.gather(
                *(
                    pg.wait_for_function(
                        DEEP_WAIT_JS,
                        arg=[".alphaswarm-fills"],
                        polling=200,
                        timeout=PAGE_TIMEOUT_MS,
                    )
                    for pg in pages
                ),
                return_exceptions=True,
            )
            # a page whose fills table never came is left out (counted as not ready)
            not_ready = sum(isinstance(r, BaseException) for r in shown)
            pages = [
                pg for pg, r in zip(pages, shown, strict=True) if not isinstance(r, BaseException)
            ]
            await asyncio.gather(*(pg.evaluate(WATCH_FILLS_JS) for pg in pages))
            watch_from = time.time()
            frames: list[dict[str, Any]] = []
            stop = asyncio.Event()
            ws_url = url.replace("http://", "ws://") + f"/ws/paper/{run_id}"
            listener = asyncio.create_task(frames_of(ws_url, stop, frames))
            await asyncio.sleep(seconds)
            await asyncio.sleep(5)  # the last fills' rows reach the pages
            stop.set()
            await listener
            seen = await asyncio.gather(*(pg.evaluate("() => window.__fillSeen") for pg in pages))
            for c in contexts:
                await c.close()
        finally:
            await browser.close()
    fills = {
        f["fill"]["order_id"]: float(f["ts"])
        for f in frames
        if watch_from + 0.5 < float(f["ts"]) < watch_from + seconds
    }
    latencies: list[float] = []
    missing = 0
    for rows in seen:
        for order_id, ts in fills.items():
            if order_id in rows:
                latencies.append(rows[order_id] - ts * 1e3)
            else:
                missing += 1
    return {
        "browsers": n,
        "not_ready": not_ready,
        "fills": len(fills),
        "samples": len(latencies),
        "missing": missing,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
    }


def summarise(what: str, n: int, pages: list[dict[str, float]]) -> dict[str, Any]:
    """One table row: median, p90 and worst of each measure."""
    row: dict[str, Any] = {"what": what, "browsers": n}
    row["missing"] = sum(1 for p in pages if p["content_ms"] != p["content_ms"])
    for key in ("html_ms", "first_paint_ms", "shell_ms", "content_ms"):
        values = [p[key] for p in pages if p[key] == p[key]]
        row[f"{key}_median"] = statistics.median(values) if values else float("nan")
        row[f"{key}_p90"] = percentile(values, 90)
        row[f"{key}_max"] = max(values) if values else float("nan")
    return row


def running_runs(url: str) -> list[dict[str, Any]]:
    import requests

    runs = requests.get(url + "/paper", timeout=30).json()
    items = runs.get("runs", runs) if isinstance(runs, dict) else runs
    return [r for r in items if r.get("status") == "running"]


def wait_for_demo_run(url: str, timeout: float = 120.0) -> None:
    """Until the demo's paper session runs (the landing page then shows it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_runs(url):
            return
        time.sleep(0.5)
    raise TimeoutError("the demo session did not start")


def start_fast_session(url: str) -> str:
    """A second session of the demo bot at ``FAST_SPEED`` (its fills are timed); its id."""
    api = Api(url)
    try:
        bots = api.get("/bots")
        items = bots.get("bots", bots) if isinstance(bots, dict) else bots
        (bot,) = [b for b in items if b.get("name") == "sma-demo"]
        started = api.post(f"/bots/{bot['id']}/paper", {"speed": FAST_SPEED, "run_name": "fast"})
        return str(started["paper_run_id"])
    finally:
        api.close()


def floor_rows(home: Path, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """The bare Panel page, opened the same way."""
    import requests

    floor = home / "floor.py"
    floor.write_text(FLOOR_APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(floor), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        floor_url = f"http://127.0.0.1:{port}/floor"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(floor_url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        for n in sizes:
            pages = asyncio.run(wave(floor_url, n, [".markdown"], None))
            rows.append(summarise("bare Panel page (floor)", n, pages))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--seconds", type=float, default=None, help="seconds of fills timed (default 60, quick 20)"
    )
    args = p.parse_args()
    if not os.path.exists(CHROMIUM):
        print(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
        return 1
    sizes = (1, 3) if args.quick else (1, 20)
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    started = time.perf_counter()
    print(machine_line())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aw-paint-") as tmp:
        home = Path(tmp)
        cmd = [*alphaswarm_cmd(), "--db", f"sqlite:///{home / 'ledger.db'}", "serve"]
        with serve_subprocess(lambda p: [*cmd, "--port", str(p), "--demo"], home) as (port, _):
            url = f"http://127.0.0.1:{port}"
            wait_for_demo_run(url)
            for n in sizes:
                pages = asyncio.run(wave(url + "/", n, RUN_VIEW, SHELL))
                rows.append(summarise("alphaswarm run view", n, pages))
                print(f"  {n} browser(s): done, load {load()}", flush=True)
            fast = start_fast_session(url)
            latency = asyncio.run(fill_latency(url, fast, sizes[-1], seconds))
        rows += floor_rows(home, sizes)
    columns = [
        ("what", "what"),
        ("browsers", "browsers"),
        ("html_ms_median", "HTML ms (median)"),
        ("first_paint_ms_median", "first paint ms (median)"),
        ("first_paint_ms_max", "first paint ms (worst)"),
        ("shell_ms_median", "kill switch ms (median)"),
        ("content_ms_median", "content ms (median)"),
        ("content_ms_p90", "content ms (p90)"),
        ("content_ms_max", "content ms (worst)"),
        ("missing", "pages without it"),
    ]
    print(
        table(rows, columns, "Dashboard first paint, N browsers at once (goal: first paint < 1 s)")
    )
    lat_columns = [
        ("browsers", "browsers"),
        ("not_ready", "pages without a fills table"),
        ("fills", "fills"),
        ("samples", "(fill, browser) pairs"),
        ("missing", "rows never seen"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("max_ms", "worst ms"),
    ]
    print(
        table(
            [latency],
            lat_columns,
            f"Fill committed -> row in the page's fills table ({FAST_SPEED}x session; "
            "goal p99 < 1 s)",
        )
    )
    print(f"load average after: {load()}")
    payload = {"sizes": list(sizes), "rows": rows, "fill_latency": latency, "seconds": seconds}
    write_results(args.results_dir, NAME, payload, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
