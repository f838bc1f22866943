"""The :class:`Ledger`: every write of a bot, backtest and paper run, and pandas reads.

One ``Ledger`` wraps one database (:class:`~alphaswarm.ledger.connection.Database`,
one SQLAlchemy engine). SQLite (a file in WAL mode) is the embedded default;
PostgreSQL is the same schema through a URL. All SQL is parameterised; every write
method is one transaction, so a bad row leaves nothing half-written and raises
:class:`LedgerError`.

``Ledger`` is a facade: its methods are those of the repositories it holds, each a
small module of this package.

============================  ==================================================
module                        methods
============================  ==================================================
:mod:`~.ledger.bots`          ``register_bot``, ``get_bot``, ``list_bots``, ...
:mod:`~.ledger.backtests`     ``record_backtest``, ``latest_backtest``, ...
:mod:`~.ledger.runs`          ``create_paper_run``, ``update_run``, ``stop_runs``, ...
:mod:`~.ledger.run_closing`   ``finalize_paper_run``, ``mark_crashed``
:mod:`~.ledger.batches`       ``write_batch``, ``write_batches``
:mod:`~.ledger.killswitch_row`  ``kill_switch_state``, ``set_kill_switch``, ``write_kill_switch``
:mod:`~.ledger.cluster`       ``record_kill_ack``, ``hold_owner_lock``, ...
:mod:`~.ledger.reads`         ``runs``, ``fills``, ``equity``, ``sql``, ...
============================  ==================================================

Examples
--------
>>> from alphaswarm.ledger import Ledger
>>> with Ledger(url="sqlite:///:memory:") as ledger:
...     bot_id, version, created = ledger.register_bot("My SMA bot", {"k": 1}, "abc123")
>>> bot_id, version, created
('my-sma-bot', 1, True)
"""

from __future__ import annotations

import functools
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import param

