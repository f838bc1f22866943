"""Origin and token rules, and the refusal to listen off loopback without a token."""

from __future__ import annotations

import sys

import pytest
import requests
import websockets.sync.client as ws_client
from websockets.exceptions import InvalidStatus

from alphaswarm.server import ServerThread, serve
from alphaswarm.server.security import Security, ServerConfigError, check_bind, same_origin

from .conftest import Api, free_port, running_session, wait_until

TOKEN = "s3cret-token"


def test_cross_origin_post_refused(api, demo_bot):
    r = api.post("/kill-switch", {}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert api.get("/kill-switch").json()["engaged"] is False
    r = api.post(f"/bots/{demo_bot}/paper", {}, headers={"Origin": "null"})
    assert r.status_code == 403
    assert api.get("/paper?status=running").json()["runs"] == []


def test_same_origin_post_allowed(api):
    origin = api.url  # http://127.0.0.1:<port>
    r = api.post("/paper/stop-all", {}, headers={"Origin": origin})
    assert r.status_code == 200, r.text


def test_foreign_origin_websocket_refused(api, demo_bot):
    with running_session(api, demo_bot) as run_id:
        url = f"{api.ws_url}/ws/paper/{run_id}"
        with pytest.raises(InvalidStatus) as info:
            ws_client.connect(url, origin="http://evil.example", open_timeout=5)
        assert info.value.response.status_code == 403
        with ws_client.connect(url, origin=api.url, open_timeout=5) as ws:
            assert ws.recv(timeout=10)


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        (None, "localhost:8000", True),
        ("http://localhost:8000", "localhost:8000", True),
        ("http://LOCALHOST:8000", "localhost:8000", True),
        ("http://localhost:8001", "localhost:8000", False),
        ("http://127.0.0.1:8000", "localhost:8000", False),
        ("https://example.com", "example.com", True),
        ("http://example.com", "example.com:80", True),
        ("null", "localhost:8000", False),
        ("file://", "localhost:8000", False),
        ("http://[::1", "localhost:8000", False),
    ],
)
def test_same_origin_rule(origin, host, ok):
    assert same_origin(origin, host) is ok


def test_non_loopback_without_token_refuses_to_start(monkeypatch):
    monkeypatch.delenv("ALPHASWARM_TOKEN", raising=False)
    with pytest.raises(ServerConfigError, match="token"):
        serve(address="0.0.0.0", port=free_port())
    with pytest.raises(ServerConfigError):
        check_bind("192.168.1.10", Security())
    check_bind("0.0.0.0", Security(token="x"))
    check_bind("127.0.0.1", Security())
    check_bind("::1", Security())
    check_bind("localhost", Security())


@pytest.mark.parametrize("bad", [0, -1, 101])
def test_a_switch_interval_out_of_range_refuses_to_start(bad):
    before = sys.getswitchinterval()
    with pytest.raises(ServerConfigError, match="switch_interval_ms"):
        serve(port=free_port(), switch_interval_ms=bad)
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("tuned", [False, True])
def test_serve_changes_the_switch_interval_only_when_tuned(monkeypatch, tuned):
    from alphaswarm.paper import tuning
    from alphaswarm.server import app

    class Stop(Exception):
        pass

    seen = []

    def stop(*_a, **_k):
        seen.append((sys.getswitchinterval(), tuning.enabled()))
        raise Stop

    monkeypatch.setattr(app, "_prepare_ledger", stop)
    before = sys.getswitchinterval()
    try:
        with pytest.raises(Stop):
            serve(port=free_port(), switch_interval_ms=2.5, tune_interpreter=tuned)
        assert seen == [(0.0025, True)] if tuned else seen == [(before, False)]
        assert sys.getswitchinterval() == before, "undone when the server stops"
        assert not tuning.enabled()
    finally:
        tuning.disable()
        sys.setswitchinterval(before)


@pytest.fixture(scope="module")
def token_server(server_ledger):
    thread = ServerThread("127.0.0.1", free_port(), ledger=server_ledger, token=TOKEN).start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    wait_until(lambda: requests.get(thread.url + "/health", headers=auth, timeout=5).ok)
    yield thread
    thread.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/bots"),
        ("GET", "/kill-switch"),
        ("POST", "/kill-switch"),
        ("POST", "/bots/halt-all"),
        ("POST", "/paper/stop-all"),
        ("GET", "/openapi.json"),
        ("GET", "/"),
    ],
)
def test_token_required_everywhere(api, token_server, method, path):
    r = requests.request(method, token_server.url + path, data="{}", timeout=10)
    assert r.status_code == 401, (path, r.status_code)
    assert r.json()["error"] == "unauthorized"
    r = requests.request(
        method, token_server.url + path, data="{}", timeout=10,
        headers={"Authorization": "Bearer wrong"},
    )  # fmt: skip
    assert r.status_code == 401
    assert api.get("/kill-switch").json()["engaged"] is False


def test_token_grants_access(api, token_server):
    client = Api(token_server.url, {"Authorization": f"Bearer {TOKEN}"})
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/bots").status_code == 200
    assert client.get("/").status_code == 200  # the dashboard page
    r = client.post("/kill-switch", {"reason": "token test"})
    assert r.status_code == 200 and r.json()["engaged"] is True


def test_dashboard_token_query_sets_cookie(token_server):
    with requests.Session() as browser:
        r = browser.get(token_server.url + f"/?token={TOKEN}", timeout=30)
        assert r.status_code == 200
        assert r.url.rstrip("/") == token_server.url  # the token left the address bar
        assert "alphaswarm_token" in browser.cookies
        assert browser.get(token_server.url + "/bots", timeout=10).status_code == 200
    assert requests.get(token_server.url + "/?token=nope", timeout=10).status_code == 401


def test_websocket_needs_token(api, demo_bot, token_server):
    with running_session(api, demo_bot) as run_id:
        url = f"{token_server.url.replace('http', 'ws')}/ws/paper/{run_id}"
        with pytest.raises(InvalidStatus) as info:
            ws_client.connect(url, open_timeout=5)
        assert info.value.response.status_code == 401
        with ws_client.connect(f"{url}?token={TOKEN}", open_timeout=5) as ws:
            assert ws.recv(timeout=10)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with ws_client.connect(url, additional_headers=headers, open_timeout=5) as ws:
            assert ws.recv(timeout=10)


def test_a_refused_request_with_a_body_closes_its_connection_and_says_so(api):
    """The body of a refused request is never read, so the server closes the connection:
    the answer must say ``Connection: close`` or a keep-alive client's next request on
    that connection is reset."""
    import time

    session = requests.Session()
    r = session.post(
        api.url + "/kill-switch", data=b"{}", headers={"Origin": "http://evil.example"}
    )
    assert r.status_code == 403
    assert r.headers.get("Connection", "").lower() == "close"
    time.sleep(0.2)  # the server has closed its end by now
    assert session.get(api.url + "/kill-switch", timeout=10).status_code == 200
