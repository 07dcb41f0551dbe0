"""Alembic environment: always run on the connection Threadline hands over (see migrate.py)."""

from alembic import context

from threadline.adapters.sql import schema

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=schema.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
