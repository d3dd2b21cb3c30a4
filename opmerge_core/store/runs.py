"""The life cycle of a recorded run, written in one place for every job kind and every execution path.

A run goes queued → running → done | failed | cancelled in the run store (runstore.py). ``Ledger`` is
the one writer of those rows: it creates a ``Run`` (queued, this process's pid and instance), keeps one
heartbeat thread for all the runs it has open, and a ``Run`` moves its row on — ``start``,
``progress(done, total, info)`` (the one progress signature of progress.py, written to the store at
most every ``STORE_EVERY`` seconds), and exactly one finish: ``done`` (metrics and artifacts from the
job's ``finalize(result, run_dir)``), ``failed`` (a one-line reason) or ``cancelled``.

Two paths drive a ``Run``: ``execute`` runs a job function ``fn(*args, progress=, cancel=)`` in this
process (``opmerge train``, ``opmerge sfd train``); the compute backend (compute.py) runs it on a Dask
worker and moves the same ``Run`` on from the worker's events.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opmerge_core.basics.progress import CancelFlag, Cancelled, Progress
from opmerge_core.store.runstore import ACTIVE, Heartbeat, RunStore, Status, StoreError

STORE_EVERY = 0.5          # seconds between progress writes of one run to the store
USER_INTERRUPT = "interrupted by the user"

Finalize = Callable[[Any, Path], dict]    # (result, run_dir) -> {"metrics": …, "artifacts": …}


def failure_reason(exc: BaseException) -> str:
    """The one-line error of a failed run: a ``ValueError`` is a clear message already."""
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"


class Ledger:
    """Creates the runs of one store and keeps them alive: one heartbeat thread for all open runs."""

    def __init__(self, store: RunStore, *, store_every: float = STORE_EVERY):
        self.store, self.store_every = store, store_every
        self._heartbeat = Heartbeat(store)

    def create(self, kind: str, params: dict | None = None, *, owner: str | None = None,
               cluster: str | None = None, group: str | None = None) -> Run:
        """A new queued run owned by this process (``cluster``, ``group``: RunStore.create)."""
        run = Run(self, self.store.create(kind, params or {}, owner=owner, cluster=cluster, group=group),
                  self.store_every)
        self._heartbeat.add(run.id)
        return run

    def release(self, run_id: int) -> None:
        """A run finished: no more heartbeats for it."""
        self._heartbeat.discard(run_id)

    def close(self) -> None:
        """Stop the heartbeat (runs still open keep their rows; the next store recovers them)."""
        self._heartbeat.stop()


class Run:
    """One recorded run; every write of its row goes through here (see the module docstring)."""

    def __init__(self, ledger: Ledger, run_id: int, store_every: float):
        self.id, self.status, self.error = run_id, Status.QUEUED, None
        self._ledger, self._every = ledger, store_every
        self._last_write = float("-inf")
        self._lock = threading.Lock()

    @property
    def store(self) -> RunStore:
        return self._ledger.store

    def run_dir(self) -> Path:
        return self.store.run_dir(self.id)

    def start(self) -> None:
        with self._lock:
            if self.status == Status.QUEUED:
                self.status = Status.RUNNING
                self.store.start(self.id)

    def progress(self, done: int, total: int, info: dict | None = None) -> None:
        """Record ``done / total`` (throttled: at most every ``STORE_EVERY`` s, and the last step)."""
        now = time.monotonic()
        if self.status != Status.RUNNING or (now - self._last_write < self._every and done < total):
            return
        self._last_write = now
        with contextlib.suppress(StoreError):      # busy: the next report writes it
            self.store.update(self.id, progress=done / max(total, 1))

    def done(self, result: Any, finalize: Finalize | None) -> None:
        """Finish as done with what ``finalize(result, run_dir)`` recorded; if recording raises, the run
        is failed ("recording the result failed: …") and the exception propagates."""
        recorded: dict = {}
        if finalize is not None:
            try:
                recorded = finalize(result, self.run_dir()) or {}
            except Exception as exc:
                self.failed(f"recording the result failed: {failure_reason(exc)}")
                raise
        self._finish(Status.DONE, metrics=recorded.get("metrics"), artifacts=recorded.get("artifacts"))

    def failed(self, error: str) -> None:
        self._finish(Status.FAILED, error=error)

    def cancelled(self, error: str = Status.CANCELLED) -> None:
        self._finish(Status.CANCELLED, error=error)

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE

    def _finish(self, status: Status, **fields: Any) -> None:
        with self._lock:
            if self.finished:
                return
            self.status, self.error = status, fields.get("error")
            self._ledger.release(self.id)
            row = self.store.get(self.id)
            if row is not None and row["status"] in ACTIVE:    # not recovered by another process
                self.store.finish(self.id, status, **fields)

    def execute(self, fn: Callable, args: tuple, finalize: Finalize | None, *,
                progress: Progress | None = None, cancel: CancelFlag | None = None) -> Any:
        """``fn(*args, progress=, cancel=)`` in this process, recorded: its result once recorded, or
        its exception (``Cancelled``, Ctrl-C, a failure) re-raised after recording it."""
        def report(done: int, total: int, info: dict) -> None:
            self.progress(done, total, info)
            if progress is not None:
                progress(done, total, info)

        self.start()
        try:
            result = fn(*args, progress=report, cancel=cancel)
        except Cancelled:
            self.cancelled()
            raise
        except KeyboardInterrupt:
            self.cancelled(USER_INTERRUPT)
            raise
        except Exception as exc:
            self.failed(failure_reason(exc))
            raise
        self.done(result, finalize)
        return result


def execute(store: RunStore, kind: str, fn: Callable, *args, params: dict | None = None,
            finalize: Finalize | None = None, progress: Progress | None = None,
            cancel: CancelFlag | None = None) -> tuple[int, Any]:
    """Run ``fn(*args, progress=, cancel=)`` in this process as a new recorded run of ``kind``:
    returns (run id, result); a failure or cancellation propagates after it is recorded."""
    ledger = Ledger(store)
    try:
        run = ledger.create(kind, params)
        return run.id, run.execute(fn, args, finalize, progress=progress, cancel=cancel)
    finally:
        ledger.close()
