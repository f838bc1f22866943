"""What a bot spec sent over HTTP may name (issue 19, items 6 and 9).

Credentials only from the documented variables (or ones the server allows),
provider URLs only from the server's allow-list, files only under its data and
strategy directories; a refusal is a 422 that shows nothing of the file.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING

import pytest

from alphaswarm.bots import BotSpecError
from alphaswarm.server import ServerThread

from .conftest import Api, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "do-not-send-me-0c1d"


def bot(name: str, **extra) -> dict:
    return {
        "name": name,
        "strategy": "buy_and_hold",
        "universe": ["AAPL"],
        "risk": {"kill_switch_attached": True},
        **extra,
    }


class Catcher:
    """A loopback HTTP server recording every request it receives."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append((self.path, dict(self.headers)))
                self.send_response(404)
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    c = Catcher()
    yield c
    c.close()


@pytest.mark.parametrize(
    "data",
    [
        {"feed": "alpaca", "key_env": "ALPHASWARM_TOKEN"},
        {"feed": "alpaca", "secret_env": "DATABASE_PASSWORD"},
        {"feed": "alpaca", "urls": {"data": "http://evil.example/steal"}},
        {"feed": "alpaca", "urls": {"stream": "wss://evil.example/"}},
        {"feed": "alpaca", "urls": "http://evil.example"},
        {"feed": "ccxt", "exchange": "binance", "config": {"proxy": "http://evil.example"}},
        {"feed": "ccxt", "exchange": "binance", "config": {"headers": {"X": "y"}}},
        {"feed": "ccxt", "exchange": "binance", "config": {"urls": {"api": "http://evil.example"}}},
    ],
)
def test_a_spec_naming_credentials_or_urls_is_a_422(api, data):
    r = api.post("/bots", bot("exfil", data=data))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid"
    assert api.get("/bots/exfil").status_code == 404


def test_a_stored_spec_cannot_send_secrets_when_started_over_http(
    api, server_ledger, catcher, monkeypatch
):
    """A spec registered from Python may point anywhere; over HTTP it is refused before
    any feed (and the gate's coverage check) could contact the URL."""
    monkeypatch.setenv("MY_SECRET_KEY", SECRET)
    from alphaswarm.bots import Bot

    spec = Bot(
        bot(
            "stored-exfil",
            data={
                "feed": "alpaca",
                "key_env": "MY_SECRET_KEY",
                "secret_env": "MY_SECRET_KEY",
                "urls": {"data": catcher.url, "trading": catcher.url, "stream": catcher.url},
            },
        )
    )  # a Python user may build it locally
    bot_id, _, _ = server_ledger.register_bot(spec.name, spec.spec, spec.spec_hash)
    for path, body in ((f"/bots/{bot_id}/paper", {"force": True, "reason": "x"}),
                       (f"/bots/{bot_id}/backtest", {"bars": 10})):  # fmt: skip
        r = api.post(path, body)
        assert r.status_code == 422, r.text
    assert catcher.seen == []


def test_a_server_allow_list_admits_a_loopback_provider(server_ledger, catcher):
    from alphaswarm.spec_policy import SpecPolicy

    policy = SpecPolicy.create(feed_urls=[catcher.url], credential_envs=["MY_KEY"])
    thread = ServerThread(
        "127.0.0.1", free_port(), ledger=server_ledger, dashboard=False, policy=policy
    ).start()
    try:
        client = Api(thread.url)
        data = {
            "feed": "alpaca",
            "key_env": "MY_KEY",
            "urls": {"data": catcher.url + "/v2", "stream": catcher.url.replace("http", "ws")},
        }
        r = client.post("/bots", bot("allowed-provider", data=data))
        assert r.status_code == 201, r.text
        other = {"feed": "alpaca", "urls": {"data": "http://127.0.0.1:1/"}}
        assert client.post("/bots", bot("other-port", data=other)).status_code == 422
    finally:
        thread.stop()


# --------------------------------------------------------------------------- item 9: files


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """The server works in ``tmp/work``; ``tmp/outside`` holds a secret file."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    monkeypatch.chdir(work)
    (outside / "secret.yaml").write_text(f"strategy: sma_cross\n{SECRET}: 1\n")
    (outside / "secret.csv").write_text(f"{SECRET},b\n1,2\n")
    (work / "link.yaml").symlink_to(outside / "secret.yaml")
    return work, outside


@pytest.mark.parametrize(
    "ref",
    ["{outside}/secret.yaml", "../outside/secret.yaml", "link.yaml", "~/secret.yaml",
     "/etc/passwd"],
)  # fmt: skip
def test_strategy_config_outside_the_strategy_dirs_is_refused_unread(api, roots, caplog, ref):
    _, outside = roots
    with caplog.at_level(logging.DEBUG):
        r = api.post("/bots", bot("outside-config", strategy_config=ref.format(outside=outside)))
    assert r.status_code == 422, r.text
    assert "strategy_config" in r.json()["detail"]
    assert SECRET not in r.text and SECRET not in caplog.text
    assert "root:" not in r.text


@pytest.mark.parametrize("feed", ["replay", "recording"])
def test_a_data_path_outside_the_data_dirs_is_refused_unread(api, roots, caplog, feed):
    _, outside = roots
    with caplog.at_level(logging.DEBUG):
        for path in (str(outside / "secret.csv"), "../outside/secret.csv"):
            r = api.post("/bots", bot(f"outside-{feed}", data={"feed": feed, "path": path}))
            assert r.status_code == 422, r.text
            assert SECRET not in r.text
    assert SECRET not in caplog.text


def test_a_record_path_outside_the_data_dirs_is_refused(api, roots):
    _, outside = roots
    data = {"feed": "ccxt", "exchange": "binance", "record": str(outside / "x.parquet")}
    r = api.post("/bots", bot("outside-record", data=data))
    assert r.status_code == 422 and "data.record" in r.json()["detail"]


def test_files_inside_the_roots_are_read(api, roots):
    work, _ = roots
    (work / "conf.yaml").write_text("strategy: sma_cross\nparams: {fast: 5, slow: 20}\n")
    spec = bot("inside-config", strategy_config="conf.yaml")
    del spec["strategy"]
    r = api.post("/bots", spec)
    assert r.status_code in (200, 201), r.text
    params = api.get("/bots/inside-config").json()["spec"]["params"]
    assert (params["fast"], params["slow"]) == (5, 20)


# --------------------------------------------------------------------------- Python


def test_python_users_may_check_a_spec_as_the_server_does(tmp_path):
    from alphaswarm.spec_policy import SpecPolicy, check_remote_spec

    policy = SpecPolicy.create(data_dirs=[tmp_path])
    check_remote_spec({"data": {"feed": "replay", "path": str(tmp_path / "a.csv")}}, policy)
    with pytest.raises(BotSpecError, match="data.path"):
        check_remote_spec({"data": {"feed": "replay", "path": "/etc/passwd"}}, policy)
    with pytest.raises(BotSpecError, match="key_env"):
        check_remote_spec({"data": {"feed": "alpaca", "key_env": "HOME"}}, policy)
    with pytest.raises(ValueError, match="feed URL"):
        SpecPolicy.create(feed_urls=["not a url"])