from alphaswarm.ledger.audit import append_audit
from alphaswarm.ledger.backtests import BacktestRepository
from alphaswarm.ledger.batches import BatchWriter
from alphaswarm.ledger.bots import BotRepository
from alphaswarm.ledger.cluster import ClusterRepository, owner_lock_key, process_owner
from alphaswarm.ledger.connection import Database
from alphaswarm.ledger.errors import KillSwitchRefusal, LedgerError, LedgerUnavailable
from alphaswarm.ledger.killswitch_row import KILL_SWITCH_CHANNEL, KillSwitchRow
from alphaswarm.ledger.reads import LedgerReads
from alphaswarm.ledger.run_closing import RunClosing
from alphaswarm.ledger.runs import RunRepository
from alphaswarm.ledger.urls import as_database_url, default_url, parse_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "KILL_SWITCH_CHANNEL",
    "KillSwitchRefusal",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "default_url",
    "owner_lock_key",
    "process_owner",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _delegate(
    repository: str, method: Callable[Concatenate[Any, _P], _R]
) -> Callable[Concatenate[Ledger, _P], _R]:
    """A :class:`Ledger` method that calls ``method`` on the repository ``self.<repository>``.

    It carries the repository method's name, signature and docstring, so
    ``help(Ledger.write_batch)`` and :func:`inspect.signature` show them.
    """

    @functools.wraps(method)
    def call(self: Ledger, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(getattr(self, repository), *args, **kwargs)

    call.__qualname__ = f"Ledger.{method.__name__}"
    call.__module__ = __name__
    return call


class Ledger(param.Parameterized):
    """The persistent record of bots, backtests and paper-trading runs.

    Parameters are set once, at construction; the engine is created, and the schema
    upgraded to the newest migration, on first use.

    Examples
    --------
    >>> ledger = Ledger()  # $ALPHASWARM_DB_URL or ~/.alphaswarm/ledger.db  # doctest: +SKIP
    >>> ledger.sql("SELECT id, status FROM paper_trading_runs")  # doctest: +SKIP
    """

    url = param.String(
        default=None,
        allow_None=True,
        constant=True,
        doc="""
        SQLAlchemy database URL, e.g. ``sqlite:////path/ledger.db`` or
        ``postgresql+psycopg://user@host/db``. ``None`` resolves to
        :func:`default_url`: ``$ALPHASWARM_DB_URL``, else ``~/.alphaswarm/ledger.db``.""",
    )

    echo = param.Boolean(
        default=False,
        constant=True,
        doc="Log every SQL statement (SQLAlchemy's ``echo``).",
    )

    upgrade = param.Boolean(
        default=True,
        constant=True,
        doc="""
        Upgrade the schema to the newest migration on first use. When False, a ledger
        that is not at the newest revision raises :class:`LedgerError` instead.""",
    )

    busy_timeout = param.Number(
        default=30.0,
        bounds=(0, None),
        constant=True,
        doc="SQLite only: seconds a writer waits for another writer's lock before failing.",
    )

    owner = param.String(
        default=None,
        allow_None=True,
        doc="""
        Owner recorded on paper runs created through this ledger (``"<host>:<pid>"`` by
        default); :meth:`mark_crashed` can skip the runs of a live owner.""",
    )

    engine_kwargs = param.Dict(
        default={},
        constant=True,
        doc="Extra keyword arguments for :func:`sqlalchemy.create_engine`.",
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.url is None:
            with param.edit_constant(self):
                self.url = default_url()
        elif self.url != as_database_url(self.url):
            with param.edit_constant(self):
                self.url = as_database_url(self.url)
        parse_url(self.url)  # a bad URL fails here, readably
        if self.owner is None:
            self.owner = process_owner()
        self._db = Database(
            self.url,
            echo=self.echo,
            upgrade=self.upgrade,
            busy_timeout=self.busy_timeout,
            engine_kwargs=dict(self.engine_kwargs),
        )
        this = weakref.ref(self)  # the repositories must not keep the ledger alive
        self._cluster = ClusterRepository(self._db, owner=lambda: this().owner)
        self._bots = BotRepository(self._db)
        self._backtests = BacktestRepository(self._db)
        self._runs = RunRepository(self._db, self._cluster)
        self._closing = RunClosing(self._db)
        self._batches = BatchWriter(self._db)
        self._kill_switch = KillSwitchRow(self._db)
        self._reads = LedgerReads(self._db)

    # ------------------------------------------------------------------ lifecycle

    def engine(self) -> Engine:
        """Return the SQLAlchemy engine, opening it and upgrading the schema on first use."""
        return self._db.engine()

    @property
    def dialect(self) -> str:
        """Name of the database dialect: ``"sqlite"`` or ``"postgresql"`` (from the URL)."""
        return self._db.dialect

    def ensure_schema(self) -> str:
        """Create or upgrade the ledger schema to the newest migration.

        Called on first use. Safe when several processes open the same new ledger at
        once: the upgrade runs under the database's write lock (SQLite) or an advisory
        lock (PostgreSQL), and whoever comes second finds the schema current.

        Returns
        -------
        str
            The revision the ledger is at (the head revision).

        Raises
        ------
        LedgerError
            If the database cannot be reached, is newer than this code, or is not at
            head while :attr:`upgrade` is False.
        """
        return self._db.ensure_schema()

    def close(self) -> None:
        """Dispose of the engine and its pooled connections; the next use reconnects."""
        self._cluster.release_owner_lock()
        self._kill_switch.close()
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (for the sweep store, which shares this database)."""
        with self._db.write() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One read connection (for the sweep store, which shares this database)."""
        with self._db.read() as conn:
            yield conn

    # ------------------------------------------------------------------ audit

    def audit(self, actor: str, action: str, detail: dict) -> None:
        """Append a row to the audit log (gate overrides, kill-switch changes, ...).

        Parameters
        ----------
        actor : str
            Who did it (user, ``"api"``, ``"session:<id>"``, ...).
        action : str
            What was done, e.g. ``"gate.override"``.
        detail : dict
            JSON-serialisable details.
        """
        with self._db.write() as conn:
            append_audit(conn, actor, action, detail)

    # ------------------------------------------------------------------ repositories

    register_bot = _delegate("_bots", BotRepository.register_bot)
    get_bot = _delegate("_bots", BotRepository.get_bot)
    list_bots = _delegate("_bots", BotRepository.list_bots)
    bot_versions = _delegate("_bots", BotRepository.bot_versions)
    bot_spec = _delegate("_bots", BotRepository.bot_spec)

    record_backtest = _delegate("_backtests", BacktestRepository.record_backtest)
    latest_backtest = _delegate("_backtests", BacktestRepository.latest_backtest)
    get_backtest = _delegate("_backtests", BacktestRepository.get_backtest)
    count_backtests = _delegate("_backtests", BacktestRepository.count_backtests)

    create_paper_run = _delegate("_runs", RunRepository.create_paper_run)
    update_run = _delegate("_runs", RunRepository.update_run)
    stop_runs = _delegate("_runs", RunRepository.stop_runs)
    get_run = _delegate("_runs", RunRepository.get_run)
    list_runs = _delegate("_runs", RunRepository.list_runs)
    running_runs = _delegate("_runs", RunRepository.running_runs)

    finalize_paper_run = _delegate("_closing", RunClosing.finalize_paper_run)
    mark_crashed = _delegate("_closing", RunClosing.mark_crashed)

    write_batch = _delegate("_batches", BatchWriter.write_batch)
    write_batches = _delegate("_batches", BatchWriter.write_batches)

    kill_switch_state = _delegate("_kill_switch", KillSwitchRow.kill_switch_state)
    set_kill_switch = _delegate("_kill_switch", KillSwitchRow.set_kill_switch)
    write_kill_switch = _delegate("_kill_switch", KillSwitchRow.write_kill_switch)

    record_kill_ack = _delegate("_cluster", ClusterRepository.record_kill_ack)
    kill_acks = _delegate("_cluster", ClusterRepository.kill_acks)
    connected_applications = _delegate("_cluster", ClusterRepository.connected_applications)
    hold_owner_lock = _delegate("_cluster", ClusterRepository.hold_owner_lock)
    release_owner_lock = _delegate("_cluster", ClusterRepository.release_owner_lock)
    owner_alive = _delegate("_cluster", ClusterRepository.owner_alive)

    runs = _delegate("_reads", LedgerReads.runs)
    fills = _delegate("_reads", LedgerReads.fills)
    orders = _delegate("_reads", LedgerReads.orders)
    equity = _delegate("_reads", LedgerReads.equity)
    frames = _delegate("_reads", LedgerReads.frames)
    frames_after = _delegate("_reads", LedgerReads.frames_after)
    backtests = _delegate("_reads", LedgerReads.backtests)
    risk_events = _delegate("_reads", LedgerReads.risk_events)
    audit_rows = _delegate("_reads", LedgerReads.audit_rows)
    sql = _delegate("_reads", LedgerReads.sql)
