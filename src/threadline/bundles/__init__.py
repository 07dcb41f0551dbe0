"""Context bundles: everything a human reviewer needs to judge one escalated prediction.

A bundle holds the request as received, each step of the model's decision chain, the outputs
and the provenance of the model that produced them, signed so that it can leave the server and
come back. ``chain`` records the decision chain, ``document`` is the signed bundle itself,
``replay`` judges whether a re-run gave the same chain, and ``portable`` moves a bundle (and
optionally its model) as one file between installations.
"""
