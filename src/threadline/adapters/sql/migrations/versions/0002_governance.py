"""Governance: user teams, TOTP, policies, approvals, card revisions, attestations, webhooks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("teams", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "user_mfa",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("confirmed_at", _TS, nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(63), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(63), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("mfa", sa.Boolean, nullable=False),
        sa.Column("time", _TS, nullable=False),
    )
    op.create_index("ix_approvals_version", "approvals", ["model_id", "version", "environment"])
    op.create_table(
        "model_cards",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("card", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(63), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "attestations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("item", sa.String(63), nullable=False),
        sa.Column("actor", sa.String(63), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("time", _TS, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event", sa.String(63), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_entries_object", "audit_entries", ["object"])
    op.create_index("ix_audit_entries_actor", "audit_entries", ["actor"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_actor", "audit_entries")
    op.drop_index("ix_audit_entries_object", "audit_entries")
    for table in ("webhook_outbox", "attestations", "model_cards", "approvals", "policies", "user_mfa"):
        op.drop_table(table)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("teams")
