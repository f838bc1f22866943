"""Cluster kill switch: ``kill_switch.epoch`` and the ``kill_switch_acks`` table.

Several server processes on one PostgreSQL ledger apply each engagement (epoch) once
and acknowledge it with one row per process: ``(epoch, process, sessions,
elapsed_ms, detail, done_at)``.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence


def _TS() -> sa.DateTime:
    # A frozen copy of schema.UTCDateTime's DDL: migrations must not follow edits of schema.py.
    return sa.DateTime(timezone=True)


# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kill_switch") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "kill_switch_acks",
        sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("process", sa.String(length=256), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("elapsed_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("done_at", _TS(), nullable=False),
        sa.PrimaryKeyConstraint("epoch", "process", name=op.f("pk_kill_switch_acks")),
    )


def downgrade() -> None:
    op.drop_table("kill_switch_acks")
    with op.batch_alter_table("kill_switch") as batch:
        batch.drop_column("epoch")
