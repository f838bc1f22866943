"""The tutorial's and first-bot's commands, run literally with the real curl binary."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import textwrap

import pytest

from .conftest import wait_until

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="the curl binary is not installed")

BOT_YAML = textwrap.dedent(
    """\
    name: MyFirstBot
    kind: trading
    description: My first trading bot, from the first-bot tutorial.
    strategy_config: configs/strategies/my_first_strategy.yaml
    engine: event_driven
    data: {feed: synthetic, seed: 1, interval: 1m}
    risk:
      max_position_pct: 0.5
      max_daily_loss_pct: 0.02
      kill_switch_attached: true
    metrics:
      - sharpe
      - sortino
      - max_drawdown
      - hit_rate
    deploy_target: paper
    """
)
STRATEGY_YAML = "strategy: sma_cross\nparams:\n  fast: 10\n  slow: 30\n"


def curl(command: str, cwd) -> dict:
    """Run a tutorial command (a shell line) and return its JSON answer."""
    out = subprocess.run(
        command + " -s -S --max-time 30", shell=True, cwd=cwd, capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_tutorial_commands_with_curl(api, demo_bot, server, ledger_path, tmp_path, monkeypatch):
    (tmp_path / "configs" / "strategies").mkdir(parents=True)
    (tmp_path / "configs" / "strategies" / "my_first_strategy.yaml").write_text(STRATEGY_YAML)
    (tmp_path / "bot.yaml").write_text(BOT_YAML)
    monkeypatch.chdir(tmp_path)  # strategy_config resolves against the server's directory
    base = f"http://localhost:{server.port}"

    # first-bot step 1: the YAML file posted as application/json (curl strips its newlines)
    created = curl(
        f'curl -X POST {base}/bots -H "Content-Type: application/json" -d @bot.yaml', tmp_path
    )
    bot_id = created["bot_id"]
    assert created["spec_hash"] and created["version"] >= 1
    versions = curl(f"curl {base}/bots/{bot_id}/versions", tmp_path)["versions"]
    assert versions[-1]["spec_hash"] == created["spec_hash"]
    assert versions[-1]["spec"]["strategy"] == "sma_cross"

    # first-bot step 2: backtest with dates
    bt = curl(
        f"curl -X POST {base}/bots/{bot_id}/backtest "
        """-d '{"start":"2024-01-01","end":"2024-06-30"}'""",
        tmp_path,
    )
    assert bt["bot_id"] == bot_id and bt["sharpe"] > 0.5

    # tutorial step 1
    bot = curl(f"curl http://localhost:{server.port}/bots/{bot_id}", tmp_path)
    assert bot["backtest_runs"]["id"] == bt["backtest_id"] and bot["sharpe"] != 0

    # tutorial step 2 (and first-bot's start without a duration)
    started = curl(
        f"curl -X POST http://localhost:{server.port}/bots/{bot_id}/paper \\\n"
        """-d '{"starting_cash":100000,"duration_minutes":60}'""",
        tmp_path,
    )
    run_id = started["paper_run_id"]
    assert started["stream_url"] == f"/ws/paper/{run_id}" and started["status"] == "running"
    second = curl(
        f"""curl -X POST {base}/bots/{bot_id}/paper -d '{{"starting_cash":100000}}'""", tmp_path
    )
    other = api.post(f"/bots/{demo_bot}/paper", {"speed": 60}).json()["paper_run_id"]

    state = curl(f"curl {base}/kill-switch", tmp_path)
    assert state["engaged"] is False

    # first-bot step 4: /bots/halt-all on its own stops every session of every bot
    halted = curl(f"curl -X POST {base}/bots/halt-all", tmp_path)
    assert halted["halted"] == 3 and halted["failures"] == []
    for rid in (run_id, second["paper_run_id"], other):
        assert api.get(f"/paper/{rid}").json()["status"] == "killed"

    # the rest of the topbar fan-out answers too, with nothing left to halt
    for route in ("/paper/stop-all", "/agents/halt", "/rl/halt-all", "/workflows/halt",
                  "/terraform/halt", "/quant-agents/halt"):  # fmt: skip
        answer = curl(f"curl -X POST {base}{route}", tmp_path)
        assert answer["halted"] == 0 and answer["failures"] == []

    # tutorial step 5, verbatim
    with sqlite3.connect(ledger_path) as db:
        row = db.execute(
            """SELECT id, bot_id, status, total_pnl, num_fills, started_at, ended_at
FROM paper_trading_runs ORDER BY started_at DESC LIMIT 1;"""
        ).fetchone()
        assert row[2] == "killed" and row[3] is not None and row[6] is not None
        fills = db.execute(
            """SELECT order_id, symbol, side, qty, price, filled_at
FROM paper_fills
WHERE paper_run_id = '<from_above>'
ORDER BY filled_at;""".replace("<from_above>", row[0])
        ).fetchall()
    assert len(fills) == row[4]
    wait_until(lambda: api.get("/paper?status=running").json()["runs"] == [])
