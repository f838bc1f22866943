"""Alembic environment of the ledger.

Run programmatically by :func:`alphaswarm.ledger.migrate.upgrade` (no ``alembic.ini``):
the caller passes an open connection, already inside a locked transaction, as
``config.attributes["connection"]``. With only ``sqlalchemy.url`` set (e.g. from the
``alembic`` command line with ``-x url=...``) an engine is created here instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from alphaswarm.ledger.schema import metadata

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url or config.get_main_option("sqlalchemy.url")


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
