"""``alphaswarm --url``: the same commands against a real ``alphaswarm serve`` subprocess."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import urllib.request

import pytest

from tests.cli.helpers import assert_clean_error, command, wait_for
from tests.ports import free_port as _free_port

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("alphaswarm.server.app") is None,
    reason="alphaswarm.server.app is missing: no server to talk to",
)


def _healthy(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{url}/health", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with opener.open(request, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


TOKEN = "s3cret-token"


@pytest.fixture
def server(cli, tmp_path):
    """A real server on a free loopback port, with its own ledger file and a token.

    ``cli.env`` carries the token as ``ALPHASWARM_TOKEN``, so every command sends it.
    """
    cli.env["ALPHASWARM_TOKEN"] = TOKEN
    port = _free_port()
    db = tmp_path / "server.db"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [*command(), "serve", "--port", str(port), "--db", f"sqlite:///{db}"],
        env=cli.env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url) or proc.poll() is not None, timeout=90, interval=0.25)
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
        yield url, db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_bots_backtest_paper_run_and_kill_over_the_api(cli, server):
    url, db = server
    bot = cli.write_bot()

    created = cli.run("--url", url, "--json", "bots", "create", str(bot))
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["bot_id"] == "cli-demo"

    backtest = cli.run("--url", url, "backtest", "cli-demo", "--bars", "7800")
    assert backtest.returncode == 0, backtest.stderr
    assert backtest.stdout.startswith("backtest bt-") and "sharpe" in backtest.stdout

    run = cli.run("--url", url, "paper", "run", "cli-demo", "--speed", "0", "--max-bars", "60")
    assert run.returncode == 0, run.stderr
    assert "session.started" in run.stdout and "bar.received" in run.stdout
    assert "done" in run.stdout
    assert run.stdout.splitlines()[-1].startswith("[completed]")

    from alphaswarm.ledger import Ledger

    def running():
        with Ledger(url=f"sqlite:///{db}") as ledger:
            runs = ledger.list_runs(status="running")
        return runs[0] if runs else None

    proc = cli.popen("--url", url, "paper", "run", "cli-demo", "--speed", "60", "--quiet")
    try:
        live = wait_for(running, timeout=30)
        kill = cli.run("--url", url, "kill", "--reason", "remote kill")
        assert kill.returncode == 0, kill.stderr
        assert "kill switch ENGAGED" in kill.stdout
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 3, (proc.stdout.read(), proc.stderr.read())

    status, refused, listed, wrong = cli.run_many(
        ("--url", url, "--json", "kill", "--status"),
        ("--url", url, "paper", "run", "cli-demo", "--speed", "0", "--max-bars", "5"),
        ("--url", url, "paper", "list"),
        ("--url", url, "--token", "wrong", "bots", "list"),
    )
    assert "401" in assert_clean_error(wrong) and "--token" in wrong.stderr
    assert json.loads(status.stdout)["engaged"] is True
    assert "kill switch" in assert_clean_error(refused, code=3)
    assert live["id"] in listed.stdout and "killed" in listed.stdout

    reset = cli.run("--url", url, "kill", "--reset")
    assert reset.returncode == 0 and "engaged  no" in reset.stdout

    shown = json.loads(cli.run("--url", url, "--json", "paper", "show", live["id"]).stdout)
    assert shown["status"] == "killed" and shown["stop_reason"] == "remote kill"
