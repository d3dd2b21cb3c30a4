"""The compute backend: every heavy computation and every training job runs on a Dask cluster.

One ``Backend`` per server process. By default it starts an embedded ``distributed.LocalCluster`` of
worker *processes* (``$OPMERGE_WORKERS``, default one per core, each single-threaded and started at a
lower CPU priority so the interactive server always wins the CPU); with an address
(``$OPMERGE_SCHEDULER`` or ``opmerge dashboard --scheduler tcp://HOST:8786``) it joins an existing
cluster instead.

Two kinds of work share one job life cycle (queued → running with progress → done | failed |
cancelled):

* ``submit(kind, fn, *args, ...)`` — a *run*: recorded in the run store (created, started, progress,
  finished with metrics and artifacts). ``fn(*args, progress=..., cancel=...)`` runs on a worker with
  ``progress(done, total, info)`` and ``cancel.is_set()``; it returns its result, which the server
  turns into metrics/artifacts (``finalize``) — remote workers never write the server's store.
* ``cached(fn, *args)`` — a pure heavy result (a large-T DP, curves, phase diagrams, shared plans,
  …): identical in-flight requests from every session share one computation, and a finished result
  goes to a persistent cache under ``$OPMERGE_HOME/cache`` (shared by every server process, survives
  restarts, keyed by the source of ``opmerge_core`` so an upgrade never serves stale results).

Progress travels as Dask events (worker ``log_event`` → client ``subscribe_topic``); cancellation is a
Dask ``Event`` the task polls (cooperative), and a job still queued is simply cancelled. A worker
process that dies mid-job fails the job ("worker died") after Dask's retry; a server that dies leaves
its runs to be recovered as failed by the next ``RunStore`` (runstore.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from opmerge_core.infra.runstore import Heartbeat, RunStore, default_path, opmerge_home

LEASE_S = 120.0            # seconds without a touch before a leased session's jobs are cancelled
PROGRESS_EVERY = 0.25      # seconds between progress events sent by a worker
STORE_EVERY = 0.5          # seconds between progress writes to the run store
CANCEL_POLL = 0.25         # seconds between a worker's looks at its cancel flag
LOSS_POINTS_MAX = 2000     # live loss points kept per job
KEEP_FINISHED = 256        # finished runs kept in memory (older ones are evicted; they stay in the store)
RETRY_AFTER = 30.0         # seconds a failed result is shown before the next request computes it again
RESULTS_MAX = 256          # cached results kept in memory in front of the disk cache
CACHE_BYTES = 1 << 30      # disk cache size limit (least recently used entries go first)
WORKERS_CAP = 64
CONNECT_TIMEOUT = "5s"
STATUSES = ("queued", "running", "done", "failed", "cancelled")
WORKER_DIED = "worker process died (killed or out of memory)"


class Cancelled(Exception):
    """Raised by a task that saw its cancel flag."""


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


# ---- the worker side ------------------------------------------------------------------------------


class _Reporter:
    """``progress(done, total, info)`` on a worker: throttled Dask events to the submitting server."""

    def __init__(self, topic: str, key: str):
        from distributed import get_worker

        self.topic, self.key, self._last = topic, key, 0.0
        self._worker = get_worker()
        self.send("running", 0, 1, {})

    def send(self, event: str, done: int, total: int, info: dict) -> None:
        clean = {k: float(v) if isinstance(v, int | float) or hasattr(v, "item") else str(v)
                 for k, v in (info or {}).items()}
        self._worker.log_event(self.topic, {"key": self.key, "event": event, "done": int(done),
                                            "total": int(total), "info": clean})

    def __call__(self, done: int, total: int, info: dict | None = None) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY or done >= total:
            self._last = now
            self.send("progress", done, total, info or {})


class _CancelFlag:
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


def _run_task(fn: Callable, args: tuple, topic: str, key: str, cancel_name: str | None) -> Any:
    """What a worker executes: ``fn(*args)``, with progress and cancel for runs."""
    reporter = _Reporter(topic, key)
    if cancel_name is None:
        return fn(*args)
    return fn(*args, progress=reporter, cancel=_CancelFlag(cancel_name))


class _NiceWorkers(WorkerPlugin):
    """Worker plugin of the embedded cluster: a lower CPU priority, so the server's UI wins the CPU."""

    name = "opmerge-nice"

    def setup(self, worker) -> None:
        with contextlib.suppress(OSError):
            os.nice(10)
        from opmerge_core.theory import dp

        dp.load_kernels(warm=True)     # every DP of a worker in the compiled kernels, loaded now


