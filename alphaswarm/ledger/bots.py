"""The bots repository: bot specs registered as numbered versions, and read back."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from alphaswarm.ledger.backtests import latest_backtest, latest_bot_version
from alphaswarm.ledger.connection import Repository
from alphaswarm.ledger.errors import LedgerError
from alphaswarm.ledger.schema import bot_versions, bots, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


__all__ = ["RESERVED_BOT_IDS", "BotRepository", "slug"]

#: Attempts at registering a bot that other processes register at the same moment.
_REGISTER_ATTEMPTS = 5

#: Ids a bot never gets: ``/bots/<id>`` is another route of the server there (the
#: ``/bots`` page's Bokeh routes ``ws``, ``metadata``, ``static/...``; ``/bots/halt-all``).
#: A bot whose name slugs to one of them gets the next free ``<slug>-<n>`` instead.
RESERVED_BOT_IDS = frozenset({"ws", "metadata", "static", "halt-all"})


def slug(name: str) -> str:
    """``name`` as a bot id: lowercase ASCII letters, digits and dashes, at most 96."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:96].strip("-")


class BotRepository(Repository):
    """Rows of ``bots`` and ``bot_versions``."""

    def register_bot(self, name: str, spec: dict, spec_hash: str) -> tuple[str, int, bool]:
        """Record a bot spec; a changed spec becomes the bot's next version.

        Parameters
        ----------
        name : str
            Display name; the bot id is its slug (lowercase ``[a-z0-9-]``), or
            ``bot-<hash8>`` when the name has no such characters; ``-<n>`` is added
            when that id is taken or reserved (:data:`RESERVED_BOT_IDS`).
        spec : dict
            The bot spec (JSON-serialisable).
        spec_hash : str
            Content hash of ``spec``; the same hash returns the existing version.

        Returns
        -------
        tuple of (str, int, bool)
            ``(bot_id, version, created_new_version)``.

        Raises
        ------
        LedgerError
            On an empty name or hash, or a spec that is not JSON-serialisable.
        """
        if not isinstance(name, str) or not name.strip():
            raise LedgerError(f"register_bot: name must be a non-empty string, got {name!r}")
        if not isinstance(spec_hash, str) or not spec_hash.strip():
            raise LedgerError(
                f"register_bot: spec_hash must be a non-empty string, got {spec_hash!r}"
            )
        if not isinstance(spec, Mapping):
            raise LedgerError(f"register_bot: spec must be a dict, got {type(spec).__name__}")
        name = name.strip()
        for attempt in range(_REGISTER_ATTEMPTS):
            try:
                with self.db.write() as conn:
                    return _register_bot(conn, name, dict(spec), spec_hash)
            except LedgerError as exc:
                # Another process registered the same bot at the same moment: retry.
                if isinstance(exc.__cause__, IntegrityError) and attempt < _REGISTER_ATTEMPTS - 1:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get_bot(self, bot_id: str) -> dict | None:
        """Return a bot with its latest version, spec and latest backtest reference.

        Parameters
        ----------
        bot_id : str
            The bot id (slug).

        Returns
        -------
        dict or None
            ``{id, name, created_at, latest_version, spec, spec_hash, backtest_runs,
            sharpe}`` where ``backtest_runs`` is ``{id, created_at, sharpe,
            max_drawdown, bot_version}`` of the newest backtest of the latest version
            (or ``None``) and ``sharpe`` its Sharpe ratio; ``None`` for an unknown bot.
        """
        with self.db.read() as conn:
            return _bot(conn, bot_id)

    def list_bots(self) -> list[dict]:
        """Return every bot as :meth:`get_bot` describes it, oldest first."""
        with self.db.read() as conn:
            ids = conn.execute(select(bots.c.id).order_by(bots.c.created_at, bots.c.id)).scalars()
            return [bot for bot_id in list(ids) if (bot := _bot(conn, bot_id)) is not None]

    def bot_versions(self, bot_id: str) -> list[dict]:
        """Return the versions of a bot, oldest first (empty for an unknown bot).

        Parameters
        ----------
        bot_id : str
            The bot id.

        Returns
        -------
        list of dict
            ``{id, bot_id, version, spec_hash, spec, created_at}`` per version.
        """
        with self.db.read() as conn:
            rows = conn.execute(
                select(bot_versions)
                .where(bot_versions.c.bot_id == bot_id)
                .order_by(bot_versions.c.version)
            ).mappings()
            return [dict(r) for r in rows]

    def bot_spec(self, bot_id: str, version: int | None = None) -> dict:
        """Return the spec of one version of a bot (the latest by default).

        Raises
        ------
        LedgerError
            If the bot or the version does not exist.
        """
        stmt = select(bot_versions.c.spec).where(bot_versions.c.bot_id == bot_id)
        if version is None:
            stmt = stmt.order_by(bot_versions.c.version.desc()).limit(1)
        else:
            stmt = stmt.where(bot_versions.c.version == int(version))
        with self.db.read() as conn:
            spec = conn.execute(stmt).scalar()
        if spec is None:
            which = "any version" if version is None else f"version {version}"
            raise LedgerError(f"bot {bot_id!r} has no {which} in the ledger")
        return spec


def _register_bot(conn: Connection, name: str, spec: dict, spec_hash: str) -> tuple[str, int, bool]:
    bot_id = conn.execute(select(bots.c.id).where(bots.c.name == name)).scalar()
    if bot_id is None:
        base = slug(name) or "bot-" + (slug(spec_hash)[:8] or uuid.uuid4().hex[:8])
        bot_id, n = base, 1
        while (
            bot_id in RESERVED_BOT_IDS
            or conn.execute(select(bots.c.id).where(bots.c.id == bot_id)).first()
        ):
            n += 1
            bot_id = f"{base}-{n}"
        conn.execute(insert(bots).values(id=bot_id, name=name, created_at=utcnow()))
    existing = conn.execute(
        select(bot_versions.c.version).where(
            bot_versions.c.bot_id == bot_id, bot_versions.c.spec_hash == spec_hash
        )
    ).scalar()
    if existing is not None:
        return bot_id, int(existing), False
    version = int(latest_bot_version(conn, bot_id) or 0) + 1
    conn.execute(
        insert(bot_versions).values(
            bot_id=bot_id, version=version, spec_hash=spec_hash, spec=spec, created_at=utcnow()
        )
    )
    return bot_id, version, True


def _bot(conn: Connection, bot_id: str) -> dict | None:
    found = conn.execute(select(bots).where(bots.c.id == bot_id)).mappings().first()
    if found is None:
        return None
    bot = dict(found)
    latest = (
        conn.execute(
            select(bot_versions)
            .where(bot_versions.c.bot_id == bot_id)
            .order_by(bot_versions.c.version.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    bot["latest_version"] = latest["version"] if latest else None
    bot["spec"] = latest["spec"] if latest else None
    bot["spec_hash"] = latest["spec_hash"] if latest else None
    ref = None
    if latest is not None:
        bt = latest_backtest(conn, bot_id, latest["version"])
        if bt is not None:
            ref = {k: bt[k] for k in ("id", "created_at", "sharpe", "max_drawdown", "bot_version")}
    bot["backtest_runs"] = ref
    bot["sharpe"] = ref["sharpe"] if ref else None
    return bot
