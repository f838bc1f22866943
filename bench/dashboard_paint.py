"""Dashboard first paint: N browsers open the demo's live run view at once.

A real ``alphaswarm serve --demo`` subprocess (the README's main job) serves the
dashboard; Debian's Chromium (Playwright, ``/usr/bin/chromium``) opens it in N
fresh browser contexts at the same moment. For each page, from navigation start:

* ``first paint``: the browser's first contentful paint;
* ``run view``: the landing run's session card and its equity canvas on screen
  (what a user waits for);

median, p90 and worst over the N pages, for N = 1, 5 and 20 (``--quick``: 1 and 3).
Beside it, the floor: a bare Panel page (one Markdown pane, ``panel serve`` in its own
process) opened the same way. Goal (issue 23): run view under 1 s for one browser.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import load, machine_line, parser, percentile, table, write_results
from _server import alphaswarm_cmd, free_port, serve_subprocess

NAME = "dashboard_paint"
CHROMIUM = "/usr/bin/chromium"

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

FLOOR_APP = """
import panel as pn
pn.pane.Markdown("# floor\\nA bare Panel page.").servable()
"""


async def open_page(browser: Any, url: str, selectors: list[str]) -> dict[str, float]:
    """Open ``url`` in a fresh context; ms from navigation start to paint and to content."""
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    page = await context.new_page()
    try:
        await page.goto(url, wait_until="commit", timeout=180_000)
        handle = await page.wait_for_function(
            DEEP_WAIT_JS, arg=selectors, polling="raf", timeout=180_000
        )
        content_ms = float(await handle.json_value())
        paint = await page.evaluate(
            "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime"
        )
        return {"first_paint_ms": float(paint or "nan"), "content_ms": content_ms}
    finally:
        await context.close()


async def wave(url: str, n: int, selectors: list[str]) -> list[dict[str, float]]:
    """N pages opened at the same moment in one Chromium."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            await open_page(browser, url, selectors)  # warm the server's caches once
            return list(
                await asyncio.gather(*(open_page(browser, url, selectors) for _ in range(n)))
            )
        finally:
            await browser.close()


def summarise(what: str, n: int, pages: list[dict[str, float]]) -> dict[str, Any]:
    """One table row: median, p90 and worst of each measure."""
    row: dict[str, Any] = {"what": what, "browsers": n}
    for key in ("first_paint_ms", "content_ms"):
        values = [p[key] for p in pages if p[key] == p[key]]
        row[f"{key}_median"] = statistics.median(values) if values else float("nan")
        row[f"{key}_p90"] = percentile(values, 90)
        row[f"{key}_max"] = max(values) if values else float("nan")
    return row


def wait_for_demo_run(url: str, timeout: float = 120.0) -> None:
    """Until the demo's paper session runs (the landing page then shows it)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = requests.get(url + "/paper", timeout=10).json()
        items = runs.get("runs", runs) if isinstance(runs, dict) else runs
        if any(r.get("status") == "running" for r in items):
            return
        time.sleep(0.5)
    raise TimeoutError("the demo session did not start")


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    if not os.path.exists(CHROMIUM):
        print(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
        return 1
    sizes = (1, 3) if args.quick else (1, 5, 20)
    started = time.perf_counter()
    print(machine_line())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aw-paint-") as tmp:
        home = Path(tmp)
        port = free_port()
        cmd = [*alphaswarm_cmd(), "--db", f"sqlite:///{home / 'ledger.db'}", "serve"]
        cmd += ["--port", str(port), "--demo"]
        with serve_subprocess(cmd, home, port):
            url = f"http://127.0.0.1:{port}"
            wait_for_demo_run(url)
            for n in sizes:
                pages = asyncio.run(wave(url + "/", n, [".alphaswarm-session-card", "canvas"]))
                rows.append(summarise("alphaswarm run view", n, pages))
        floor = home / "floor.py"
        floor.write_text(FLOOR_APP)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", str(floor), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            floor_url = f"http://127.0.0.1:{port}/floor"
            deadline = time.monotonic() + 60
            import requests

            while time.monotonic() < deadline:
                try:
                    if requests.get(floor_url, timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            for n in sizes:
                pages = asyncio.run(wave(floor_url, n, [".markdown"]))
                rows.append(summarise("bare Panel page (floor)", n, pages))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    columns = [
        ("what", "what"),
        ("browsers", "browsers"),
        ("first_paint_ms_median", "first paint ms (median)"),
        ("content_ms_median", "content ms (median)"),
        ("content_ms_p90", "content ms (p90)"),
        ("content_ms_max", "content ms (worst)"),
    ]
    print(table(rows, columns, "Dashboard first paint, N browsers at once (goal: run view < 1 s)"))
    print(f"load average after: {load()}")
    write_results(args.results_dir, NAME, {"sizes": list(sizes), "rows": rows}, started, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
