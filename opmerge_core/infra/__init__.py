"""Infrastructure: the run life cycle (runs.py) and run store (SQLite), the compute backend (Dask:
compute.py, cluster.py, worker.py, cache.py), progress and cancellation, devices and input validation."""
