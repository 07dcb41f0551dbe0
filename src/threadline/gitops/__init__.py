"""GitOps: ModelDeployment specs declared in Git, validated, planned and applied by a pull-based agent."""
