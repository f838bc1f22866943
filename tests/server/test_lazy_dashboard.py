"""The API answers without the UI stack; the dashboard is built on the first page request.

Each test runs a fresh interpreter (``sys.modules`` of the test process already
holds Panel): importing the server, then a real server on loopback (REST calls, a
paper session killed by the kill switch) and only then a browser's page load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI_STACK = ("panel", "bokeh", "holoviews")

IMPORT_ONLY = f"""
import sys
import alphaswarm.server.app
import alphaswarm.server.routes  # the panel-serve plugin builds its routes table too
print(sorted(m for m in {UI_STACK!r} if m in sys.modules))
"""

SERVE_THEN_PAGE = f"""
import json, sys, time
import requests
from alphaswarm.ledger import Ledger
from alphaswarm.server import ServerThread
from alphaswarm.server.demo import DEMO_SPEC
from tests.ports import free_port

def loaded():
    return sorted(m for m in {UI_STACK!r} if m in sys.modules)

out = {{}}
port = free_port()
ledger = Ledger(url=sys.argv[1])
ledger.ensure_schema()
server = ServerThread("127.0.0.1", port, ledger=ledger).start()
url, api = server.url, requests.Session()
api.headers["Accept"] = "application/json"
out["health"] = api.get(url + "/health", timeout=60).status_code
bot_id = api.post(url + "/bots", json=DEMO_SPEC, timeout=60).json()["bot_id"]
out["backtest"] = api.post(url + f"/bots/{{bot_id}}/backtest", json={{"bars": 7800}},
                           timeout=300).status_code
started = api.post(url + f"/bots/{{bot_id}}/paper", json={{"speed": 60}}, timeout=60)
out["paper"] = started.status_code
run_id = started.json()["paper_run_id"]
engaged = api.post(url + "/kill-switch", json={{"reason": "test: before any page"}}, timeout=120)
out["engage"] = engaged.status_code
out["engaged"] = api.get(url + "/kill-switch", timeout=60).json()["engaged"]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    out["run_status"] = api.get(url + f"/paper/{{run_id}}", timeout=60).json()["status"]
    if out["run_status"] != "running":
        break
    time.sleep(0.1)
out["reset"] = api.post(url + "/kill-switch/reset", json={{}}, timeout=60).status_code
out["before_page"] = loaded()
page = requests.get(url + "/", headers={{"Accept": "text/html"}}, timeout=300)
out["page"] = [page.status_code, page.headers.get("Content-Type", ""), page.text]
bots_page = requests.get(url + "/bots", headers={{"Accept": "text/html"}}, timeout=300)
out["bots_page"] = [bots_page.status_code, bots_page.headers.get("Content-Type", "")]
out["bots_json"] = api.get(url + "/bots", timeout=60).json()
out["after_page"] = loaded()
server.stop()
print(json.dumps(out))
"""


def _run(script: str, tmp_path: Path, *args: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["HOME"] = str(tmp_path)
    env["ALPHASWARM_DB_URL"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    env.pop("ALPHASWARM_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


def test_importing_the_server_imports_no_ui_stack(tmp_path):
    assert _run(IMPORT_ONLY, tmp_path) == "[]"


def test_the_api_and_the_kill_switch_answer_before_any_page_then_pages_render(tmp_path):
    out = json.loads(_run(SERVE_THEN_PAGE, tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}"))
    assert out["health"] == 200
    assert out["backtest"] == 201
    assert out["paper"] == 201
    assert out["engage"] == 200 and out["engaged"] is True
    assert out["run_status"] == "killed"
    assert out["reset"] == 200
    assert out["before_page"] == []  # the API and the kill switch ran without the UI stack
    status, kind, html = out["page"]
    assert status == 200 and kind.startswith("text/html")
    assert "alphaswarm" in html and "Bokeh" in html  # the dashboard's Bokeh document
    assert out["bots_page"][0] == 200 and out["bots_page"][1].startswith("text/html")
    assert [b["bot_id"] for b in out["bots_json"]["bots"]] == ["sma-demo"]
    assert out["after_page"] == ["bokeh", "holoviews", "panel"]
