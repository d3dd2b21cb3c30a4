"""Test-wide isolation (runs and cached results never go to the user's ~/.opmerge) and a Dask cluster
started separately, as a deployment would run one."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest


def pytest_configure(config) -> None:
    os.environ["OPMERGE_HOME"] = tempfile.mkdtemp(prefix="opmerge-tests-")
    # pages wait for heavy results instead of showing their placeholder (tests/test_compute.py
    # checks the placeholder itself); the compute backend is a real Dask cluster of 2 processes
    os.environ.setdefault("OPMERGE_WAIT_S", "120")
    os.environ.setdefault("OPMERGE_WORKERS", "2")


def pytest_sessionfinish(session, exitstatus) -> None:
    """Stop the process-wide compute backend while pytest still owns stdout/stderr."""
    compute = sys.modules.get("opmerge_core.backend.compute")
    if compute is not None and compute._DEFAULT is not None:
        compute._DEFAULT.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """A function returning a free TCP port on 127.0.0.1 (for servers the tests start)."""
    return _free_port


@contextlib.contextmanager
def dask_cluster(scheme: str = "tcp", env: dict[str, str] | None = None, security=None,
                 worker: tuple[str, ...] = ("--nthreads", "1")):
    """A `dask scheduler` + one `dask worker` (``worker``: its flags) on localhost, started as
    processes of their own (with ``env`` added to theirs, e.g. TLS settings), stopped afterwards;
    yields the scheduler's address."""
    from opmerge_core.backend import cluster

    address = f"{scheme}://127.0.0.1:{_free_port()}"
    dask = [sys.executable, "-m", "dask"]
    # the cluster runs this file's tasks: it has the code, like a real cluster has opmerge installed
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    procs = [subprocess.Popen([*dask, "scheduler", "--host", address, "--no-dashboard"], **quiet)]
    procs.append(subprocess.Popen([*dask, "worker", address, *worker, "--nworkers", "1",
                                   "--host", "127.0.0.1", "--no-dashboard"], **quiet))
    try:
        up = False
        for _ in range(120):
            with contextlib.suppress(ValueError):
                client = cluster.connect(address, timeout="2s", security=security)
                up = bool(client.nthreads())
                client.close()
                if up:
                    break
            time.sleep(0.5)
        assert up, "the cluster did not come up"
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="session")
def started_cluster():
    """``dask_cluster`` for a test module's own fixtures (``from conftest import`` would find
    tests/e2e/conftest.py first in a whole-suite run)."""
    return dask_cluster


@pytest.fixture(scope="session")
def scheduler_address():
    """A separately started `dask scheduler` + one `dask worker` on localhost (stopped afterwards)."""
    with dask_cluster() as address:
        yield address
