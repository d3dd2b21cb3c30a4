"""The shared persistent result cache of the compute backend (compute.py): pure heavy results (a
large-T DP, curves, phase diagrams, shared plans, …) under ``$OPMERGE_HOME/cache``, shared by every
server process, surviving restarts, keyed by the source of ``opmerge_core`` (``code_version``) so an
upgrade never serves stale results. A cache folder that cannot be used (``OPMERGE_HOME`` damaged,
read-only or full) leaves a memory-only cache and a ``problem`` to report: pages still draw.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from opmerge_core.store.runstore import opmerge_home, store_problem

DISK_ERRORS = (sqlite3.Error, OSError)

RESULTS_MAX = 256          # cached results kept in memory in front of the disk cache
CACHE_BYTES = 1 << 30      # disk cache size limit (least recently used entries go first)


def code_version() -> str:
    """A hash of opmerge_core's source: cached results never outlive the code that made them."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        h = hashlib.sha256()
        for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
        _CODE_VERSION = h.hexdigest()[:16]
    return _CODE_VERSION


_CODE_VERSION: str | None = None


class ResultCache:
    """The shared persistent result cache (``diskcache``: SQLite + files, safe across processes), in
    front of it the last ``RESULTS_MAX`` results in memory; memory only if the folder is unusable."""

    def __init__(self, directory: Path | None = None, size_limit: int = CACHE_BYTES):
        import diskcache

        self.directory = Path(directory) if directory is not None else opmerge_home() / "cache"
        self.problem: str | None = None          # why the disk cache is off, if it is
        self._disk = None
        try:
            self._disk = diskcache.Cache(str(self.directory), size_limit=size_limit)
        except DISK_ERRORS as exc:               # nothing is deleted: the folder stays as it was
            path = self.directory / "cache.db"
            self.problem = f"result cache {path}: {store_problem(path, exc)}"
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return True, self._memory[key]
        if self._disk is None:
            return False, None
        sentinel = object()
        try:
            value = self._disk.get(key, default=sentinel)
        except DISK_ERRORS:                      # damaged since it was opened: a miss, computed again
            return False, None
        if value is sentinel:
            return False, None
        self._remember(key, value)
        return True, value

    def put(self, key: str, value: Any) -> None:
        self._remember(key, value)
        if self._disk is not None:
            with contextlib.suppress(Exception):   # a full or read-only disk must not fail a page
                self._disk.set(key, value)

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > RESULTS_MAX:
                self._memory.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
        if self._disk is not None:
            self._disk.clear()

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
