"""The backtests repository: finished backtests recorded and looked up."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select

from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.rows import row
from alphaswarm.ledger.schema import backtest_runs, bot_versions, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


__all__ = ["BacktestRepository", "latest_backtest", "latest_bot_version"]


def latest_bot_version(conn: Connection, bot_id: str) -> int | None:
    """The newest version number of ``bot_id`` (``None`` for an unknown bot)."""
    return conn.execute(
        select(func.max(bot_versions.c.version)).where(bot_versions.c.bot_id == bot_id)
    ).scalar()


def latest_backtest(conn: Connection, bot_id: str, bot_version: int | None) -> dict | None:
    """The newest backtest of a bot (of one version, when given), or ``None``."""
    stmt = select(backtest_runs).where(backtest_runs.c.bot_id == bot_id)
    if bot_version is not None:
        stmt = stmt.where(backtest_runs.c.bot_version == int(bot_version))
    stmt = stmt.order_by(backtest_runs.c.created_at.desc(), backtest_runs.c.id.desc()).limit(1)
    found = conn.execute(stmt).mappings().first()
    return dict(found) if found else None


class BacktestRepository(Repository):
    """Rows of ``backtest_runs``."""

    def record_backtest(self, row: dict) -> str:
        """Record a finished backtest.

        Parameters
        ----------
        row : dict
            Columns of ``backtest_runs``; ``bot_id`` is required. ``id`` defaults to
            a new ``bt_<hex>``, ``bot_version`` to the bot's latest version and
            ``created_at`` to now.

        Returns
        -------
        str
            The backtest id.
        """
        values = _backtest_row(row)
        with self.db.write() as conn:
            if values.get("bot_version") is None:
                values["bot_version"] = latest_bot_version(conn, values["bot_id"])
            conn.execute(insert(backtest_runs), values)
        return values["id"]

    def latest_backtest(self, bot_id: str, bot_version: int | None = None) -> dict | None:
        """Return the newest backtest of a bot (of one version, when given), or ``None``."""
        with self.db.read() as conn:
            return latest_backtest(conn, bot_id, bot_version)

    def get_backtest(self, backtest_id: str) -> dict | None:
        """Return one ``backtest_runs`` row as a dict, or ``None``."""
        return self._by_id(backtest_runs, backtest_id)

    def count_backtests(self, bot_id: str, bot_version: int | None = None) -> int:
        """How many backtests a bot (of one version, when given) has in the ledger."""
        stmt = select(func.count()).select_from(backtest_runs)
        stmt = stmt.where(backtest_runs.c.bot_id == bot_id)
        if bot_version is not None:
            stmt = stmt.where(backtest_runs.c.bot_version == int(bot_version))
        with self.db.read() as conn:
            return int(conn.execute(stmt).scalar() or 0)


def _backtest_row(data: dict) -> dict:
    values = row(backtest_runs, data, "record_backtest")
    if not values.get("bot_id"):
        raise LedgerError("record_backtest: 'bot_id' is required")
    values.setdefault("id", f"bt_{uuid.uuid4().hex[:16]}")
    values.setdefault("created_at", utcnow())
    return values
