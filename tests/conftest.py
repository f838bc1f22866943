"""Shared fixtures of the test suite.

PostgreSQL machinery lives in ``tests/pg.py``; its fixtures are re-exported here so
every test can ask for ``postgres_url``, ``ledger_url`` or ``ledger``.
"""

from __future__ import annotations

from tests.pg import ledger, ledger_url, postgres_url

__all__ = ["ledger", "ledger_url", "postgres_url"]


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_default_ledger(tmp_path_factory):
    """No test touches ``~/.alphaswarm``: the default ledger and data cache live in a temp dir."""
    import os

    root = tmp_path_factory.mktemp("alphaswarm-home")
    saved = {k: os.environ.get(k) for k in ("ALPHASWARM_DB_URL", "ALPHASWARM_HOME")}
    os.environ["ALPHASWARM_DB_URL"] = f"sqlite:///{root}/default-ledger.db"
    os.environ["ALPHASWARM_HOME"] = str(root)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
