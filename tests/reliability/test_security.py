"""Who may trade: origins, the token, strategy imports, YAML tags, and SQL construction."""

from __future__ import annotations

import ast
import json
import re
import sys
import time
from pathlib import Path

import pytest
import requests
import websockets.sync.client as ws_client
from websockets.exceptions import InvalidStatus

from alphaswarm.bots import Bot, BotSpecError, parse_document
from alphaswarm.model import ModelError
from alphaswarm.server.body import parse_body
from alphaswarm.server.errors import ApiError
from alphaswarm.strategies import ALLOWED_MODULES, resolve_strategy
from tests.ports import free_port

from .conftest import FAST_BOT

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "reliability-token-0123456789"
EVIL = "http://evil.example"


def _is_error(r: requests.Response, status: int) -> bool:
    body = r.json()
    return r.status_code == status and {"error", "detail"} <= set(body)


@pytest.fixture(scope="module")
def bot_and_run(fresh_server):
    url = fresh_server[0]
    r = requests.post(url + "/bots", json=FAST_BOT, timeout=30)
    bot_id = r.json()["bot_id"]
    body = {"speed": 60, "duration_minutes": None, "force": True, "reason": "security"}
    r = requests.post(url + f"/bots/{bot_id}/paper", json=body, timeout=30)
    assert r.status_code == 201, r.text
    yield bot_id, r.json()["paper_run_id"]
    requests.post(url + "/paper/stop-all", json={}, timeout=30)


def test_cross_origin_posts_are_refused_and_change_nothing(fresh_server, bot_and_run):
    url = fresh_server[0]
    bot_id, run_id = bot_and_run
    for path, body in [("/kill-switch", {}), (f"/bots/{bot_id}/paper", {"speed": 0}),
                       (f"/paper/{run_id}/stop", {}), ("/paper/stop-all", {}),
                       ("/bots", FAST_BOT), ("/bots/halt-all", {})]:  # fmt: skip
        for origin in (EVIL, "null", f"http://127.0.0.1:{free_port()}"):
            r = requests.post(url + path, json=body, headers={"Origin": origin}, timeout=30)
            assert _is_error(r, 403), (path, origin, r.status_code, r.text)
    assert requests.get(url + "/kill-switch", timeout=10).json()["engaged"] is False
    assert requests.get(url + f"/paper/{run_id}", timeout=10).json()["status"] == "running"
    r = requests.post(url + "/paper/stop-all", json={}, headers={"Origin": url}, timeout=30)
    assert r.status_code == 200  # the server's own origin is welcome


def test_foreign_origin_websocket_is_refused(fresh_server, bot_and_run):
    url = fresh_server[0]
    ws_url = url.replace("http://", "ws://") + f"/ws/paper/{bot_and_run[1]}"
    for origin in (EVIL, "null", "http://localhost:1"):
        with pytest.raises(InvalidStatus) as info:
            ws_client.connect(ws_url, origin=origin, open_timeout=10)
        assert info.value.response.status_code == 403
        assert b'"error"' in info.value.response.body
    with ws_client.connect(ws_url + "?since=0", origin=url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["seq"] == 1


@pytest.fixture(scope="module")
def token_server(forker, tmp_path_factory):
    root = tmp_path_factory.mktemp("token")
    port = free_port()
    pid = forker.start(port, f"sqlite:///{root / 'ledger.db'}", root / "server.log", TOKEN)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/health", headers=_auth(), timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        forker.kill(pid)


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/paper"), ("GET", "/bots"), ("GET", "/kill-switch"),
     ("POST", "/kill-switch"), ("POST", "/paper/stop-all"), ("POST", "/bots/halt-all"),
     ("POST", "/bots"), ("GET", "/openapi.json"), ("GET", "/health"), ("GET", "/nope")],
)  # fmt: skip
def test_token_server_refuses_requests_without_it(token_server, method, path):
    for headers in ({}, _auth("wrong"), {"Authorization": TOKEN}, {"Cookie": "alphaswarm_token=x"}):
        r = requests.request(method, token_server + path, headers=headers, json={}, timeout=30)
        assert r.status_code == 401, (path, headers, r.status_code, r.text[:200])
        assert r.json()["error"] == "unauthorized"
    state = requests.get(token_server + "/kill-switch", headers=_auth(), timeout=10).json()
    assert state["engaged"] is False, "an unauthenticated kill-switch POST changed nothing"
    if method == "GET":
        r = requests.get(token_server + path, headers=_auth(), timeout=30)
        assert r.status_code in (200, 404), r.text[:200]


def test_token_server_websocket_needs_the_token(token_server):
    ws_url = token_server.replace("http://", "ws://") + "/ws/paper/paper-none"
    with pytest.raises(InvalidStatus) as info:
        ws_client.connect(ws_url, open_timeout=10)
    assert info.value.response.status_code == 401
    with ws_client.connect(ws_url + f"?token={TOKEN}", open_timeout=10) as ws:
        assert "unknown paper run" in ws.recv(timeout=10)  # authorised: then a 4404 close


# --------------------------------------------------------------------- strategy imports

MARKER_MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from alphaswarm.strategies import Strategy

class Evil(Strategy):
    name = "evil"
    def on_bar(self, bar, ctx):
        return None
