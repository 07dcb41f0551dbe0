"""Monitoring: drift of live traffic against a model version's reference profile."""
