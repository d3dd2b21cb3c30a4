"""Background jobs: one bounded worker pool per process, shared by every dashboard session.

A classroom of 20 must not start 20 trainings at once: at most ``max_workers`` jobs run (default
``max(1, os.cpu_count() // 2)``, or ``$OPMERGE_MAX_JOBS``); the rest wait in a FIFO queue and report
their 1-based queue position. Every job is a run in the run store (queued → running → done / failed
/ cancelled, with the failure reason), kept alive there by a heartbeat.

Jobs carry an ``owner`` (a dashboard session id). ``cancel_session(owner)`` cancels all of them; with
``lease=True`` a job is also cancelled when its owner stops calling ``touch(owner)`` for ``lease_s``
seconds — the dashboard polls while its tab is open, so closing the tab stops its jobs.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from opmerge_core import train_spec
from opmerge_core.runstore import Heartbeat, RunStore, default_path
from opmerge_core.trainer import TrainingCancelled

LEASE_S = 120.0           # seconds without a touch before a leased session's jobs are cancelled
                          # (long enough for a browser throttling a background tab to ~1 poll/min)
PROGRESS_EVERY = 0.5      # seconds between progress writes to the store
LOSS_POINTS_MAX = 2000    # live loss points kept per job
MAX_JOBS_CAP = 64


def default_max_workers() -> int:
    env = os.environ.get("OPMERGE_MAX_JOBS")
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"OPMERGE_MAX_JOBS must be a positive integer, got {env!r}") from None
        if not 1 <= value <= MAX_JOBS_CAP:
            raise ValueError(f"OPMERGE_MAX_JOBS must be in [1, {MAX_JOBS_CAP}], got {value}")
        return value
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(eq=False)
class Job:
    """One queued/running/finished job. ``result`` is the task's return value (in memory)."""

    id: int                              # its run id in the store
    kind: str
    params: dict
    owner: str | None
    task: Callable[[Job], Any] = field(repr=False)
    status: str = "queued"
    progress: float = 0.0
    info: dict = field(default_factory=dict)
    losses: list[tuple[float, float]] = field(default_factory=list)   # (progress, loss)
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    lease: bool = False
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    _runner: JobRunner | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @property
    def queue_position(self) -> int | None:
        """1-based position among queued jobs, None once it runs."""
        return self._runner.queue_position(self) if self._runner else None

    def cancel(self) -> None:
        if self._runner:
            self._runner.cancel(self)

    def report(self, done: int, total: int, info: dict) -> None:
        """Progress callback for tasks: (done, total, info) with an optional info['loss']."""
        self.progress = done / max(total, 1)
        self.info = info
        if "loss" in info:
            self.losses.append((self.progress, float(info["loss"])))
            if len(self.losses) > LOSS_POINTS_MAX:
                del self.losses[::2]
        if self._runner:
            self._runner._progress(self)


