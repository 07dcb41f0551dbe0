"""The pure core: data types, rules and state machines, importing only the standard library."""
