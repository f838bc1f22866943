"""Frame blocks: a batch's ``bar.received`` and ``equity.update`` frames in one row.

``paper_frame_blocks`` holds, per written batch of a paper session, the envelopes of
its two high-volume stages encoded together (``encoding`` names how; see
``alphaswarm.ledger.frame_blocks``). Frames written before this revision stay
``paper_frames`` rows and are read as before; the ledger's frame reads merge both.

Downgrading writes every block's frames back as ``paper_frames`` rows, then drops
the table, so no frame is lost either way.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Blocks moved back to rows per round trip on downgrade.
_DOWNGRADE_CHUNK = 100


def upgrade() -> None:
    op.create_table(
        "paper_frame_blocks",
        sa.Column("paper_run_id", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_run_id"],
            ["paper_trading_runs.id"],
            name=op.f("fk_paper_frame_blocks_paper_run_id_paper_trading_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("paper_run_id", "first_seq", name=op.f("pk_paper_frame_blocks")),
    )
    op.create_index(
        "ix_paper_frame_blocks_paper_run_id_last_seq",
        "paper_frame_blocks",
        ["paper_run_id", "last_seq"],
    )


def _decode(data: bytes, encoding: str, run_id: str) -> list[dict[str, Any]]:
    """A frozen copy of the decoder of encoding ``json-zlib/1``; the kit's own for later ones.

    A block of a later encoding was written by the kit running this downgrade, whose
    decoder knows it.
    """
    if encoding != "json-zlib/1":
        from alphaswarm.ledger.frame_blocks import decode_block

        return decode_block(data, encoding, run_id)
    return json.loads(zlib.decompress(bytes(data)))


def downgrade() -> None:
    conn = op.get_bind()
    blocks = sa.table(
        "paper_frame_blocks",
        sa.column("paper_run_id", sa.String()),
        sa.column("first_seq", sa.Integer()),
        sa.column("encoding", sa.String()),
        sa.column("data", sa.LargeBinary()),
    )
    frames = sa.table(
        "paper_frames",
        sa.column("paper_run_id", sa.String()),
        sa.column("seq", sa.Integer()),
        sa.column("stage", sa.String()),
        sa.column("frame", sa.JSON()),
    )
    after: tuple[str, int] | None = None
    while True:
        stmt = (
            sa.select(blocks.c.paper_run_id, blocks.c.first_seq, blocks.c.encoding, blocks.c.data)
            .order_by(blocks.c.paper_run_id, blocks.c.first_seq)
            .limit(_DOWNGRADE_CHUNK)
        )
        if after is not None:
            stmt = stmt.where(
                sa.or_(
                    blocks.c.paper_run_id > after[0],
                    sa.and_(blocks.c.paper_run_id == after[0], blocks.c.first_seq > after[1]),
                )
            )
        chunk = conn.execute(stmt).all()
        if not chunk:
            break
        rows = [
            {"paper_run_id": run_id, "seq": f["seq"], "stage": f["stage"], "frame": f}
            for run_id, _, encoding, data in chunk
            for f in _decode(data, encoding, run_id)
        ]
        if rows:
            conn.execute(sa.insert(frames), rows)
        after = (chunk[-1][0], chunk[-1][1])
    op.drop_index("ix_paper_frame_blocks_paper_run_id_last_seq", table_name="paper_frame_blocks")
    op.drop_table("paper_frame_blocks")
