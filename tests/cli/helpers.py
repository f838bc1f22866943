"""Helpers of the CLI tests: run the real ``alphaswarm`` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

SCRIPT = Path(sys.executable).with_name("alphaswarm")

DEMO_BOT = {
    "name": "cli-demo",
    "strategy": "sma_cross",
    "params": {"fast": 10, "slow": 30},
    "universe": ["DEMO"],
    "data": {"feed": "synthetic", "seed": 7, "interval": "1m"},
    "risk": {
        "max_order_notional": 50000,
        "max_position_qty": 1000,
        "max_drawdown_pct": 0.20,
        "max_daily_loss": 5000,
        "max_orders_per_minute": 30,
        "kill_switch_attached": True,
    },
}


def command() -> list[str]:
    """The console script when installed, else ``python -m alphaswarm.cli``."""
    if SCRIPT.exists():
        return [str(SCRIPT)]
    return [sys.executable, "-m", "alphaswarm.cli"]


@dataclass
class Cli:
    """Runs ``alphaswarm`` against one temporary ledger."""

    tmp: Path
    env: dict[str, str]
    db_path: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def run(self, *args: str, timeout: float = 60, cwd: Path | None = None):
        return subprocess.run(
            [*command(), *args],
            env=self.env,
            cwd=cwd or self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_many(self, *commands: tuple[str, ...], timeout: float = 60) -> list:
        """Run independent commands concurrently; results in the order given."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            futures = [pool.submit(self.run, *args, timeout=timeout) for args in commands]
            return [f.result() for f in futures]

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*command(), *args],
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def write_bot(self, filename: str = "bot.yaml", **changes) -> Path:
        spec = {**DEMO_BOT, **changes}
        path = self.tmp / filename
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def ledger(self):
        from alphaswarm.ledger import Ledger

        return Ledger(url=self.db_url)


def make_cli(tmp_path: Path) -> Cli:
    """A Cli on a fresh ledger in ``tmp_path`` (HOME too, so nothing leaks out)."""
    db = tmp_path / "l.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHASWARM_")}
    env.update(
        ALPHASWARM_DB_URL=f"sqlite:///{db}",
        HOME=str(tmp_path),
        PYTHONUNBUFFERED="1",
        COLUMNS="120",
    )
    return Cli(tmp_path, env, db)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def assert_clean_error(result, code: int = 1) -> str:
    """Exit ``code``, a readable message on stderr and no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("alphaswarm")
    return result.stderr
