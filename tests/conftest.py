"""Test-wide isolation: runs and cached results never go to the user's ~/.opmerge."""

import os
import tempfile


def pytest_configure(config) -> None:
    os.environ["OPMERGE_HOME"] = tempfile.mkdtemp(prefix="opmerge-tests-")
    # pages wait for heavy results instead of showing their placeholder (tests/test_compute.py
    # checks the placeholder itself); the compute backend is a real Dask cluster of 2 processes
    os.environ.setdefault("OPMERGE_WAIT_S", "120")
    os.environ.setdefault("OPMERGE_WORKERS", "2")
