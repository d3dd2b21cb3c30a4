"""Test-wide isolation: runs never go to the user's ~/.opmerge store."""

import os
import tempfile


def pytest_configure(config) -> None:
    os.environ["OPMERGE_HOME"] = tempfile.mkdtemp(prefix="opmerge-tests-")
