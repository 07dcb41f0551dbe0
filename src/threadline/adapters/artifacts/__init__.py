"""Artifact store backends: local folder, S3-compatible, in-memory."""
