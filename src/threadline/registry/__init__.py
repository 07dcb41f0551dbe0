"""The model registry: turning user inputs into immutable version facts."""
