"""The ``alphaswarm`` command: bots, backtests, paper sessions and the kill switch.

Every command works on the embedded ledger without a server (``--db URL``, else
``$ALPHASWARM_DB_URL``, else ``~/.alphaswarm/ledger.db``), or against a running
``alphaswarm serve`` with ``--url http://host:port``. ``alphaswarm --help`` lists
the commands and the exit codes.
"""

from __future__ import annotations

from alphaswarm.cli.commands import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
