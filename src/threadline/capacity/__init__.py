"""Capacity and cost: what a deployment uses, what it should request, how far to scale, what it costs.

Clusters run at about 10% CPU because nobody measures what a model needs and changing
requests by hand is risky. This package turns measured per-minute samples into numbers a
person can review: ``recommend`` (right-sized requests and replica bounds with their
evidence, saving and risk), ``autoscale`` (the replica count the local runtime should run
now), ``cost`` (what each deployment, model or team costs) and ``prices`` (the price table
behind every money figure). Every module here is pure: values in, values out; sampling,
storage and Git edits live with the callers.
"""
