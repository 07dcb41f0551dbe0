"""Monitoring and review: feedback labels, context bundles, review tasks, alert state and
events, window profiles, trusted bundle keys, and per-receiver webhook messages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("deployment", sa.String(63), primary_key=True),
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("prediction_time", _TS, nullable=False),
        sa.Column("label", sa.JSON, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(63), nullable=False),
        sa.Column("time", _TS, nullable=False),
    )
    op.create_index("ix_feedback_window", "feedback", ["deployment", "prediction_time"])
    op.create_table(
        "bundles",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("queue", sa.String(63), nullable=True),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(256), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
    )
    op.create_index("ix_bundles_deployment", "bundles", ["deployment", "created"])
    op.create_table(
        "review_tasks",
        sa.Column("bundle_id", sa.String(64), sa.ForeignKey("bundles.id"), primary_key=True),
        sa.Column("queue", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(63), nullable=True),
        sa.Column("claimed_at", _TS, nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("label", sa.JSON, nullable=True),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("resolved_by", sa.String(63), nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_review_tasks_queue", "review_tasks", ["queue", "status", "created_at"])
    op.create_table(
        "monitor_state",
        sa.Column("deployment", sa.String(63), primary_key=True),
        sa.Column("environment", sa.String(63), primary_key=True),
        sa.Column("rule", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", _TS, nullable=True),
        sa.Column("consecutive", sa.Integer, nullable=False),
        sa.Column("last_window_end", _TS, nullable=True),
    )
    op.create_table(
        "monitor_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("window_start", _TS, nullable=False),
        sa.Column("window_end", _TS, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("time", _TS, nullable=False),
    )
    op.create_index("ix_monitor_events_deployment", "monitor_events", ["deployment", "environment", "id"])
    op.create_table(
        "window_profiles",
        sa.Column("deployment", sa.String(63), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("start", _TS, primary_key=True),
        sa.Column("end", _TS, primary_key=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("computed_at", _TS, nullable=False),
    )
    op.create_table(
        "trusted_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("public_pem", sa.Text, nullable=False),
        sa.Column("added_by", sa.String(63), nullable=False),
        sa.Column("added_at", _TS, nullable=False),
    )
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.add_column(sa.Column("url", sa.Text, nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.drop_column("idempotency_key")
        batch.drop_column("url")
    op.drop_index("ix_monitor_events_deployment", "monitor_events")
    op.drop_index("ix_review_tasks_queue", "review_tasks")
    op.drop_index("ix_bundles_deployment", "bundles")
    op.drop_index("ix_feedback_window", "feedback")
    for table in ("trusted_keys", "window_profiles", "monitor_events", "monitor_state", "review_tasks",
                  "bundles", "feedback"):
        op.drop_table(table)
