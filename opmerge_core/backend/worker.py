"""The worker side of the compute backend (compute.py): what a Dask worker executes for a job.

``run_task`` calls the job function with ``progress(done, total, info)`` — throttled Dask events to
the submitting server (worker ``log_event`` → client ``subscribe_topic``) — and, for a run, ``cancel``,
a Dask ``Event`` polled cooperatively; the function raises ``progress.Cancelled`` when it sees it set.
``NiceWorkers`` is the embedded cluster's worker plugin; what else a worker sets up (e.g. loading
compiled kernels) is passed in from above by whoever starts the backend (``Backend(worker_setup=…)``):
the backend knows nothing of the work it runs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

PROGRESS_EVERY = 0.25      # seconds between progress events sent by a worker
CANCEL_POLL = 0.25         # seconds between a worker's looks at its cancel flag
STARTED_EVENT, PROGRESS_EVENT = "running", "progress"   # the events a task sends its server


def cancel_event_name(key: str) -> str:
    """The name of the Dask ``Event`` that cancels the run of task ``key``."""
    return f"cancel-{key}"


class EventReporter:
    """``progress(done, total, info)`` on a worker: throttled Dask events to the submitting server."""

    def __init__(self, topic: str, key: str):
        from distributed import get_worker

        self.topic, self.key, self._last = topic, key, 0.0
        self._worker = get_worker()
        self.send(STARTED_EVENT, 0, 1, {})

    def send(self, event: str, done: int, total: int, info: dict) -> None:
        clean = {k: float(v) if isinstance(v, int | float) or hasattr(v, "item") else str(v)
                 for k, v in (info or {}).items()}
        self._worker.log_event(self.topic, {"key": self.key, "event": event, "done": int(done),
                                            "total": int(total), "info": clean})

    def __call__(self, done: int, total: int, info: dict | None = None) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY or done >= total:
            self._last = now
            self.send(PROGRESS_EVENT, done, total, info or {})


class EventCancelFlag:
    """``is_set()`` of a Dask ``Event``, polled at most every ``CANCEL_POLL`` seconds."""

    def __init__(self, name: str):
        from distributed import Event

        self._event, self._last, self._set = Event(name), 0.0, False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now - self._last >= CANCEL_POLL:
            self._last = now
            self._set = bool(self._event.is_set())
        return self._set


def run_task(fn: Callable, args: tuple, topic: str, key: str, recorded: bool) -> Any:
    """What a worker executes: ``fn(*args)`` for a cached result, ``fn(*args, progress=, cancel=)``
    for a run. The first event tells the server the task is running."""
    reporter = EventReporter(topic, key)
    if not recorded:
        return fn(*args)
    return fn(*args, progress=reporter, cancel=EventCancelFlag(cancel_event_name(key)))


class NiceWorkers(WorkerPlugin):
    """Worker plugin of the embedded cluster: a lower CPU priority, so the server's UI wins the CPU,
    then ``setup()`` if given (a picklable callable without arguments, run once per worker)."""

    name = "opmerge-nice"

    def __init__(self, setup: Callable[[], Any] | None = None):
        self.worker_setup = setup

    def setup(self, worker) -> None:
        with contextlib.suppress(OSError):
            os.nice(10)
        if self.worker_setup is not None:
            self.worker_setup()
