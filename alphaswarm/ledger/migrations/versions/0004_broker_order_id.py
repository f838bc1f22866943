"""Broker order ids in the ledger: ``paper_orders.broker_order_id``.

A paper session routed to a real broker (Alpaca paper) stores the broker's id of
each order beside ours; it is empty (NULL) for the simulated broker and for orders
the broker never acknowledged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 23:30:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("paper_orders") as batch:
        batch.add_column(sa.Column("broker_order_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("paper_orders") as batch:
        batch.drop_column("broker_order_id")