# ---- the server side ------------------------------------------------------------------------------


@dataclass(eq=False)
class Job:
    """One job as the server sees it. ``id`` is the run id for runs, the cache key for results."""

    id: int | str
    key: str
    kind: str
    params: dict
    owner: str | None = None
    lease: bool = False
    record: bool = True
    status: str = "queued"
    progress: float = 0.0
    info: dict = field(default_factory=dict)
    losses: list[tuple[float, float]] = field(default_factory=list)   # (progress, loss)
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    finalize: Callable[[Any, Path], dict] | None = field(default=None, repr=False)
    cancel_requested: bool = False
    _store: RunStore | None = field(default=None, repr=False)    # where a run is recorded
    _future: Any = field(default=None, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _backend: Backend | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - (self.started or self.created)

    @property
    def queue_position(self) -> int | None:
        """1-based position among this server's queued jobs, None once it runs."""
        return self._backend.queue_position(self) if self._backend else None

    def cancel(self) -> None:
        if self._backend:
            self._backend.cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (True) or ``timeout`` passed (False)."""
        return self._done.wait(timeout)


class ResultCache:
    """The shared persistent result cache (``diskcache``: SQLite + files, safe across processes)."""

    def __init__(self, directory: Path | None = None, size_limit: int = CACHE_BYTES):
        import diskcache

        self.directory = Path(directory) if directory is not None else opmerge_home() / "cache"
        self._disk = diskcache.Cache(str(self.directory), size_limit=size_limit)
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return True, self._memory[key]
        sentinel = object()
        value = self._disk.get(key, default=sentinel)
        if value is sentinel:
            return False, None
        self._remember(key, value)
        return True, value

    def put(self, key: str, value: Any) -> None:
        self._remember(key, value)
        with contextlib.suppress(Exception):       # a full or read-only disk must not fail a page
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
        self._disk.clear()

    def close(self) -> None:
        self._disk.close()


class Backend:
    """A Dask client plus the run life cycle, the shared result cache and session leases."""

    def __init__(self, address: str | None = None, *, n_workers: int | None = None,
                 store: RunStore | None = None, cache: ResultCache | None = None,
                 lease_s: float = LEASE_S, allowed_failures: int = 1):
        from distributed import Client, LocalCluster

        self.address = address
        self.cluster = None
        if address:
            self.client = connect(address)
        else:
            import dask

            with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
                # Everything on loopback, HTTP endpoints included (Dask would bind them to all
                # interfaces, the scheduler's on :8787): a classroom network sees only Streamlit.
                self.cluster = LocalCluster(n_workers=n_workers or default_workers(), threads_per_worker=1,
                                            processes=True, host="127.0.0.1",
                                            dashboard_address="127.0.0.1:0",
                                            worker_dashboard_address="127.0.0.1:0",
                                            silence_logs=logging.CRITICAL,
                                            env={"DASK_LOGGING__DISTRIBUTED": "error"})
            self.client = Client(self.cluster, set_as_default=False)
            self.client.register_plugin(_NiceWorkers())
        self.store = store if store is not None else RunStore()
        self.cache = cache if cache is not None else ResultCache()
        self.lease_s = lease_s
        self.topic = f"opmerge-{self.client.id}"
        self._lock = threading.RLock()
        self._jobs: dict[int | str, Job] = {}
        self._by_key: dict[str, Job] = {}
        self._touched: dict[str, float] = {}
        self._last_write: dict[int | str, float] = {}
        self._closed = False
        self._heartbeat = Heartbeat(self.store)
        self.client.subscribe_topic(self.topic, self._on_event)
        self._watch = threading.Thread(target=self._watch_leases, name="opmerge-lease", daemon=True)
        self._watch.start()

    # ---- submitting -------------------------------------------------------------------------------
    @property
    def n_workers(self) -> int:
        """Tasks the cluster runs at once (total worker threads)."""
        with contextlib.suppress(Exception):
            return max(1, sum(self.client.nthreads().values()))
        return 1

    def submit(self, kind: str, fn: Callable, *args, params: dict | None = None,
               owner: str | None = None, lease: bool = False,
               finalize: Callable[[Any, Path], dict] | None = None) -> Job:
        """Queue a recorded run ``fn(*args, progress=, cancel=)``; its result stays in ``job.result``
        and ``finalize(result, run_dir) -> {"metrics": …, "artifacts": …}`` records it (server side)."""
        with self._lock:
            self._check_open()
            run_id = self.store.create(kind, params or {}, owner=owner)
            key = f"{kind}-run-{run_id}-{self.client.id}"
            job = Job(run_id, key, kind, params or {}, owner, lease, True, finalize=finalize,
                      _store=self.store, _backend=self)
            self._register(job)
            self._heartbeat.add(run_id)
            if owner is not None:
                self._touched[owner] = time.monotonic()
            self._start(job, fn, args, cancel_name=f"cancel-{key}")
        return job

    def cached(self, fn: Callable, *args, kind: str = "compute") -> Job:
        """A pure heavy result ``fn(*args)``: from the cache, the identical in-flight job, or a new one.
        The returned job may already be done (cache hit)."""
        from dask.base import tokenize

        name = f"{fn.__module__}.{fn.__qualname__}"
        key = f"{fn.__name__}-{tokenize(name, args, code_version())}"
        with self._lock:
            job = self._by_key.get(key)
            if job is not None and (not job.done or job.status == "done"
                                    or time.time() - (job.finished or 0) <= RETRY_AFTER):
                return job
            hit, value = self.cache.get(key)
            job = Job(key, key, kind, {"fn": name}, record=False, _backend=self)
            if hit:
                job.status, job.result, job.progress = "done", value, 1.0
                job.started = job.finished = time.time()
                job._done.set()
                return job
            self._check_open()
            self._register(job)
            self._start(job, fn, args, cancel_name=None)
        return job

    def _start(self, job: Job, fn: Callable, args: tuple, cancel_name: str | None) -> None:
        job._future = self.client.submit(_run_task, fn, args, self.topic, job.key, cancel_name,
                                         key=job.key, pure=False)
        job._future.add_done_callback(lambda fut, job=job: self._finished(job, fut))

    def _register(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._by_key[job.key] = job

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the compute backend is shut down")

    # ---- querying ---------------------------------------------------------------------------------
    def get(self, job_id: int | str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self, owner: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def queue_position(self, job: Job) -> int | None:
        if job.status != "queued":
            return None
        with self._lock:
            queued = sorted((j for j in self._jobs.values() if j.status == "queued"),
                            key=lambda j: j.created)
        return next((i + 1 for i, j in enumerate(queued) if j is job), None)

    @property
    def running(self) -> int:
        with self._lock:
            return sum(j.status == "running" for j in self._jobs.values())

    # ---- cancelling and leases --------------------------------------------------------------------
    def cancel(self, job: Job) -> None:
        """Queued: dropped at once. Running: its cancel flag is set and the task stops cooperatively."""
        with self._lock:
            if job.done:
                return
            job.cancel_requested = True
            started = job.status == "running"
        if job.record:
            from distributed import Event

            with contextlib.suppress(Exception):
                Event(f"cancel-{job.key}", client=self.client).set()
        if not started and job._future is not None:
            job._future.cancel()

    def cancel_session(self, owner: str) -> int:
        """Cancel every unfinished job of a session; returns how many."""
        pending = [j for j in self.jobs(owner) if not j.done]
        for j in pending:
            self.cancel(j)
        return len(pending)

    def touch(self, owner: str) -> None:
        with self._lock:
            self._touched[owner] = time.monotonic()

    def _watch_leases(self) -> None:
        while not self._closed:
            time.sleep(min(1.0, self.lease_s / 4))
            now = time.monotonic()
            with self._lock:
                stale = {j.owner for j in self._jobs.values() if j.lease and not j.done and
                         j.owner is not None and now - self._touched.get(j.owner, now) > self.lease_s}
            for owner in stale:
                self.cancel_session(owner)

    # ---- events from workers ----------------------------------------------------------------------
    def _on_event(self, event: tuple[float, dict]) -> None:
        msg = event[1]
        job = self._by_key.get(msg.get("key"))
        if job is None or job.done:
            return
        if job.status == "queued":
            job.status, job.started = "running", time.time()
            if job.record:
                with contextlib.suppress(Exception):
                    job._store.start(job.id)
        if msg.get("event") == "progress":
            job.progress = msg["done"] / max(msg["total"], 1)
            job.info = msg.get("info") or {}
            if "loss" in job.info:
                job.losses.append((job.progress, float(job.info["loss"])))
                if len(job.losses) > LOSS_POINTS_MAX:
                    del job.losses[::2]
            now = time.monotonic()
            if job.record and now - self._last_write.get(job.id, 0.0) >= STORE_EVERY:
                self._last_write[job.id] = now
                with contextlib.suppress(Exception):
                    job._store.update(job.id, progress=job.progress)

    def _finished(self, job: Job, future) -> None:
        """Done callback (a Dask callback thread): result or error → job, store, cache."""
        status, error, result = "done", None, None
        try:
            if future.cancelled():
                status, error = "cancelled", "cancelled"
            else:
                result = future.result()
        except BaseException as exc:  # the task's own exception, re-raised by Dask
            status, error = self._classify(job, exc)
        if status == "done" and job.cancel_requested and result is None:
            status, error = "cancelled", "cancelled"
        metrics = artifacts = None
        if status == "done" and job.record and job.finalize is not None:
            try:
                recorded = job.finalize(result, job._store.run_dir(job.id)) or {}
                metrics, artifacts = recorded.get("metrics"), recorded.get("artifacts")
            except Exception as exc:
                status, error = "failed", f"recording the result failed: {type(exc).__name__}: {exc}"
        job.result = result if status == "done" else None
        job.status, job.error, job.finished = status, error, time.time()
        if job.started is None:
            job.started = job.finished
        if status == "done":
            job.progress = 1.0
            if not job.record:
                self.cache.put(job.key, result)
        if job.record:
            self._heartbeat.discard(job.id)
            with contextlib.suppress(Exception):
                row = job._store.get(job.id)
                if row and row["status"] in ("queued", "running"):
                    job._store.finish(job.id, status, metrics=metrics, artifacts=artifacts, error=error)
            from distributed import Event

            with contextlib.suppress(Exception):
                Event(f"cancel-{job.key}", client=self.client).clear()
        job._future = None
        job._done.set()
        self._evict()

    @staticmethod
    def _classify(job: Job, exc: BaseException) -> tuple[str, str]:
        from distributed import KilledWorker

        if isinstance(exc, KilledWorker):
            return "failed", WORKER_DIED
        if job.cancel_requested or type(exc).__name__ in ("Cancelled", "TrainingCancelled",
                                                           "CancelledError"):
            return "cancelled", "cancelled"
        if isinstance(exc, ValueError):
            return "failed", str(exc)
        return "failed", f"{type(exc).__name__}: {exc}"

    def _evict(self) -> None:
        """Bound the job table (server RSS stays bounded): a finished result lives in the cache, a
        failed one is kept ``RETRY_AFTER`` seconds (then asked again), at most KEEP_FINISHED runs."""
        now = time.time()
        with self._lock:
            for job in [j for j in self._jobs.values() if j.done and not j.record]:
                if job.status == "done" or now - (job.finished or now) > RETRY_AFTER:
                    self._forget(job)
            runs = sorted((j for j in self._jobs.values() if j.done and j.record),
                          key=lambda j: j.finished or 0)
            for job in runs[:max(0, len(runs) - KEEP_FINISHED)]:
                self._forget(job)

    def _forget(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if self._by_key.get(job.key) is job:
            self._by_key.pop(job.key, None)
        self._last_write.pop(job.id, None)

    def rehome(self, store: RunStore, cache: ResultCache) -> None:
        """Follow a new ``$OPMERGE_HOME``: new run store and cache, same cluster (unfinished jobs keep
        reporting to the store they were created in)."""
        with self._lock:
            self._heartbeat.stop()
            self.store, self.cache = store, cache
            self._heartbeat = Heartbeat(self.store)

    # ---- shutting down ----------------------------------------------------------------------------
    def shutdown(self, cancel: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = [j for j in self._jobs.values() if not j.done]
        if cancel:
            for job in pending:
                self.cancel(job)
        self._heartbeat.stop()
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)
        for job in pending:                       # nobody will report on them any more
            if not job.done:
                self._finished_without(job, "cancelled" if cancel else "failed", "server shut down")

    def _finished_without(self, job: Job, status: str, error: str) -> None:
        job.status, job.error, job.finished = status, error, time.time()
        if job.record:
            with contextlib.suppress(Exception):
                job._store.finish(job.id, status, error=error)
        job._done.set()


_DEFAULT: Backend | None = None
_DEFAULT_LOCK = threading.Lock()


def default_backend() -> Backend:
    """The process-wide backend (started on first use): ``$OPMERGE_SCHEDULER`` or an embedded cluster.

    The run store and the result cache follow ``$OPMERGE_HOME`` (tests change it); the cluster stays.
    """
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT._closed:
            address = os.environ.get("OPMERGE_SCHEDULER") or None
            _DEFAULT = Backend(address)
            # before concurrent.futures' own exit hook: Dask's callback threads still take work then
            threading._register_atexit(_DEFAULT.shutdown)
        elif _DEFAULT.store.path != default_path():
            _DEFAULT.rehome(RunStore(), ResultCache())
        return _DEFAULT
