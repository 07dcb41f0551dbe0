"""Context bundles in the control plane and the human review queue."""
