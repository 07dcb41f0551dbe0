"""Table definitions for the metadata store (SQLAlchemy Core).

The Alembic migrations under ``migrations/versions`` create these tables; this module is
what the store queries against. JSON documents that are hashed (audit details) are stored
as text so the database never re-encodes them.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "models", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("owner", sa.String(63), nullable=False),
    sa.Column("risk_tier", sa.String(16), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(63), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

model_versions = sa.Table(
    "model_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("artifact_digest", sa.String(64), nullable=False),
    sa.Column("artifact_size", sa.BigInteger, nullable=False),
    sa.Column("flavor", sa.String(16), nullable=False),
    sa.Column("artifact_format", sa.String(16), nullable=False),
    sa.Column("trusted", sa.Boolean, nullable=False),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("profile", sa.JSON, nullable=True),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("card", sa.JSON, nullable=False),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("status", sa.String(80), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(63), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

aliases = sa.Table(
    "aliases", metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.String(63), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("teams", sa.JSON, nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

audit_entries = sa.Table(
    "audit_entries", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(63), nullable=False),
    sa.Column("action", sa.String(63), nullable=False),
    sa.Column("object", sa.String(255), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_entries_object", "object"),
    sa.Index("ix_audit_entries_actor", "actor"),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
)

# One row (id = 1): the newest (seq, hash). Writers lock it, which serialises the chain.
audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# TOTP secrets, encrypted at rest; ``last_step`` is the newest accepted time step, so a code
# is accepted once.
user_mfa = sa.Table(
    "user_mfa", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("secret", sa.LargeBinary, nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_step", sa.BigInteger, nullable=False),
)

# The governance policy: every change is a new row; the highest version is in force.
policies = sa.Table(
    "policies", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(63), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Approval decisions are immutable: withdrawing an approval is a new row.
approvals = sa.Table(
    "approvals", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("environment", sa.String(63), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(63), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("mfa", sa.Boolean, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_approvals_version", "model_id", "version", "environment"),
)

# Card revisions of a version; revision 1 is the card given at registration.
model_cards = sa.Table(
    "model_cards", metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("card", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(63), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Signed human attestations of readiness items that cannot be checked automatically.
attestations = sa.Table(
    "attestations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("deployment", sa.String(63), nullable=False),
    sa.Column("environment", sa.String(63), nullable=False),
    sa.Column("item", sa.String(63), nullable=False),
    sa.Column("actor", sa.String(63), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
)

# Webhook notifications, written in the transaction of the change they announce and
# delivered (with retries) by a background dispatcher.
webhook_outbox = sa.Table(
    "webhook_outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event", sa.String(63), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("url", sa.Text, nullable=True),  # one receiver (an alert route); null: the configured ones
    sa.Column("idempotency_key", sa.String(64), nullable=True),
)

# GitOps: each deployment's condition and the agent's memory of it, one row per (name, env).
deployments = sa.Table(
    "deployments", metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("environment", sa.String(63), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("commit", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("differences", sa.JSON, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("endpoints", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

deployment_history = sa.Table(
    "deployment_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("environment", sa.String(63), nullable=False),
    sa.Column("commit", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("workload", sa.JSON, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_deployment_history_key", "environment", "name", "id"),
)

# The commit each Git source was last read at: a new commit that does not descend from it is
# a force push.
gitops_sources = sa.Table(
    "gitops_sources", metadata,
    sa.Column("source", sa.String(512), primary_key=True),
    sa.Column("commit", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Ground-truth labels attached to logged predictions. ``prediction_time`` is copied from the
# log so that a window's labels are found without scanning the log for every label.
feedback = sa.Table(
    "feedback", metadata,
    sa.Column("deployment", sa.String(63), primary_key=True),
    sa.Column("prediction_id", sa.String(64), primary_key=True),
    sa.Column("prediction_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("label", sa.JSON, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(63), nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_feedback_window", "deployment", "prediction_time"),
)

# Signed context bundles, immutable once stored; ``body`` is the canonical JSON that was signed.
bundles = sa.Table(
    "bundles", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("deployment", sa.String(63), nullable=False),
    sa.Column("queue", sa.String(63), nullable=True),
    sa.Column("model", sa.String(63), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(256), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bundles_deployment", "deployment", "created"),
)

# The human side of a bundle: one review task per bundle that names a queue.
review_tasks = sa.Table(
    "review_tasks", metadata,
    sa.Column("bundle_id", sa.String(64), sa.ForeignKey("bundles.id"), primary_key=True),
    sa.Column("queue", sa.String(63), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("assignee", sa.String(63), nullable=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("label", sa.JSON, nullable=True),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("resolved_by", sa.String(63), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_review_tasks_queue", "queue", "status", "created_at"),
)

# Alert rules' memory between evaluations: status and the count of consecutive breaching windows.
monitor_state = sa.Table(
    "monitor_state", metadata,
    sa.Column("deployment", sa.String(63), primary_key=True),
    sa.Column("environment", sa.String(63), primary_key=True),
    sa.Column("rule", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("consecutive", sa.Integer, nullable=False),
    sa.Column("last_window_end", sa.DateTime(timezone=True), nullable=True),
)

# Every firing and resolution of an alert (the event log route), and every retraining call.
monitor_events = sa.Table(
    "monitor_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("deployment", sa.String(63), nullable=False),
    sa.Column("environment", sa.String(63), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_monitor_events_deployment", "deployment", "environment", "id"),
)

# Computed window summaries (drift, service levels, quality), so dashboards do not recompute.
window_profiles = sa.Table(
    "window_profiles", metadata,
    sa.Column("deployment", sa.String(63), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("end", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)

# Public keys whose bundles this installation accepts on import (its own key always counts).
trusted_keys = sa.Table(
    "trusted_keys", metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("public_pem", sa.Text, nullable=False),
    sa.Column("added_by", sa.String(63), nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

# Measured utilization, rolled up per replica and minute (``capacity.sampling``); pruned after
# the retention setting.
utilization = sa.Table(
    "utilization", metadata,
    sa.Column("deployment", sa.String(63), primary_key=True),
    sa.Column("environment", sa.String(63), primary_key=True),
    sa.Column("replica", sa.String(63), primary_key=True),
    sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("cpu_cores", sa.Float, nullable=False),
    sa.Column("rss_bytes", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("p99_ms", sa.Float, nullable=True),
    sa.Column("queue_depth", sa.Float, nullable=False),
    sa.Column("batch_rows", sa.Float, nullable=True),
    sa.Column("gpu_util", sa.Float, nullable=True),
    sa.Column("gpu_memory_bytes", sa.BigInteger, nullable=True),
    sa.Index("ix_utilization_minute", "minute"),
)
