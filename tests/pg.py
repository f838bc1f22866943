"""A real, throwaway PostgreSQL server for the test suite, and ledger fixtures over both backends.

``postgres_url`` (session scope) starts PostgreSQL from Debian's ``postgresql``
package (``/usr/lib/postgresql/<version>/bin``) in a temporary directory on a free
loopback port, or uses ``$ALPHASWARM_PG_URL`` when set. ``ledger_url`` and
``ledger`` are parametrised over SQLite and PostgreSQL; every PostgreSQL test gets
a database of its own, dropped afterwards.

These fixtures are re-exported by ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ports import free_port as _free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

PG_PACKAGE = "postgresql"
DATABASE = "alphaswarm_test"
SUPERUSER = "postgres"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def find_pg_bin() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl`` of the newest installed PostgreSQL."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parents[1].name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    for initdb in reversed(found):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


class PostgresServer:
    """One temporary PostgreSQL cluster: ``initdb``, ``pg_ctl start``, ``pg_ctl stop``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="alphaswarm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, user=SUPERUSER, group=None)

    def _run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self.as_root:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )

    def _check(self, proc: subprocess.CompletedProcess, what: str) -> None:
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}"
            )

    def start(self) -> None:
        proc = self._run(
            self.bindir / "initdb",
            "-D",
            self.data,
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        self._check(proc, "initdb")
        last: Exception | None = None
        for _ in range(5):  # the free port can be taken between choosing and binding it
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                return
            except RuntimeError as exc:
                last = exc
                time.sleep(0.2)
        raise RuntimeError(f"could not start PostgreSQL: {last}")

    def _pg_ctl_start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        proc = self._run(
            self.bindir / "pg_ctl",
            "-D",
            self.data,
            "-l",
            self.log,
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._check(proc, "pg_ctl start")

    def pause(self) -> None:
        """Stop the server (fast shutdown: every connection is cut), keeping its data."""
        proc = self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        self._check(proc, "pg_ctl stop")

    def resume(self) -> None:
        """Start the paused server again, on the same port."""
        self._pg_ctl_start()

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _admin_engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; return its URL."""
    from sqlalchemy.engine import make_url

    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (disconnecting its sessions) on the server of ``server_url``."""
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``, dropped on exit."""
    name = f"as_t_{uuid.uuid4().hex[:16]}"
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database on a real PostgreSQL server (``$ALPHASWARM_PG_URL`` or a temp one)."""
    pytest.importorskip("psycopg", reason="psycopg is missing: pip install 'psycopg[binary]'")
    env = os.environ.get("ALPHASWARM_PG_URL", "").strip()
    if env:
        yield env
        return
    bindir = find_pg_bin()
    if bindir is None:
        pytest.skip(
            f"PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            f"install the Debian package {PG_PACKAGE!r} (scripts/test.sh does)"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root needs runuser (package util-linux) to start PostgreSQL")
    server = PostgresServer(bindir)
    try:
        server.start()
        url = create_database(server.url(SUPERUSER), DATABASE)
        yield url
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty ledger database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    server_url = request.getfixturevalue("postgres_url")
    with fresh_database(server_url) as url:
        yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[object]:
    """A :class:`~alphaswarm.ledger.Ledger` on an empty database of each backend."""
    from alphaswarm.ledger import Ledger

    led = Ledger(url=ledger_url)
    try:
        yield led
    finally:
        led.close()
