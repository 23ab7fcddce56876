"""Process-level helpers: torch threads, process memory, sizes on disk."""
