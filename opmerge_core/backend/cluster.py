"""Reaching a Dask cluster for the compute backend (compute.py): an existing scheduler by address, or
an embedded ``LocalCluster`` of ``$OPMERGE_WORKERS`` worker processes (each: a training lane and a
thread for page work) that only this server can use (TLS with throw-away credentials, security.py;
no HTTP endpoint serves anything).

A cluster started as processes of its own (the web tier, cli/tier.py, or by hand) gets the same
workers from ``worker_flags`` and the same locked-down endpoints from ``config_env(NO_HTTP)``."""

from __future__ import annotations

import logging
import os

from opmerge_core.basics.validation import check_int

WORKERS_CAP = 64
CONNECT_TIMEOUT = "5s"
TRAIN_RESOURCE = "train"   # a worker's training lane: one run at a time (Dask worker resource)
THREADS_PER_WORKER = 2     # of the embedded workers: one for a run, one for page work
PRELOAD = "opmerge_core.backend.worker"    # its dask_setup gives the training lane its own thread
# the scheduler's and the workers' HTTP endpoints serve nothing: they would tell anyone on the host the
# tasks, logs and call stacks (they listen on loopback only, but a shared host has other users)
NO_HTTP = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}


def default_workers() -> int:
    """``$OPMERGE_WORKERS`` or one worker process per core."""
    env = os.environ.get("OPMERGE_WORKERS")
    if not env:
        return max(1, os.cpu_count() or 1)
    return check_int(env, "OPMERGE_WORKERS", lo=1, hi=WORKERS_CAP)


def check_address(address: str) -> str:
    """A scheduler address like ``tcp://host:8786`` (one-line error otherwise)."""
    address = address.strip()
    scheme, sep, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if not sep or scheme not in ("tcp", "tls", "inproc", "ws", "wss") or not host or not port.isdigit():
        raise ValueError(f"scheduler address must look like tcp://HOST:PORT, got {address!r}")
    return address


def worker_flags() -> list[str]:
    """The ``dask worker`` flags that give a started worker what the embedded cluster's workers have:
    two threads, one training lane (the ``train`` resource) and the lane's own low-priority thread
    (``PRELOAD``). A worker offering the resource must preload the module: runs ask for its thread."""
    return ["--nthreads", str(THREADS_PER_WORKER), "--resources", f"{TRAIN_RESOURCE}=1",
            "--preload", PRELOAD]


def config_env(config: dict[str, object]) -> dict[str, str]:
    """Dask configuration as the environment variables a started ``dask scheduler``/``dask worker``
    reads it from (``distributed.worker.http.routes`` → ``DASK_DISTRIBUTED__WORKER__HTTP__ROUTES``)."""
    return {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): repr(value)
            for key, value in config.items()}


def connect(address: str, timeout: str = CONNECT_TIMEOUT, security=None):
    """A ``distributed.Client`` for an existing scheduler; ValueError (one line) if unreachable or if
    it refuses this client. ``security``: a ``distributed.Security`` (default: Dask's configuration,
    e.g. the ``DASK_DISTRIBUTED__COMM__TLS__…`` variables of security.dask_env)."""
    from distributed import Client

    address = check_address(address)
    try:
        return Client(address, timeout=timeout, set_as_default=False, security=security)
    except (OSError, TimeoutError) as exc:   # unreachable, or the TLS handshake refused us
        raise ValueError(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    except TypeError:                        # Dask: a tls:// address without TLS configuration
        raise ValueError(f"the Dask scheduler at {address} speaks TLS: give this process its "
                         "credentials (Dask's distributed.comm.tls settings; README, \"Securing a "
                         "cluster\")") from None


def embedded_cluster(n_workers: int | None, allowed_failures: int):
    """A ``LocalCluster`` of worker processes that only this server can use: TLS with throw-away
    credentials (security.py), so no other local process can submit work; everything on loopback (Dask
    would bind its HTTP endpoints to all interfaces), and those endpoints serve nothing (they would
    tell anyone the tasks, logs and call stacks): a classroom network sees only Streamlit.

    Each worker has two threads and one training lane (the ``train`` resource): at most one run at a
    time, so a page's result always finds a free thread instead of queueing behind trainings."""
    import dask
    from distributed import LocalCluster

    from opmerge_core.backend import security

    # The scheduler and the workers' nannies of a LocalCluster run in this (the server's) process and
    # share its GIL: their monitors sample every few seconds instead of several times a second.
    config = {"distributed.scheduler.allowed-failures": allowed_failures,
              "distributed.admin.system-monitor.interval": "5s",
              "distributed.admin.system-monitor.disk": False,
              "distributed.worker.memory.monitor-interval": "1s",
              "distributed.admin.tick.interval": "500ms", **NO_HTTP}
    with dask.config.set(config):
        return LocalCluster(n_workers=n_workers or default_workers(), threads_per_worker=THREADS_PER_WORKER,
                            resources={TRAIN_RESOURCE: 1}, preload=[PRELOAD], processes=True,
                            host="127.0.0.1", dashboard_address="127.0.0.1:0",
                            worker_dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL,
                            security=security.temporary(), env={"DASK_LOGGING__DISTRIBUTED": "error"})
