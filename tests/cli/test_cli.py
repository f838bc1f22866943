"""The ``alphaswarm`` command against the embedded ledger, as real subprocesses."""

from __future__ import annotations

import json
import signal
import threading

import numpy as np
import pandas as pd
import yaml

from tests.cli.helpers import assert_clean_error, wait_for


def _json(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _running_run(cli) -> dict | None:
    with cli.ledger() as ledger:
        runs = ledger.list_runs(status="running")
    return runs[0] if runs else None


def _run_row(cli, run_id: str) -> dict:
    with cli.ledger() as ledger:
        return ledger.get_run(run_id)


def _latest_run(cli) -> dict:
    with cli.ledger() as ledger:
        return ledger.list_runs(limit=1)[0]


def _collect(stream, lines: list[str]) -> threading.Thread:
    """Read a pipe into ``lines`` in the background (so the child never blocks on it)."""

    def pump() -> None:
        for line in stream:
            lines.append(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- help


def test_help_lists_commands_and_exit_codes(cli):
    top, run, kill = cli.run_many(("--help",), ("paper", "run", "--help"), ("kill", "-h"))
    assert top.returncode == 0
    for word in ("serve", "bots", "backtest", "paper", "kill", "demo", "--url", "--db", "130"):
        assert word in top.stdout
    assert kill.returncode == 0 and "--reset" in kill.stdout and "freeze" in kill.stdout
    assert run.returncode == 0
    assert "SIGINT" in run.stdout and "130" in run.stdout
    assert "--max-bars" in run.stdout and "--force" in run.stdout


# --------------------------------------------------------------------------- bots


def test_bots_create_first_bot_shape_versions_list_show(cli, tmp_path):
    conf = tmp_path / "bots" / "strategies"
    conf.mkdir(parents=True)
    (conf / "sma.yaml").write_text("strategy: sma_cross\nparams: {fast: 5, slow: 20}\n")
    spec = {
        "name": "first-bot",
        "kind": "trading",
        "description": "the first-bot tutorial's shape",
        "strategy_config": "strategies/sma.yaml",  # relative to the bot file
        "engine": "event_driven",
        "universe": ["DEMO"],
        "metrics": ["sharpe", {"name": "max_drawdown", "threshold": 0.2}],
        "deploy_target": "paper",
        "risk": {"max_position_pct": 0.5, "kill_switch_attached": True},
    }
    bot_file = tmp_path / "bots" / "bot.yaml"
    bot_file.write_text(yaml.safe_dump(spec))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    first = cli.run("bots", "create", str(bot_file), cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert "bot_id     first-bot" in first.stdout
    assert "version    1" in first.stdout
    assert "spec_hash" in first.stdout

    again = _json(cli.run("--json", "bots", "create", str(bot_file)))
    assert (again["bot_id"], again["version"], again["created"]) == ("first-bot", 1, False)

    spec["description"] = "changed"
    bot_file.write_text(yaml.safe_dump(spec))
    changed = _json(cli.run("bots", "create", str(bot_file), "--json"))  # option after command
    assert changed["version"] == 2 and changed["spec_hash"] != again["spec_hash"]

    other = tmp_path / "other.db"
    listed, shown, elsewhere = cli.run_many(
        ("bots", "list"), ("bots", "show", "first-bot"), ("--db", str(other), "bots", "list")
    )
    assert listed.returncode == 0
    assert "first-bot" in listed.stdout and "VERSION" in listed.stdout
    assert "no bots yet" in elsewhere.stdout and other.exists()  # --db beats the environment
    assert shown.returncode == 0, shown.stderr
    assert "v1" in shown.stdout and "v2" in shown.stdout
    assert "strategy: sma_cross" in shown.stdout and "fast: 5" in shown.stdout


def test_errors_are_one_readable_line(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstrategy: sma_cross\nfrobnicate: 1\n")
    cli.run("bots", "list")  # creates the ledger before the concurrent commands
    missing, spec, bot, usage, run, both, unreachable, mode = cli.run_many(
        ("bots", "create", str(tmp_path / "nope.yaml")),
        ("bots", "create", str(bad)),
        ("backtest", "no-such-bot"),
        ("paper", "run"),
        ("paper", "show", "paper-nope"),
        ("--url", "http://127.0.0.1:9", "--db", "x.db", "bots", "list"),
        ("--url", "http://127.0.0.1:9", "bots", "list"),
        ("kill", "--mode", "explode"),
    )
    err = assert_clean_error(missing)
    assert "nope.yaml" in err and "No such file" in err

    err = assert_clean_error(spec)
    assert "'frobnicate'" in err and "allowed:" in err
    assert len(err.strip().splitlines()) == 1

    assert "unknown bot 'no-such-bot'" in assert_clean_error(bot)

    err = assert_clean_error(usage)
    assert "FILE_OR_BOT" in err and len(err.strip().splitlines()) == 1

    assert "unknown paper run 'paper-nope'" in assert_clean_error(run)
    assert "not both" in assert_clean_error(both)
    assert "cannot reach the server" in assert_clean_error(unreachable, code=5)
    assert "invalid choice" in assert_clean_error(mode)


# --------------------------------------------------------------------------- backtest


def _replay_csv(path, days=("2024-01-02", "2024-01-03", "2024-01-04")) -> int:
    rng = np.random.default_rng(1)
    frames = []
    for day in days:
        ts = pd.date_range(f"{day} 14:30", periods=390, freq="1min", tz="UTC")
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, len(ts))))
        frames.append(
            pd.DataFrame(
                {
                    "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "symbol": "DEMO",
                    "open": close,
                    "high": close * 1.001,
                    "low": close * 0.999,
                    "close": close,
                    "volume": 1000,
                }
            )
        )
    pd.concat(frames).to_csv(path, index=False)
    return 390


def test_backtest_with_bars_and_with_dates_on_a_replay_csv(cli, tmp_path):
    csv = tmp_path / "bars.csv"
    per_day = _replay_csv(csv)
    bot = cli.write_bot("replay.yaml", name="replay-bot", data={"feed": "replay", "path": str(csv)})

    by_bars = cli.run("backtest", str(bot), "--bars", "200")
    assert by_bars.returncode == 0, by_bars.stderr
    out = by_bars.stdout
    assert out.startswith("backtest bt-")
    for metric in ("sharpe", "sortino", "max_drawdown", "total_return", "num_trades"):
        assert metric in out
    assert "200 bars" in out and "paper gate:" in out

    dates, both = cli.run_many(
        ("--json", "backtest", "replay-bot", "--start", "2024-01-03", "--end", "2024-01-03"),
        ("backtest", str(bot), "--bars", "5", "--end", "2024-01-03"),
    )
    by_dates = _json(dates)
    assert by_dates["bars"] == per_day
    assert by_dates["id"].startswith("bt-")
    with cli.ledger() as ledger:
        runs = ledger.backtests("replay-bot")
    assert sorted(runs["bars"]) == [200, per_day]

    assert "--bars" in assert_clean_error(both)


def test_backtest_reports_a_bad_date_before_anything_else(cli):
    bot = cli.write_bot("dates.yaml", name="dates-bot")  # a synthetic feed: needs bars/end
    start, end, order = cli.run_many(
        ("backtest", str(bot), "--start", "2024-13-01"),
        ("backtest", str(bot), "--start", "2024-01-02", "--end", "2024-02-30"),
        ("backtest", str(bot), "--start", "2024-02-01", "--end", "2024-01-01"),
    )
    err = assert_clean_error(start)
    assert "--start" in err and "'2024-13-01' is not a valid date" in err
    assert "synthetic feed" not in err
    err = assert_clean_error(end)
    assert "--end" in err and "'2024-02-30' is not a valid date" in err
    err = assert_clean_error(order)
    assert "start '2024-02-01' is after end '2024-01-01'" in err
    with cli.ledger() as ledger:
        assert ledger.backtests("dates-bot").empty


# --------------------------------------------------------------------------- paper run


def test_paper_run_at_speed_zero_prints_frames_and_completes(cli, gated_bot):
    result = cli.run("paper", "run", str(gated_bot), "--speed", "0", "--max-bars", "120")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # each frame line: time, zone, #seq, stage, message
    stages = [line.split()[3] for line in lines if line[:2].isdigit() and " #" in line]
    assert stages[:2] == ["metadata_gate", "session.started"]
    assert stages.count("bar.received") == 120
    assert stages[-2:] == ["session.stopped", "done"]
    assert "order.filled" in stages
    status = lines[-1]
    assert status.startswith("[completed]") and "bars 120" in status and "P&L" in status

    row = _latest_run(cli)
    assert row["status"] == "completed"
    assert row["bars_seen"] == 120 and row["total_pnl"] is not None
    run_id = row["id"]
    assert run_id in status

    listed, shown, stop = cli.run_many(
        ("paper", "list", "--status", "completed"),
        ("paper", "show", run_id, "--json"),
        ("paper", "stop", run_id),
    )
    assert listed.returncode == 0 and run_id in listed.stdout

    shown = _json(shown)
    assert shown["status"] == "completed"
    assert shown["fills_count"] == row["num_fills"] > 0

    assert stop.returncode == 0 and "already completed" in stop.stdout


def test_paper_run_stops_cleanly_on_sigint(cli, gated_bot):
    proc = cli.popen("paper", "run", str(gated_bot), "--speed", "600")
    lines: list[str] = []
    reader = _collect(proc.stdout, lines)
    try:
        wait_for(lambda: any("bar.received" in line for line in lines), timeout=30)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    stderr = proc.stderr.read()
    assert code == 130, (code, "".join(lines), stderr)
    assert "Traceback" not in stderr
    text = "".join(lines)
    assert "SIGINT: stopping paper run" in text
    assert "session.stopped" in text and lines[-1].startswith("[stopped]")
    row = _latest_run(cli)
    assert row["status"] == "stopped" and "SIGINT" in row["stop_reason"]
    assert row["ended_at"] is not None and row["total_pnl"] is not None


def test_gate_refusal_lists_every_failing_rule_and_exits_2(cli):
    risk = {"max_order_notional": 50000, "kill_switch_attached": False}
    bot = cli.write_bot("ungated.yaml", name="ungated", risk=risk)
    result = cli.run("paper", "run", str(bot), "--speed", "0", "--max-bars", "5")
    err = assert_clean_error(result, code=2)
    assert "paper gate refused" in err
    assert "  - no backtest_runs row" in err
    assert "  - risk.kill_switch_attached is not true" in err
    assert _latest_run_or_none(cli) is None

    forced = cli.run(
        "paper", "run", str(bot), "--speed", "0", "--max-bars", "5", "--force", "--reason", "test"
    )
    assert forced.returncode == 0, forced.stderr
    assert "paper gate forced: test" in forced.stdout


def test_paper_run_backtest_flag_chooses_what_the_gate_judges(cli, gated_bot):
    with cli.ledger() as ledger:
        good = ledger.backtests("cli-demo")["id"].iloc[0]
    short = cli.run("--json", "backtest", str(gated_bot), "--bars", "60")
    assert short.returncode == 0, short.stderr
    short_id = _json(short)["id"]
    refused = cli.run("paper", "run", str(gated_bot), "--speed", "0", "--max-bars", "5")
    err = assert_clean_error(refused, code=2)
    assert f"judged backtest {short_id}: " in err and "60 bars" in err
    assert "min_bars 100" in err and "--backtest ID" in err
    chosen = cli.run(
        "paper", "run", str(gated_bot), "--speed", "0", "--max-bars", "5", "--backtest", good
    )
    assert chosen.returncode == 0, chosen.stderr
    with cli.ledger() as ledger:
        run = ledger.list_runs(limit=1)[0]
        gate = ledger.frames_after(run["id"], -1)[0]
    assert gate["stage"] == "metadata_gate" and gate["judged"]["id"] == good


def _latest_run_or_none(cli):
    with cli.ledger() as ledger:
        runs = ledger.list_runs(limit=1)
    return runs[0] if runs else None


# --------------------------------------------------------------------------- stop and kill


def test_paper_stop_reaches_a_session_in_another_process(cli, gated_bot):
    proc = cli.popen("paper", "run", str(gated_bot), "--speed", "60", "--quiet")
    try:
        run = wait_for(lambda: _running_run(cli), timeout=30)
        stop, missing = cli.run_many(("paper", "stop", run["id"]), ("paper", "stop", "paper-x"))
        assert stop.returncode == 0, stop.stderr
        assert f"paper run {run['id']} stopped" in stop.stdout
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert code == 0, (out, proc.stderr.read())
    assert "stop requested" in out
    assert _run_row(cli, run["id"])["status"] == "stopped"

    assert "unknown paper run 'paper-x'" in assert_clean_error(missing)


def test_kill_engage_status_reset(cli, gated_bot):
    proc = cli.popen("paper", "run", str(gated_bot), "--speed", "60", "--quiet")
    try:
        run = wait_for(lambda: _running_run(cli), timeout=30)
        kill = cli.run("kill", "--mode", "cancel", "--reason", "enough for today")
        assert kill.returncode == 0, kill.stderr
        assert "kill switch ENGAGED (cancel" in kill.stdout and "paper" in kill.stdout
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 3, (proc.stdout.read(), proc.stderr.read())
    row = _run_row(cli, run["id"])
    assert row["status"] == "killed" and row["stop_reason"] == "enough for today"

    status, refused = cli.run_many(
        ("kill", "--status", "--json"),
        ("paper", "run", str(gated_bot), "--speed", "0", "--max-bars", "5"),
    )
    state = _json(status)
    assert state["engaged"] is True and state["reason"] == "enough for today"
    assert "kill switch engaged" in assert_clean_error(refused, code=3)

    reset = cli.run("kill", "--reset")
    assert reset.returncode == 0 and "kill switch reset" in reset.stdout
    assert "engaged  no" in reset.stdout

    freeze = _json(cli.run("kill", "--mode", "freeze", "--ttl", "30", "--json"))
    assert freeze["mode"] == "freeze" and freeze["ttl_seconds"] == 30
    with cli.ledger() as ledger:
        actions = list(ledger.audit_rows()["action"])
    assert actions.count("kill_switch.engage") == 2 and "kill_switch.reset" in actions


def test_demo_runs_end_to_end(cli):
    result = cli.run("demo", "--bars", "3000", "--paper-bars", "120")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "== bot sma-demo v1" in out and "backtest bt-" in out
    assert "frames: bar.received 120" in out
    assert "status      completed" in out
    with cli.ledger() as ledger:
        (run,) = ledger.list_runs()
    assert run["bot_id"] == "sma-demo" and run["bars_seen"] == 120


def test_paper_run_on_another_feed_without_editing_the_bot(cli, gated_bot):
    result = cli.run(
        "paper", "run", str(gated_bot), "--feed", "sample", "--symbols", "AAPL",
        "--speed", "0", "--max-bars", "200", "--quiet",
    )  # fmt: skip
    assert "backtesting" in result.stdout + result.stderr
    if result.returncode == 2:  # the gate judged the bot on its new feed honestly: refused
        assert "min_sharpe" in result.stderr
        result = cli.run(
            "paper", "run", str(gated_bot), "--feed", "sample", "--symbols", "AAPL",
            "--speed", "0", "--max-bars", "200", "--quiet", "--force", "--reason", "cli test",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = _latest_run(cli)
    assert row["status"] == "completed" and row["bars_seen"] == 200
    assert row["config"]["bot"]["universe"] == ["AAPL"]
    assert row["config"]["bot"]["data"]["feed"] == "sample"
    bad = cli.run("paper", "run", str(gated_bot), "--symbols", "AAPL")
    assert bad.returncode == 1 and "--symbols goes with --feed" in bad.stderr
