"""Artifact packaging shared by the SDK and the server."""