class JobRunner:
    """A process-wide FIFO job queue with a bounded number of worker threads."""

    def __init__(self, max_workers: int | None = None, store: RunStore | None = None,
                 lease_s: float = LEASE_S):
        self.max_workers = default_max_workers() if max_workers is None else int(max_workers)
        if not 1 <= self.max_workers <= MAX_JOBS_CAP:
            raise ValueError(f"max_workers must be in [1, {MAX_JOBS_CAP}], got {max_workers}")
        self.store = store if store is not None else RunStore()
        self.lease_s = lease_s
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()
        self._jobs: dict[int, Job] = {}
        self._touched: dict[str, float] = {}
        self._last_write: dict[int, float] = {}
        self._closed = False
        self._heartbeat = Heartbeat(self.store)
        self._threads = [threading.Thread(target=self._work, name=f"opmerge-job-{i}", daemon=True)
                         for i in range(self.max_workers)]
        for t in self._threads:
            t.start()
        self._watch = threading.Thread(target=self._watch_leases, name="opmerge-lease", daemon=True)
        self._watch.start()

    # ---- submitting -------------------------------------------------------------------------------
    def submit(self, kind: str, task: Callable[[Job], Any], params: dict | None = None, *,
               owner: str | None = None, lease: bool = False) -> Job:
        """Queue ``task(job)``; it should call ``job.report`` and honour ``job.cancel_event``."""
        params = params or {}
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is shut down")
            run_id = self.store.create(kind, params, owner=owner)
            job = Job(run_id, kind, params, owner, task, lease=lease, _runner=self)
            self._jobs[run_id] = job
            self._queue.append(job)
            self._heartbeat.add(run_id)
            if owner is not None:
                self._touched[owner] = time.monotonic()
            self._lock.notify()
        return job

    def submit_train(self, spec: train_spec.TrainSpec, *, owner: str | None = None,
                     lease: bool = False) -> Job:
        """Queue a training (``train_spec.execute``); job.result is the TrainResult."""
        def task(job: Job):
            _, result = train_spec.execute(self.store, spec, job.id, job.report, job.cancel_event)
            return result
        return self.submit(train_spec.KIND, task, spec.as_dict(), owner=owner, lease=lease)

    # ---- querying ---------------------------------------------------------------------------------
    def get(self, run_id: int) -> Job | None:
        return self._jobs.get(run_id)

    def jobs(self, owner: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def queue_position(self, job: Job) -> int | None:
        with self._lock:
            for i, queued in enumerate(self._queue):
                if queued is job:
                    return i + 1
        return None

    @property
    def running(self) -> int:
        with self._lock:
            return sum(j.status == "running" for j in self._jobs.values())

    # ---- cancelling -------------------------------------------------------------------------------
    def cancel(self, job: Job) -> None:
        with self._lock:
            if job.done:
                return
            job.cancel_event.set()
            if job in self._queue:          # never started: finish it here
                self._queue.remove(job)
                self._finish(job, "cancelled", error="cancelled")

    def cancel_session(self, owner: str) -> int:
        """Cancel every unfinished job of a session; returns how many."""
        jobs = [j for j in self.jobs(owner) if not j.done]
        for j in jobs:
            self.cancel(j)
        return len(jobs)

    def touch(self, owner: str) -> None:
        """The session is alive (called by the dashboard while it polls)."""
        with self._lock:
            self._touched[owner] = time.monotonic()

    def shutdown(self, cancel: bool = True, timeout: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            pending = [j for j in self._jobs.values() if not j.done]
            self._lock.notify_all()
        if cancel:
            for j in pending:
                self.cancel(j)
        for t in self._threads:
            t.join(timeout)
        self._heartbeat.stop()

    # ---- internals --------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                job.status, job.started = "running", time.time()
            self.store.start(job.id)
            try:
                job.result = job.task(job)
            except TrainingCancelled:
                self._finish(job, "cancelled", error="cancelled")
            except Exception as exc:  # a failed job must never kill the worker
                message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                self._finish(job, "failed", error=message)
            else:
                if job.cancel_event.is_set() and job.result is None:
                    self._finish(job, "cancelled", error="cancelled")
                else:
                    self._finish(job, "done")

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        job.status, job.error, job.finished = status, error, time.time()
        if status == "done":
            job.progress = 1.0
        row = self.store.get(job.id)
        if row and row["status"] in ("queued", "running"):     # the task may have recorded it
            self.store.finish(job.id, status, error=error)
        self._heartbeat.discard(job.id)

    def _progress(self, job: Job) -> None:
        now = time.monotonic()
        if now - self._last_write.get(job.id, 0.0) >= PROGRESS_EVERY:
            self._last_write[job.id] = now
            self.store.update(job.id, progress=job.progress)

    def _watch_leases(self) -> None:
        while not self._closed:
            time.sleep(min(1.0, self.lease_s / 4))
            now = time.monotonic()
            with self._lock:
                stale = {j.owner for j in self._jobs.values() if j.lease and not j.done and
                         j.owner is not None and now - self._touched.get(j.owner, now) > self.lease_s}
            for owner in stale:
                self.cancel_session(owner)


_DEFAULT: JobRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> JobRunner:
    """The process-wide runner (created on first use, on the default run store).

    It sets torch to one intra-op thread: the pool's parallelism is across jobs, and the trainer's
    per-step tensors are too small for threads to pay off (bench/bench_trainer.py).
    """
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is not None and not _DEFAULT._closed and _DEFAULT.store.path != default_path():
            _DEFAULT.shutdown()        # OPMERGE_HOME changed (tests do this): follow the new store
        if _DEFAULT is None or _DEFAULT._closed:
            torch.set_num_threads(1)
            _DEFAULT = JobRunner()
        return _DEFAULT
