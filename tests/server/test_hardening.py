"""Attacks and bad input against a real server: Host rule, logs, body limits, pools, bad input.

Issue 19, items 3, 7, 8, 10 and 11: every refusal is a JSON 4xx (or 503) and changes
nothing; the kill switch answers while every other pool is full.
"""

from __future__ import annotations

import json
import logging
import resource
import socket
import threading
from typing import TYPE_CHECKING, Any

import pytest
import requests
import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

from alphaswarm.paper.killswitch import kill_switch
from alphaswarm.server import ServerThread
from alphaswarm.server.errors import MAX_BODY_BYTES

from .conftest import Api, free_port, running_session, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "hardening-token-7f3a9c"


def raw_request(
    port: int, head: str, body: bytes = b"", read: bool = True
) -> tuple[int, dict, bytes]:
    """Send ``head`` (request line + headers, no blank line) and ``body``; parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        return read_response(sock) if read else (0, {}, b"")


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover


# --------------------------------------------------------------------------- item 7: Host


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/kill-switch", "{}"),
        ("GET", "/bots", ""),
        ("GET", "/", ""),  # the dashboard (a Bokeh route)
        ("GET", "/no/such/page", ""),
        ("GET", "/openapi.json", ""),
    ],
)
def test_a_foreign_host_is_refused_before_anything_else(api, server, method, path, body):
    evil = f"evil.example:{server.port}"
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close"
    )
    status, headers, payload = raw_request(server.port, head, body.encode())
    assert status == 421, (path, status, payload[:200])
    assert headers["content-type"].startswith("application/json")
    assert json.loads(payload)["error"] == "unknown_host"
    assert api.get("/kill-switch").json()["engaged"] is False


@pytest.mark.parametrize("path", ["/ws/paper/{run}", "/ws"])
def test_a_websocket_upgrade_to_a_foreign_host_is_refused(api, demo_bot, server, path):
    with running_session(api, demo_bot) as run_id:
        evil = f"evil.example:{server.port}"
        head = (
            f"GET {path.format(run=run_id)} HTTP/1.1\r\nHost: {evil}\r\n"
            f"Origin: http://{evil}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
        )
        status, _, payload = raw_request(server.port, head)
        assert status == 421, payload[:200]
        assert json.loads(payload)["error"] == "unknown_host"


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LOCALHOST"]
)
def test_loopback_host_names_are_accepted(server, host):
    head = f"GET /health HTTP/1.1\r\nHost: {host.format(port=server.port)}\r\nConnection: close"
    status, _, payload = raw_request(server.port, head)
    assert status == 200 and json.loads(payload) == {"status": "ok"}


def test_allow_host_adds_a_name(server_ledger):
    thread = ServerThread(
        "127.0.0.1", free_port(), ledger=server_ledger, dashboard=False,
        allow_hosts=["trading.internal"],
    ).start()  # fmt: skip
    try:
        for host, expected in (("trading.internal", 200), ("other.internal", 421)):
            head = f"GET /health HTTP/1.1\r\nHost: {host}:{thread.port}\r\nConnection: close"
            assert raw_request(thread.port, head)[0] == expected, host
    finally:
        thread.stop()


# --------------------------------------------------------------------------- item 8: logs


@pytest.fixture(scope="module")
def token_server(server_ledger) -> Iterator[ServerThread]:
    thread = ServerThread("127.0.0.1", free_port(), ledger=server_ledger, token=TOKEN).start()
    wait_until(
        lambda: requests.get(thread.url + f"/health?token={TOKEN}", timeout=5).status_code == 200
    )
    yield thread
    thread.stop()


def test_tokens_never_reach_the_log(token_server, caplog):
    wrong = "wrong-token-5511"
    # Dask's logging config (loaded by earlier tests) sets tornado's loggers to CRITICAL
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="tornado.access"):
        assert (
            requests.get(token_server.url + f"/bots?token={wrong}", timeout=60).status_code == 401
        )
        r = requests.get(token_server.url + f"/no/such/route?token={TOKEN}", timeout=60)
        assert r.status_code == 404
        r = requests.post(token_server.url + f"/kill-switch?token={TOKEN}", data="[1]", timeout=60)
        assert r.status_code == 400
        r = requests.get(token_server.url + f"/static/no-such-file.js?token={TOKEN}", timeout=60)
        assert r.status_code == 404  # a Bokeh handler, built on this first page request
        with pytest.raises(Exception):  # noqa: B017, PT011 - refused upgrade
            ws_client.connect(
                token_server.url.replace("http", "ws") + f"/ws/paper/x?token={wrong}",
                open_timeout=5,
            )
        wait_until(lambda: "/kill-switch?token=***" in caplog.text)
    assert wrong not in caplog.text
    assert TOKEN not in caplog.text
    assert "/bots?token=***" in caplog.text


# --------------------------------------------------------------------------- item 10: bodies


def test_an_oversized_body_is_refused_from_its_headers(api, server):
    size = 50 * 1024 * 1024
    before = rss_bytes()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"POST /kill-switch HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        status, headers, payload = read_response(sock)  # answered before any body byte
        block = b"x" * (1024 * 1024)
        sent = 0
        try:
            while sent < size:
                sock.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the server closed the connection: the rest is never read
    assert status == 413
    assert json.loads(payload)["error"] == "payload_too_large"
    assert headers.get("connection", "").lower() == "close"
    assert rss_bytes() - before < 20 * 1024 * 1024
    assert api.get("/kill-switch").json()["engaged"] is False


def test_a_chunked_body_over_the_limit_is_refused(api, server):
    chunk = b"{" * (256 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    head = (
        f"POST /kill-switch HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close"
    )
    status, _, payload = raw_request(server.port, head, body)
    assert status == 413 and json.loads(payload)["error"] == "payload_too_large"
    assert api.get("/kill-switch").json()["engaged"] is False
    assert 6 * len(chunk) > MAX_BODY_BYTES


def test_a_body_at_the_limit_is_read(api):
    reason = "r" * 900
    body = json.dumps({"reason": reason}).encode().ljust(MAX_BODY_BYTES, b" ")
    r = api.post("/paper/stop-all", raw=body)
    assert r.status_code == 200, r.text[:300]


# --------------------------------------------------------------------------- item 3: pools


@pytest.fixture
def tight_server(server_ledger) -> Iterator[tuple[ServerThread, Any]]:
    from alphaswarm.server.capacity import Capacity

    capacity = Capacity(heavy_workers=1, heavy_queue=0, light_workers=1)
    thread = ServerThread(
        "127.0.0.1", free_port(), ledger=server_ledger, dashboard=False, capacity=capacity
    ).start()
    yield thread, capacity
    thread.stop()
    capacity.shutdown()
    kill_switch().reset()


def test_a_full_pool_answers_503_and_the_kill_switch_still_engages(tight_server, demo_bot):
    thread, capacity = tight_server
    client = Api(thread.url)
    slot = capacity.admit("test")  # the one heavy slot: taken
    gate = threading.Event()
    blocker = capacity.light.submit(gate.wait, 120)  # the one ordinary thread: busy
    try:
        r = client.post(f"/bots/{demo_bot}/backtest", {"bars": 500})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"].isdigit()
        assert r.json()["error"] == "busy"
        r = client.post(f"/bots/{demo_bot}/paper", {"force": True, "reason": "busy"})
        assert r.status_code == 503
        # a big body would be parsed in the full pool: refused too, never parsed on the loop
        r = client.post("/bots", raw=b"name: big\n" + b"# pad\n" * 5000)
        assert r.status_code == 503
        # a big body to the kill switch is parsed in the full pool too: it cannot take
        # the kill path's own threads
        padded = json.dumps({"reason": "big"}).encode() + b" " * 8192
        assert client.post("/kill-switch", raw=padded).status_code == 503
        assert client.get("/kill-switch").json()["engaged"] is False
        r = client.post("/kill-switch", {"reason": "while saturated"})
        assert r.status_code == 200, r.text
        assert r.json()["engaged"] is True
        assert r.json()["request_to_engage_ms"] >= 0
        r = client.post("/kill-switch/reset", {})
        assert r.status_code == 200 and r.json()["engaged"] is False
    finally:
        gate.set()
        slot()
        blocker.result(30)
    r = client.post(f"/bots/{demo_bot}/backtest", {"bars": 500})
    assert r.status_code == 201, r.text


def test_nested_yaml_is_refused_quickly_by_its_budget(api):
    body = "".join(" " * i + "a:\n" for i in range(200)).encode()
    r = api.post("/bots", raw=body)
    assert r.status_code == 400
    assert "nested deeper" in r.json()["detail"]
    r = api.post("/bots", raw=b"a: &x [1]\nb: *x\nname: n\n")
    assert r.status_code == 400 and "aliases" in r.json()["detail"]


# --------------------------------------------------------------------------- item 11


def test_a_huge_limit_is_a_4xx(api):
    r = api.get("/paper?limit=" + "9" * 30)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    r = api.get("/paper?limit=100001")
    assert r.status_code == 422


def test_a_huge_since_closes_the_websocket_with_4400(api, demo_bot):
    with running_session(api, demo_bot) as run_id:
        url = f"{api.ws_url}/ws/paper/{run_id}?since={'9' * 26}"
        with ws_client.connect(url, open_timeout=5) as ws:
            frames = []
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    frames.append(json.loads(ws.recv(timeout=15)))
        assert info.value.rcvd.code == 4400
        assert frames and frames[-1]["stage"] == "error"


@pytest.mark.parametrize("body", [b"\x1e", b"\n", b" ", b"\x00", b"null", b"[]", b"\x1c\x1d"])
def test_control_character_bodies_do_not_engage_or_reset(api, body):
    r = api.post("/kill-switch", raw=body)
    assert r.status_code == 400, (body, r.status_code)
    assert api.get("/kill-switch").json()["engaged"] is False
    assert api.post("/kill-switch", {"reason": "latched"}).status_code == 200
    r = api.post("/kill-switch/reset", raw=body)
    assert r.status_code == 400
    assert api.get("/kill-switch").json()["engaged"] is True


def test_an_empty_body_still_means_no_options(api):
    r = api.post("/kill-switch", raw=b"")
    assert r.status_code == 200 and r.json()["engaged"] is True
    assert api.post("/kill-switch/reset", raw=b"").json()["engaged"] is False


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/kill-switch", {"reason": None}),
        ("/kill-switch", {"mode": None}),
        ("/paper/stop-all", {"reason": None}),
        ("/kill-switch/reset", {"bot": None}),
    ],
)
def test_null_strings_are_refused(api, path, body):
    r = api.post(path, body)
    assert r.status_code == 400, r.text
    assert "null" in r.json()["detail"]
    assert api.get("/kill-switch").json()["engaged"] is False


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/kill-switch", "GET, POST"),
        ("DELETE", "/bots", "GET, POST"),
        ("GET", "/paper/stop-all", "POST"),
        ("POST", "/paper", "GET"),
    ],
)
def test_405_names_the_allowed_methods(api, method, path, allow):
    r = api.session.request(method, api.url + path, timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == allow
    assert r.json()["error"] == "method_not_allowed"


def test_a_bad_replay_file_is_a_422(api, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bars.csv").write_text("when,price\nyesterday,1\n")
    spec = {
        "name": "bad-replay", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20},
        "universe": ["X"], "data": {"feed": "replay", "path": "bars.csv"},
    }  # fmt: skip
    bot_id = api.post("/bots", spec).json()["bot_id"]
    r = api.post(f"/bots/{bot_id}/backtest", {"bars": 100})
    assert r.status_code == 422, r.text
    (tmp_path / "bars.csv").write_bytes(b"\x00\xff garbage")
    r = api.post(f"/bots/{bot_id}/backtest", {"bars": 100})
    assert r.status_code == 422, r.text


def test_an_unservable_universe_symbol_is_the_gates_409(api):
    spec = {
        "name": "unservable", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20},
        "universe": ["ZZZZ"], "data": {"feed": "sample"},
        "risk": {"kill_switch_attached": True},
    }  # fmt: skip
    bot_id = api.post("/bots", spec).json()["bot_id"]
    for body in ({}, {"force": True, "reason": "try anyway"}):
        r = api.post(f"/bots/{bot_id}/paper", body)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "gate_refused"
        assert any("ZZZZ" in e for e in r.json()["errors"])
    assert api.get(f"/paper?bot_id={bot_id}").json()["runs"] == []


def test_the_server_starts_on_ipv6_loopback(server_ledger):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback (::1)")
    thread = ServerThread("::1", free_port(), ledger=server_ledger, dashboard=False).start()
    try:
        r = requests.get(thread.url + "/health", timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
    finally:
        thread.stop()


def test_serve_flags_reach_the_host_rule_and_the_spec_policy(tmp_path):
    import os
    import sys
    from pathlib import Path

    from .test_processes import start, stop

    data = tmp_path / "data"
    data.mkdir()
    (data / "bars.csv").write_text("ts,open,high,low,close,volume,symbol\n")
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("ALPHASWARM_TOKEN", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        str(Path(sys.executable).parent / "alphaswarm"), "--db", f"sqlite:///{tmp_path / 'l.db'}",
        "serve", "--port", str(port), "--allow-host", "trading.internal",
        "--data-dir", str(data), "--feed-url", "http://127.0.0.1:9",
    ]  # fmt: skip
    proc = start(cmd, env, url)
    try:
        head = f"GET /health HTTP/1.1\r\nHost: trading.internal:{port}\r\nConnection: close"
        assert raw_request(port, head)[0] == 200
        head = f"GET /health HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close"
        assert raw_request(port, head)[0] == 421
        spec = {"name": "flags", "strategy": "buy_and_hold", "universe": ["X"]}
        ok = {**spec, "data": {"feed": "replay", "path": str(data / "bars.csv")}}
        assert requests.post(url + "/bots", json=ok, timeout=30).status_code == 201
        outside = {**spec, "data": {"feed": "replay", "path": str(tmp_path / "x.csv")}}
        assert requests.post(url + "/bots", json=outside, timeout=30).status_code == 422
        urls = {"feed": "alpaca", "urls": {"data": "http://127.0.0.1:9/v2"}}
        assert requests.post(url + "/bots", json={**spec, "data": urls}, timeout=30).ok
    finally:
        stop(proc)
