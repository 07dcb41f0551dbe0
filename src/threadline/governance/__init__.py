"""Governance of registered models: model cards today; the checks that read them build on these."""
