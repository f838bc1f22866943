"""Shared fixtures of the test suite.

PostgreSQL machinery lives in ``tests/pg.py``; its fixtures are re-exported here so
every test can ask for ``postgres_url``, ``ledger_url`` or ``ledger``.
"""

from __future__ import annotations

from tests.pg import ledger, ledger_url, postgres_url

__all__ = ["ledger", "ledger_url", "postgres_url"]
