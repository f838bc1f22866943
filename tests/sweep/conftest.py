"""Fixtures of the sweep tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from alphaswarm.ledger import Ledger

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def led(tmp_path) -> Iterator[Ledger]:
    """A fresh SQLite ledger of the test's own."""
    with Ledger(url=f"sqlite:///{tmp_path}/sweeps.db") as ledger:
        yield ledger
