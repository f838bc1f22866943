"""Ledger schema migrations: created by Alembic, upgraded on first use, safe to race."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from alphaswarm.ledger import Ledger, LedgerError, default_url, migrate
from alphaswarm.ledger import revisions as light_revisions
from alphaswarm.ledger.schema import metadata

REPO = Path(__file__).resolve().parents[2]


def revisions() -> list[str]:
    """Shipped revisions, oldest first."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def raw_engine(url: str):
    return create_engine(url, poolclass=NullPool)


def tables(url: str) -> set[str]:
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def version(url: str) -> list[str]:
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()


def test_migrations_ship_in_the_package():
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert (migrate.MIGRATIONS_DIR / "script.py.mako").is_file()
    assert revisions()[0] == "0001"
    assert migrate.head_revision() == revisions()[-1]
    assert not (REPO / "alembic.ini").exists()


def test_head_revision_is_read_without_alembic():
    assert light_revisions.head_revision() == migrate.head_revision() == revisions()[-1]


_OPEN_AND_REPORT_ALEMBIC = """
import sys
from alphaswarm.ledger import Ledger
with Ledger(url=sys.argv[1]) as led:
    print(led.ensure_schema(), "alembic" in sys.modules)
"""


def test_a_ledger_at_head_opens_without_loading_alembic(ledger_url):
    def open_in_child() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", _OPEN_AND_REPORT_ALEMBIC, ledger_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout.split()

    head = migrate.head_revision()
    assert open_in_child() == [head, "True"]  # created: by Alembic
    assert open_in_child() == [head, "False"]  # at head: Alembic stays unloaded
    assert version(ledger_url) == [head]


def test_first_use_creates_schema_via_alembic(ledger_url):
    assert tables(ledger_url) == set()
    with Ledger(url=ledger_url) as led:
        assert led.list_runs() == []  # first use
    assert tables(ledger_url) == set(metadata.tables) | {"alembic_version"}
    assert version(ledger_url) == [migrate.head_revision()]


def test_migrations_match_schema_module(ledger_url):
    with Ledger(url=ledger_url) as led:
        led.ensure_schema()
    engine = raw_engine(ledger_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_existing_ledger_is_upgraded_on_first_use(ledger_url):
    """A ledger left at an older revision (here: the first, or none) is brought to head."""
    revs = revisions()
    engine = raw_engine(ledger_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE notes (body VARCHAR(20))")  # not ours; kept
            migrate.upgrade(conn, revs[0])
            conn.exec_driver_sql(
                "INSERT INTO paper_trading_runs (id, bot_id, status, num_fills, bars_seen, "
                "orders_submitted, started_at) VALUES ('old-run', 'b', 'stopped', 3, 0, 0, "
                "'2025-01-02 03:04:05')"
            )
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == revs[0]
    finally:
        engine.dispose()

    with Ledger(url=ledger_url) as led:
        run = led.get_run("old-run")
        assert run["num_fills"] == 3 and run["started_at"].year == 2025
        led.ensure_schema()
    assert version(ledger_url) == [migrate.head_revision()]
    assert "notes" in tables(ledger_url)


def test_every_revision_downgrades_and_upgrades(ledger_url):
    revs = revisions()
    cfg_engine = raw_engine(ledger_url)
    try:
        for rev in revs:
            with cfg_engine.begin() as conn:
                migrate.upgrade(conn, rev)
            with cfg_engine.connect() as conn:
                assert migrate.current_revision(conn) == rev
        with cfg_engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), "base")
        assert tables(ledger_url) <= {"alembic_version"}
    finally:
        cfg_engine.dispose()
    with Ledger(url=ledger_url) as led:
        assert led.ensure_schema() == revs[-1]