"""


def test_strategy_references_cannot_import_arbitrary_modules(tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "rel_evil_mod.py").write_text(MARKER_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ALPHASWARM_STRATEGY_MODULES", raising=False)
    for ref in ("rel_evil_mod:Evil", "os:system", "subprocess:Popen", "builtins:object",
                "alphaswarm.strategiesx:Y", "strategies_evil:X", "alphaswarm:Bot"):  # fmt: skip
        with pytest.raises(ModelError, match="not allowed"):  # BotSpecError's base
            Bot(name="evil", strategy=ref)
    assert not marker.exists(), "a refused module was imported anyway"
    assert "rel_evil_mod" not in sys.modules
    monkeypatch.setenv("ALPHASWARM_STRATEGY_MODULES", "rel_evil_mod")
    assert resolve_strategy("rel_evil_mod:Evil").__name__ == "Evil"  # explicitly allowed
    assert marker.exists()
    with pytest.raises(ModelError, match="not a Strategy"):
        resolve_strategy("rel_evil_mod:pathlib")
    assert "rel_evil_mod" not in ALLOWED_MODULES
    sys.modules.pop("rel_evil_mod", None)


def test_strategy_import_refused_over_http(fresh_server):
    url = fresh_server[0]
    r = requests.post(url + "/bots", json={**FAST_BOT, "name": "evil", "strategy": "os:system"},
                      timeout=30)  # fmt: skip
    assert _is_error(r, 422) and "not allowed" in r.json()["detail"]


# --------------------------------------------------------------------- YAML


PYTHON_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "name: !!python/object/apply:os.system ['touch {marker}']\nstrategy: sma_cross",
    "!!python/object:alphaswarm.bots.Bot {{}}",
    "!!python/name:os.system",
    "name: x\nstrategy: !!python/module:os",
]


@pytest.mark.parametrize("text", PYTHON_TAGS)
def test_yaml_python_tags_are_refused(tmp_path, fresh_server, text):
    marker = tmp_path / "pwned"
    doc = text.format(marker=marker)
    with pytest.raises(BotSpecError):
        Bot.from_yaml(doc)
    with pytest.raises(BotSpecError):
        parse_document(doc.encode())
    with pytest.raises(ApiError):
        parse_body(doc.encode())
    r = requests.post(fresh_server[0] + "/bots", data=doc.encode(), timeout=30)
    assert _is_error(r, 400), r.text
    assert not marker.exists()


# --------------------------------------------------------------------- SQL construction

EXECUTORS = {"text", "execute", "exec_driver_sql", "executescript", "executemany", "sql",
             "read_sql", "read_sql_query", "literal_column"}  # fmt: skip
SQL_WORDS = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\b.*\bSET|DELETE\s+FROM|CREATE\s+TABLE|"
    r"DROP\s+TABLE|ALTER\s+TABLE)\b",
    re.S,
)
#: Formatted statements SQL cannot parameterise, each reviewed: (file, source line).
ALLOWED = {
    # PRAGMA takes no bound parameters; the value is an int formatted with :d
    ("alphaswarm/ledger/dialect.py", 'cursor.execute(f"PRAGMA busy_timeout = {timeout_ms:d}")'),
    ("alphaswarm/ledger/connection.py",
     'dbapi.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000)):d}")'),
    ("alphaswarm/ledger/killswitch_conn.py", 'dbapi.execute(f"PRAGMA busy_timeout = {wait_ms:d}")'),
    # SET takes no bound parameters either; ints formatted with :d
    ("alphaswarm/ledger/killswitch_conn.py",
     'conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms:d}")'),
    ("alphaswarm/ledger/killswitch_conn.py",
     'conn.exec_driver_sql(f"SET LOCAL statement_timeout = {wait_ms + 1000:d}")'),
    # LISTEN takes an identifier, not a parameter; the channel is a module constant
    ("alphaswarm/paper/cluster.py", 'conn.execute(f"LISTEN {KILL_SWITCH_CHANNEL}")'),
}  # fmt: skip
#: Migrations whose formatted SQL names tables and columns only (identifiers cannot be
#: bound), taken from the migration's own frozen constants, never from input.
FROZEN_IDENTIFIER_FILES = {"alphaswarm/ledger/migrations/versions/0005_utc_timestamps.py"}


def _formatted(node: ast.AST) -> str | None:
    """The literal text of an f-string, ``%`` or ``.format`` expression (None otherwise)."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        for side in (node.left, node.right):
            if isinstance(side, ast.Constant) and isinstance(side.value, str):
                return side.value
            inner = _formatted(side)
            if inner is not None:
                return inner
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format" and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)):  # fmt: skip
        return node.func.value.value
    return None


def test_no_sql_is_built_by_string_formatting():
    found: list[str] = []
    files = sorted((ROOT / "alphaswarm").rglob("*.py"))
    assert len(files) > 30
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in FROZEN_IDENTIFIER_FILES:
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            text = None
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                if name in EXECUTORS and node.args:
                    text = _formatted(node.args[0])
                    if text is not None:
                        where = (rel, lines[node.lineno - 1].strip())
                        if where not in ALLOWED:
                            found.append(f"{rel}:{node.lineno}: {where[1]}")
                        continue
            text = _formatted(node) if isinstance(node, ast.JoinedStr | ast.BinOp) else None
            if text is None and isinstance(node, ast.Call):
                text = _formatted(node)
            if text and SQL_WORDS.search(text):
                found.append(f"{rel}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not found, "SQL built by string formatting:\n" + "\n".join(found)
