"""The SQL metadata store (SQLite by default, PostgreSQL at scale) and its migrations."""
