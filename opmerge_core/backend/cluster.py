"""Reaching a Dask cluster for the compute backend (compute.py): an existing scheduler by address, or
an embedded ``LocalCluster`` of ``$OPMERGE_WORKERS`` single-threaded worker processes."""

from __future__ import annotations

import logging
import os

WORKERS_CAP = 64
CONNECT_TIMEOUT = "5s"


def default_workers() -> int:
    """``$OPMERGE_WORKERS`` or one worker process per core."""
    env = os.environ.get("OPMERGE_WORKERS")
    if not env:
        return max(1, os.cpu_count() or 1)
    try:
        value = int(env)
    except ValueError:
        raise ValueError(f"OPMERGE_WORKERS must be a positive integer, got {env!r}") from None
    if not 1 <= value <= WORKERS_CAP:
        raise ValueError(f"OPMERGE_WORKERS must be in [1, {WORKERS_CAP}], got {value}")
    return value


def check_address(address: str) -> str:
    """A scheduler address like ``tcp://host:8786`` (one-line error otherwise)."""
    address = address.strip()
    scheme, sep, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if not sep or scheme not in ("tcp", "tls", "inproc", "ws", "wss") or not host or not port.isdigit():
        raise ValueError(f"scheduler address must look like tcp://HOST:PORT, got {address!r}")
    return address


def connect(address: str, timeout: str = CONNECT_TIMEOUT):
    """A ``distributed.Client`` for an existing scheduler; ValueError (one line) if unreachable."""
    from distributed import Client

    address = check_address(address)
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__})") from None


def embedded_cluster(n_workers: int | None, allowed_failures: int):
    """A ``LocalCluster`` of single-threaded worker processes, everything on loopback (HTTP endpoints
    included: Dask would bind them to all interfaces): a classroom network sees only Streamlit."""
    import dask
    from distributed import LocalCluster

    # The scheduler and the workers' nannies of a LocalCluster run in this (the server's) process and
    # share its GIL: their monitors sample every few seconds instead of several times a second.
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures,
                          "distributed.admin.system-monitor.interval": "5s",
                          "distributed.admin.system-monitor.disk": False,
                          "distributed.worker.memory.monitor-interval": "1s",
                          "distributed.admin.tick.interval": "500ms"}):
        return LocalCluster(n_workers=n_workers or default_workers(), threads_per_worker=1,
                            processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                            worker_dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL,
                            env={"DASK_LOGGING__DISTRIBUTED": "error"})
