"""The control-plane REST API (FastAPI): thin routes over the services."""
