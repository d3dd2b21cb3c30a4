"""Shared basics, the lowest layer: input validation (one set of checks for the core, the CLI and the
dashboard), the one progress signature with cooperative cancellation, and the torch device choice."""