def test_newer_ledger_is_refused(ledger_url):
    engine = raw_engine(ledger_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('9999_future')")
    finally:
        engine.dispose()
    with Ledger(url=ledger_url) as led, pytest.raises(LedgerError, match="9999_future"):
        led.list_runs()


def test_tables_without_version_are_refused(ledger_url):
    engine = raw_engine(ledger_url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()
    with Ledger(url=ledger_url) as led, pytest.raises(LedgerError, match="no alembic_version"):
        led.ensure_schema()


def test_upgrade_false_refuses_old_schema(ledger_url):
    with Ledger(url=ledger_url, upgrade=False) as led, pytest.raises(LedgerError, match="upgrade"):
        led.list_bots()
    assert "paper_trading_runs" not in tables(ledger_url)


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from alphaswarm.ledger import Ledger

    url, k, sync = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    (sync / f"ready-{k}").touch()
    deadline = time.monotonic() + 60
    while not (sync / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    with Ledger(url=url) as led:
        bot_id, version, _ = led.register_bot("Race Bot", {"spec": 1}, "race-hash")
        led.create_paper_run({"id": f"run-{k}", "bot_id": bot_id})
        led.write_batch(f"run-{k}", frames=[{"seq": 1, "stage": "session.started"}])
    print(bot_id, version)
    """
)


def test_processes_racing_to_open_a_new_ledger(ledger_url, tmp_path):
    """Several processes opening the same new ledger at once: one migrates, none crash."""
    n = 4
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, ledger_url, str(k), str(sync)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for k in range(n)
    ]
    try:
        # Imports done in every child: release them together so they really race.
        deadline = time.monotonic() + 60
        while len(list(sync.glob("ready-*"))) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        (sync / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.split() == ["race-bot", "1"]
    assert version(ledger_url) == [migrate.head_revision()]
    with Ledger(url=ledger_url) as led:
        assert sorted(r["id"] for r in led.list_runs()) == [f"run-{k}" for k in range(n)]
        assert len(led.bot_versions("race-bot")) == 1


def test_schema_migrated_by_another_process_after_the_first_look(ledger_url, monkeypatch):
    """The first look says "no schema"; another process migrates before the lock is taken."""
    Ledger(url=ledger_url).ensure_schema()  # the other process, already done
    real = migrate.current_revision
    looks = []

    def stale_then_real(conn):
        looks.append(conn)
        return None if len(looks) == 1 else real(conn)

    monkeypatch.setattr(migrate, "current_revision", stale_then_real)
    monkeypatch.setattr(light_revisions, "stamped_revisions", lambda conn: [])  # stale too
    with Ledger(url=ledger_url) as led:
        assert led.ensure_schema() == migrate.head_revision()
        assert led.list_bots() == []
    assert len(looks) == 2  # the revision was read again under the migration lock
    assert version(ledger_url) == [migrate.head_revision()]


def test_default_url(monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHASWARM_DB_URL", "postgresql+psycopg://u@db/ledger")
    assert default_url() == "postgresql+psycopg://u@db/ledger"
    assert Ledger().url == "postgresql+psycopg://u@db/ledger"
    monkeypatch.delenv("ALPHASWARM_DB_URL")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / '.alphaswarm' / 'ledger.db'}"
    assert (tmp_path / ".alphaswarm").is_dir()


def test_unreachable_database_raises_ledger_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with Ledger(url=f"sqlite:///{blocker}/x/ledger.db") as led, pytest.raises(LedgerError):
        led.list_runs()


def _old_frames(run_id: str) -> list[dict]:
    """Frames as revision 0005 stored them: every stage a ``paper_frames`` row."""
    frames = []
    for seq in range(1, 13):
        stage = ("bar.received", "order.filled", "equity.update")[seq % 3]
        frames.append(
            {
                "task_id": run_id,
                "stage": stage,
                "message": f"m{seq}",
                "ts": 1.5 + seq,
                "seq": seq,
                "bar": {"symbol": "DEMO", "close": 100.0 + seq / 3},
                "positions": {},
            }  # fmt: skip
        )
    return frames


def test_0006_upgrade_keeps_old_frames_readable_and_downgrade_keeps_new_ones(ledger_url):
    """A ledger written at 0005 (every frame a row) upgrades with its frames readable; new
    bar frames go to blocks; a downgrade to 0005 writes the blocks back as rows."""
    from sqlalchemy import insert

    from alphaswarm.ledger import schema

    run_id = "old-run"
    old = _old_frames(run_id)
    engine = raw_engine(ledger_url)
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn, "0005")
            conn.execute(
                insert(schema.paper_trading_runs).values(
                    id=run_id, bot_id="b", status="running", starting_cash=1e5
                )
            )
            conn.execute(
                insert(schema.paper_frames),
                [
                    {"paper_run_id": run_id, "seq": f["seq"], "stage": f["stage"], "frame": f}
                    for f in old
                ],  # fmt: skip
            )
    finally:
        engine.dispose()

    new = [{**f, "seq": f["seq"] + len(old), "message": "new"} for f in _old_frames(run_id)]
    with Ledger(url=ledger_url) as led:
        assert led.frames_after(run_id, 0) == old  # upgraded on first use
        assert led.frames(run_id)["seq"].tolist() == [f["seq"] for f in old]
        led.write_batch(run_id, frames=new)
        assert led.frames_after(run_id, 0) == old + new
        assert led.frames_after(run_id, 6) == (old + new)[6:]
        blocks = led.sql("SELECT SUM(frames) AS n FROM paper_frame_blocks")["n"][0]
        assert blocks == sum(f["stage"] != "order.filled" for f in new)
    assert version(ledger_url) == [migrate.head_revision()] == ["0006"]

    engine = raw_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), "0005")
        assert "paper_frame_blocks" not in tables(ledger_url)
        with engine.connect() as conn:
            rows = conn.execute(
                schema.paper_frames.select()
                .where(schema.paper_frames.c.paper_run_id == run_id)
                .order_by(schema.paper_frames.c.seq)
            ).all()
    finally:
        engine.dispose()
    assert [r.frame for r in rows] == old + new
    assert [r.stage for r in rows] == [f["stage"] for f in old + new]
