"""Infrastructure: the compute backend (Dask), the run store (SQLite) and input validation."""
