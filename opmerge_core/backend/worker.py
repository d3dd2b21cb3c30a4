"""The worker side of the compute backend (compute.py): what a Dask worker executes for a job.

``run_task`` calls the job function with ``progress(done, total, info)`` — throttled Dask events to
the submitting server (worker ``log_event`` → client ``subscribe_topic``) — and, for a run, ``cancel``,
a Dask ``Event`` polled cooperatively; the function raises ``progress.Cancelled`` when it sees it set.
``NiceWorkers`` is the embedded cluster's worker plugin (a lower CPU priority for the worker); what
else a worker sets up (e.g. loading compiled kernels) is passed in from above by whoever starts the
backend (``Backend(worker_setup=…)``): the backend knows nothing of the work it runs. Every worker
with a training lane preloads this module (``dask_setup``, run before a worker takes any task; the
embedded cluster's, the web tier's and any started with ``cluster.worker_flags``): the training
lane's executor, whose one thread runs at the lowest priority so that page work on the same worker
(and the server) wins the CPU while a run trains.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from opmerge_core.basics.progress import Cancelled

PROGRESS_EVERY = 0.25      # seconds between progress events sent by a worker
CANCEL_POLL = 0.25         # seconds between a worker's looks at its cancel flag
STARTED_EVENT, PROGRESS_EVENT = "running", "progress"   # the events a task sends its server
WORKER_NICE = 10           # the embedded workers' CPU priority (the server runs at 0)
TRAIN_NICE = 19            # the training lane's thread: the lowest
TRAIN_EXECUTOR = "train"   # the training lane's executor on an embedded worker


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
    cancel = EventCancelFlag(cancel_event_name(key))
    if cancel.is_set():                   # cancelled while it waited for this worker
        raise Cancelled("cancelled before it started")
    return fn(*args, progress=reporter, cancel=cancel)


def lower_priority(nice: int = TRAIN_NICE) -> None:
    """This thread at CPU priority ``nice`` (Linux priorities are per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))


def dask_setup(worker) -> None:
    """Dask's preload hook (workers with a training lane preload this module): the lane's executor,
    one thread at the lowest CPU priority; runs are annotated ``executor=TRAIN_EXECUTOR``."""
    from concurrent.futures import ThreadPoolExecutor

    worker.executors[TRAIN_EXECUTOR] = ThreadPoolExecutor(1, thread_name_prefix="opmerge-train",
                                                          initializer=lower_priority)


class NiceWorkers(WorkerPlugin):
    """Worker plugin of the embedded cluster: a lower CPU priority, so the server's UI wins the CPU,
    then ``setup()`` if given (a picklable callable without arguments, run once per worker)."""

    name = "opmerge-nice"

    def __init__(self, setup: Callable[[], Any] | None = None):
        self.worker_setup = setup

    def setup(self, worker) -> None:
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICE)           # Linux: this thread, and the threads it starts from now on
        if self.worker_setup is not None:
            self.worker_setup()
