"""I/O adapters: the only home of foreign storage and network libraries."""
