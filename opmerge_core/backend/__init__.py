"""The compute backend: heavy results and training jobs on a Dask cluster, embedded or remote
(compute.py: jobs and cached results; cluster.py: starting or joining a cluster; worker.py: the task
wrapper that runs on a worker with progress and cancellation)."""
