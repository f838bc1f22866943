"""`alphaswarm sweep run|resume|status|top|rerun` on a parser of their own."""

from __future__ import annotations

import argparse
import json
import subprocess

import pytest

from alphaswarm.cli.errors import CliError
from alphaswarm.cli.sweep import add_parser, parse_grid
from tests.sweep.helpers import small_bot


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="alphaswarm")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def env(tmp_path):
    bot_file = tmp_path / "bot.yaml"
    bot_file.write_text(small_bot("cli-sweep").to_yaml())
    return str(bot_file), f"sqlite:///{tmp_path}/cli.db"


def test_parse_grid():
    assert parse_grid(["fast=3,5", "slow=20:50:10", "mode=a,b"]) == {
        "fast": [3, 5],
        "slow": [20, 30, 40],
        "mode": ["a", "b"],
    }
    with pytest.raises(CliError):
        parse_grid(["fast"])


def test_run_status_top_rerun_resume(env, tmp_path, capsys):
    bot, db = env
    assert (
        run(
            "sweep",
            "run",
            bot,
            "--grid",
            "fast=3,5",
            "--grid",
            "slow=20,30",
            "--bars",
            "400",
            "--serial",
            "--name",
            "cli-1",
            "--db",
            db,
            "--no-progress",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "cli-1" in out and "DSR" in out
    assert run("sweep", "status", "--db", db, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["cli-1"] and rows[0]["trials"] == 4
    assert run("sweep", "status", "cli-1", "--db", db) == 0
    assert "done" in capsys.readouterr().out
    assert run("sweep", "top", "cli-1", "-n", "2", "--db", db, "--json") == 0
    top = json.loads(capsys.readouterr().out)
    assert len(top) == 2 and top[0]["sharpe"] >= top[1]["sharpe"]
    key = top[0]["trial_key"]
    assert (
        run(
            "sweep",
            "rerun",
            "cli-1",
            key[:10],
            "--db",
            db,
            "--out",
            str(tmp_path / "trial"),
            "--json",
        )
        == 0
    )
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["metrics"]["sharpe"] == top[0]["sharpe"]
    assert (tmp_path / "trial" / "trades.csv").exists()
    assert run("sweep", "resume", "cli-1", "--serial", "--db", db, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed"] == 4 and summary["status"] == "done"
    with pytest.raises(CliError, match="unknown sweep"):
        run("sweep", "top", "nope", "--db", db)


def test_status_marks_a_sweep_of_a_dead_process_interrupted(env, capsys):
    import sys

    from sqlalchemy import select, update

    from alphaswarm.ledger import Ledger
    from alphaswarm.ledger.schema import sweeps
    from alphaswarm.sweep.ledger import SweepStore

    _, db = env
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with Ledger(url=db) as ledger:
        sweep_id = SweepStore(ledger).open("orphan", None, {"kind": "sweep"})
        with ledger.engine().begin() as conn:
            cfg = conn.execute(select(sweeps.c.config).where(sweeps.c.id == sweep_id)).scalar()
            cfg = {**cfg, "owner": f"{ledger.owner.rpartition(':')[0]}:{gone.pid}"}
            conn.execute(update(sweeps).where(sweeps.c.id == sweep_id).values(config=cfg))
    assert run("sweep", "status", "--db", db, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"]) for r in rows] == [("orphan", "interrupted")]


def _cli(*argv: str, cwd) -> subprocess.CompletedProcess:
    import os
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "alphaswarm.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.timeout(600)
def test_run_prints_its_own_lines_and_dask_logs_only_with_verbose(env, tmp_path):
    bot, db = env
    argv = ["sweep", "run", bot, "--grid", "fast=3,5", "--grid", "slow=20", "--bars", "300"]
    argv += ["--workers", "1", "--db", db]
    quiet = _cli(*argv, "--name", "quiet", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stdout.splitlines()
    assert lines[0] == "sweep quiet: 2 trials, on a local cluster (1 worker)"
    assert lines[1].startswith("dashboard: http://") and lines[1].endswith("/status")
    assert any(line.startswith("gate ") for line in lines)
    assert "info:" not in quiet.stderr, quiet.stderr
    loud = _cli(*argv, "--name", "loud", "-v", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "alphaswarm: info:" in loud.stderr
    assert loud.stdout.splitlines()[0].startswith("sweep loud: 2 trials")
