"""The audit log service: append inside the caller's transaction, checkpoint, verify, export."""
