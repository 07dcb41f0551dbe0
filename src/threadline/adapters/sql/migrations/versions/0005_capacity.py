"""Capacity: utilization rolled up per replica and minute.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "utilization",
        sa.Column("deployment", sa.String(63), primary_key=True),
        sa.Column("environment", sa.String(63), primary_key=True),
        sa.Column("replica", sa.String(63), primary_key=True),
        sa.Column("minute", _TS, primary_key=True),
        sa.Column("cpu_cores", sa.Float, nullable=False),
        sa.Column("rss_bytes", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("p99_ms", sa.Float, nullable=True),
        sa.Column("queue_depth", sa.Float, nullable=False),
        sa.Column("batch_rows", sa.Float, nullable=True),
        sa.Column("gpu_util", sa.Float, nullable=True),
        sa.Column("gpu_memory_bytes", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_utilization_minute", "utilization", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_utilization_minute", "utilization")
    op.drop_table("utilization")
