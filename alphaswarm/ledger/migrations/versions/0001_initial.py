"""Initial ledger schema: every table of alphaswarm.ledger.schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 11:08:32.761671
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
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _TS(), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("action", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"])

    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("bot_id", sa.String(length=128), nullable=False),
        sa.Column("bot_version", sa.Integer(), nullable=True),
        sa.Column("started_at", _TS(), nullable=True),
        sa.Column("ended_at", _TS(), nullable=True),
        sa.Column("created_at", _TS(), nullable=False),
        sa.Column("bars", sa.Integer(), nullable=True),
        sa.Column("start_ts", _TS(), nullable=True),
        sa.Column("end_ts", _TS(), nullable=True),
        sa.Column("sharpe", sa.Float(), nullable=True),
        sa.Column("sortino", sa.Float(), nullable=True),
        sa.Column("max_drawdown", sa.Float(), nullable=True),
        sa.Column("total_return", sa.Float(), nullable=True),
        sa.Column("num_trades", sa.Integer(), nullable=True),
        sa.Column("win_rate", sa.Float(), nullable=True),
        sa.Column("exposure", sa.Float(), nullable=True),
        sa.Column("final_equity", sa.Float(), nullable=True),
        sa.Column("starting_cash", sa.Float(), nullable=True),
        sa.Column("fill_rule", sa.String(length=64), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_runs")),
    )
    op.create_index("ix_backtest_runs_bot_id", "backtest_runs", ["bot_id"])

    op.create_table(
        "bots",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created_at", _TS(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots")),
        sa.UniqueConstraint("name", name=op.f("uq_bots_name")),
    )
    op.create_table(
        "kill_switch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("engaged_at", _TS(), nullable=True),
        sa.Column("ttl_seconds", sa.Float(), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=True),
        sa.Column("updated_at", _TS(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kill_switch")),
    )
    op.create_table(
        "paper_trading_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("bot_id", sa.String(length=128), nullable=False),
        sa.Column("bot_version", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("run_name", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("starting_cash", sa.Float(), nullable=True),
        sa.Column("total_pnl", sa.Float(), nullable=True),
        sa.Column("realized_pnl", sa.Float(), nullable=True),
        sa.Column("final_equity", sa.Float(), nullable=True),
        sa.Column("max_drawdown", sa.Float(), nullable=True),
        sa.Column("num_fills", sa.Integer(), nullable=False),
        sa.Column("bars_seen", sa.Integer(), nullable=False),
        sa.Column("orders_submitted", sa.Integer(), nullable=False),
        sa.Column("started_at", _TS(), nullable=False),
        sa.Column("last_heartbeat_at", _TS(), nullable=True),
        sa.Column("ended_at", _TS(), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("owner", sa.String(length=256), nullable=True),
        sa.Column("last_bar_ts", _TS(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_trading_runs")),
    )
    op.create_index("ix_paper_trading_runs_bot_id", "paper_trading_runs", ["bot_id"])
    op.create_index("ix_paper_trading_runs_started_at", "paper_trading_runs", ["started_at"])
    op.create_index("ix_paper_trading_runs_status", "paper_trading_runs", ["status"])

    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("bot_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", _TS(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
        sa.UniqueConstraint("name", name=op.f("uq_sweeps_name")),
    )
    op.create_table(
        "bot_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bot_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec_hash", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name=op.f("fk_bot_versions_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_versions")),
        sa.UniqueConstraint("bot_id", "spec_hash", name=op.f("uq_bot_versions_bot_id_spec_hash")),
        sa.UniqueConstraint("bot_id", "version", name=op.f("uq_bot_versions_bot_id_version")),
    )
    op.create_table(
        "paper_equity",
        sa.Column("paper_run_id", sa.String(length=64), nullable=False),
        sa.Column("ts", _TS(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.Column("cash", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["paper_run_id"],
            ["paper_trading_runs.id"],
            name=op.f("fk_paper_equity_paper_run_id_paper_trading_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("paper_run_id", "ts", name=op.f("pk_paper_equity")),
    )
    op.create_table(
        "paper_fills",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("paper_run_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("qty", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("commission", sa.Float(), nullable=False),
        sa.Column("slippage", sa.Float(), nullable=False),
        sa.Column("filled_at", _TS(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_run_id"],
            ["paper_trading_runs.id"],
            name=op.f("fk_paper_fills_paper_run_id_paper_trading_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_fills")),
    )
    op.create_index(
        "ix_paper_fills_paper_run_id_filled_at", "paper_fills", ["paper_run_id", "filled_at"]
    )

    op.create_table(
        "paper_frames",
        sa.Column("paper_run_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("frame", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_run_id"],
            ["paper_trading_runs.id"],
            name=op.f("fk_paper_frames_paper_run_id_paper_trading_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("paper_run_id", "seq", name=op.f("pk_paper_frames")),
    )
    op.create_table(
        "paper_orders",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("paper_run_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("qty", sa.Float(), nullable=False),
        sa.Column("limit_price", sa.Float(), nullable=True),
        sa.Column("stop_price", sa.Float(), nullable=True),
        sa.Column("trail_pct", sa.Float(), nullable=True),
        sa.Column("time_in_force", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("filled_qty", sa.Float(), nullable=False),
        sa.Column("avg_fill_price", sa.Float(), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("tag", sa.String(length=256), nullable=True),
        sa.Column("created_at", _TS(), nullable=False),
        sa.Column("updated_at", _TS(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_run_id"],
            ["paper_trading_runs.id"],
            name=op.f("fk_paper_orders_paper_run_id_paper_trading_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_orders")),
    )
    op.create_index("ix_paper_orders_paper_run_id", "paper_orders", ["paper_run_id"])

    op.create_table(
        "risk_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("paper_run_id", sa.String(length=64), nullable=True),
        sa.Column("at", _TS(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("limit", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["paper_run_id"],
            ["paper_trading_runs.id"],
            name=op.f("fk_risk_events_paper_run_id_paper_trading_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_events")),
    )
    op.create_index("ix_risk_events_paper_run_id", "risk_events", ["paper_run_id"])

    op.create_table(
        "sweep_trials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sweep_id", sa.String(length=64), nullable=False),
        sa.Column("trial_key", sa.String(length=128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_sweep_trials_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep_trials")),
        sa.UniqueConstraint(
            "sweep_id", "trial_key", name=op.f("uq_sweep_trials_sweep_id_trial_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("sweep_trials")
    op.drop_index("ix_risk_events_paper_run_id", table_name="risk_events")

    op.drop_table("risk_events")
    op.drop_index("ix_paper_orders_paper_run_id", table_name="paper_orders")

    op.drop_table("paper_orders")
    op.drop_table("paper_frames")
    op.drop_index("ix_paper_fills_paper_run_id_filled_at", table_name="paper_fills")

    op.drop_table("paper_fills")
    op.drop_table("paper_equity")
    op.drop_table("bot_versions")
    op.drop_table("sweeps")
    op.drop_index("ix_paper_trading_runs_status", table_name="paper_trading_runs")
    op.drop_index("ix_paper_trading_runs_started_at", table_name="paper_trading_runs")
    op.drop_index("ix_paper_trading_runs_bot_id", table_name="paper_trading_runs")

    op.drop_table("paper_trading_runs")
    op.drop_table("kill_switch")
    op.drop_table("bots")
    op.drop_index("ix_backtest_runs_bot_id", table_name="backtest_runs")

    op.drop_table("backtest_runs")
    op.drop_index("ix_audit_log_action", table_name="audit_log")

    op.drop_table("audit_log")
