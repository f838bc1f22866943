from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from tests.cli.helpers import Cli, make_cli

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run the real ``alphaswarm`` command against a ledger in ``tmp_path``."""
    return make_cli(tmp_path)


@pytest.fixture(scope="session")
def gated_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger file holding the demo bot with a backtest that passes the paper gate."""
    template = make_cli(tmp_path_factory.mktemp("gated"))
    result = template.run("backtest", str(template.write_bot()), "--bars", "7800")
    assert result.returncode == 0, result.stderr
    assert "paper gate: ok" in result.stdout or "paper gate: warning" in result.stdout
    return template.db_path


@pytest.fixture
def gated_bot(cli: Cli, gated_ledger: Path) -> Path:
    """The demo bot file, on a copy of :func:`gated_ledger` (ready to paper trade)."""
    for suffix in ("", "-wal"):
        source = gated_ledger.with_name(gated_ledger.name + suffix)
        if source.exists():
            shutil.copy(source, cli.db_path.with_name(cli.db_path.name + suffix))
    return cli.write_bot()
