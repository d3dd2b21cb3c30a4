"""The compute backend: every heavy computation and every training job runs on a Dask cluster.

One ``Backend`` per server process. By default it starts an embedded ``distributed.LocalCluster`` of
worker *processes* (``$OPMERGE_WORKERS``, default one per core, each single-threaded and started at a
lower CPU priority so the interactive server always wins the CPU, and secured with TLS and throw-away
credentials so that no other process can submit work to it: security.py); with an address
(``$OPMERGE_SCHEDULER`` or ``opmerge dashboard --scheduler tcp://HOST:8786``) it joins an existing
cluster instead.

Two kinds of work share one job life cycle (queued → running with progress → done | failed |
cancelled):

* ``submit(kind, fn, *args, ...)`` — a *run*, recorded through the run life cycle (runs.py): created,
  started, progress, finished with the metrics and artifacts of ``finalize(result, run_dir)``, which
  runs here on the server — remote workers never write the server's store.
  ``fn(*args, progress=..., cancel=...)`` runs on a worker (worker.py).
* ``cached(fn, *args)`` — a pure heavy result: identical in-flight requests from every session share
  one computation, and a finished result goes to the persistent cache (cache.py).

Fair compute. What a page needs to draw (``cached``) never waits behind a training: runs are
dispatched to the cluster by the backend, at most ``run_slots`` at once, each on a worker's training
lane (workers with two threads and one ``train`` resource: one run plus page work at a time, the run's
thread at the lowest CPU priority — cluster.py, worker.py), and page results go to Dask with a higher
priority. Runs waiting for a lane are served in turn, one session after another (``turn_order``: round
robin, not first come first served); a session may have ``OPMERGE_JOBS_PER_SESSION`` runs queued or
running (default 2) and at most ``OPMERGE_QUEUE_MAX`` runs wait in all (default 32): beyond either,
``submit`` raises ``JobRefused`` with a one-line message saying what to do. The lanes, the turns and
the caps hold for every server process that shares the run store and the cluster (the web tier): each
decides from the store's record of the cluster's runs (``RunStore.lane_queue``) inside one write
transaction, and looks again every ``TURNS_EVERY`` s while it has runs waiting. A run may carry a
``group`` (a room): ``group_runs`` and ``cancel_group`` let its teacher see and stop them, whichever
process runs them (another process's run is cancelled through the store: ``cancel_requested``).

Progress travels as Dask events; cancellation is a Dask ``Event`` the task polls (cooperative, the
task raises ``progress.Cancelled``), and a job still queued is simply cancelled. A worker process that
dies mid-job fails the job ("worker died") after Dask's retry; a server that dies leaves its runs to
be recovered as failed by the next ``RunStore`` (runstore.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

from opmerge_core.backend.cluster import TRAIN_RESOURCE, connect, embedded_cluster
from opmerge_core.backend.worker import (
    PROGRESS_EVENT,
    TRAIN_EXECUTOR,
    NiceWorkers,
    cancel_event_name,
    run_task,
)
from opmerge_core.basics.progress import Cancelled
from opmerge_core.basics.validation import check_int
from opmerge_core.store.cache import ResultCache, code_version
from opmerge_core.store.runs import Finalize, Ledger, Run, failure_reason
from opmerge_core.store.runstore import (
    FINISHED,
    LaneQueue,
    RunStore,
    Status,
    StoreError,
    default_path,
)

LEASE_S = 120.0            # seconds without a touch before a leased session's jobs are cancelled
LOSS_POINTS_MAX = 2000     # live loss points kept per job
KEEP_FINISHED = 256        # finished runs kept in memory (older ones are evicted; they stay in the store)
RETRY_AFTER = 30.0         # seconds a failed result is shown before the next request computes it again
WORKER_DIED = "worker process died (killed or out of memory)"
JOBS_PER_SESSION = 2       # default of $OPMERGE_JOBS_PER_SESSION: a session's runs queued or running
QUEUE_MAX = 32             # default of $OPMERGE_QUEUE_MAX: runs waiting for a slot, all sessions together
PAGE_PRIORITY = 10         # Dask priority of a page's results (runs: 0; higher runs first)
SLOTS_EVERY = 5.0          # seconds between looks at the cluster's size (run_slots)
TURNS_EVERY = 0.5          # seconds between looks at the lanes while this process has runs waiting or on them
RECOVER_EVERY = 10.0       # seconds between looks for runs of dead processes (they would keep their turn)

log = logging.getLogger(__name__)


class JobRefused(ValueError):
    """A run the backend does not take now (this session's cap, or the whole queue's): the message
    says why and what to do, in one line."""


def env_limit(name: str, default: int, hi: int = 10_000) -> int:
    """A positive integer setting from the environment (one-line ValueError if it is not one)."""
    return check_int(os.environ.get(name) or default, name, lo=1, hi=hi)


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
    group: str | None = None             # e.g. a room: its teacher sees and cancels the group's runs
    status: Status = Status.QUEUED
    progress: float = 0.0
    info: dict = field(default_factory=dict)
    losses: list[tuple[float, float]] = field(default_factory=list)   # (progress, loss)
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    finalize: Finalize | None = field(default=None, repr=False)
    cancel_requested: bool = False
    _run: Run | None = field(default=None, repr=False)           # the recorded run (runs.py)
    _future: Any = field(default=None, repr=False)
    _call: tuple | None = field(default=None, repr=False)       # (fn, args) of a run not yet dispatched
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _backend: Backend | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - (self.started or self.created)

    @property
    def queue_position(self) -> int | None:
        """1-based position among this server's queued jobs of its kind (runs in the order they will
        start, page results by age), None once it runs."""
        return self._backend.queue_position(self) if self._backend else None

    def cancel(self) -> None:
        if self._backend:
            self._backend.cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (True) or ``timeout`` passed (False)."""
        return self._done.wait(timeout)


def _tokenized_key(fn: Callable, args: tuple) -> str:
    from dask.base import tokenize

    return f"{fn.__name__}-{tokenize(f'{fn.__module__}.{fn.__qualname__}', args, code_version())}"


@functools.lru_cache(maxsize=4096)
def _memo_key(fn: Callable, args: tuple, types: tuple) -> str:
    return _tokenized_key(fn, args)


def result_key(fn: Callable, args: tuple) -> str:
    """The cache key of ``fn(*args)``: the same for identical requests of every session, process and
    restart (Dask's ``tokenize`` of the function's name, the arguments and ``code_version``). Pages ask
    for their results on every rerun, so the key of hashable arguments (frozen settings, tuples,
    numbers) is memoised; arrays are tokenized each time."""
    try:
        return _memo_key(fn, args, tuple(type(a) for a in args))   # 1 and 1.0: different keys
    except TypeError:                                               # unhashable arguments
        return _tokenized_key(fn, args)


def turn_order(queue: LaneQueue) -> list[int]:
    """The waiting runs' ids in the order they get a lane. Next is the oldest run of the session with
    the fewest runs on the lanes; among equals, the session served least recently (never served
    first), then the one waiting longest. Each run given counts as on the lanes and just served, so a
    session with many runs takes one turn after another session's, not all of them first."""
    waiting: dict[str | None, deque[int]] = {}
    for row in queue.waiting:                                    # oldest first
        waiting.setdefault(row["owner"], deque()).append(row["id"])
    on_lanes = Counter(row["owner"] for row in queue.on_lanes)
    served: dict[str | None, tuple] = {owner: (0, when) for owner, when in queue.served.items()}
    order: list[int] = []
    while waiting:
        owner = min(waiting, key=lambda o: (on_lanes[o], served.get(o, (-1,)), waiting[o][0]))
        order.append(waiting[owner].popleft())
        if not waiting[owner]:
            del waiting[owner]
        on_lanes[owner] += 1
        served[owner] = (1, len(order))                          # after every real time
    return order


class Backend:
    """A Dask client plus the run life cycle, the shared result cache and session leases."""

    def __init__(self, address: str | None = None, *, n_workers: int | None = None,
                 store: RunStore | None = None, cache: ResultCache | None = None,
                 lease_s: float = LEASE_S, allowed_failures: int = 1,
                 worker_setup: Callable[[], Any] | None = None, security=None,
                 jobs_per_session: int | None = None, queue_max: int | None = None):
        """``worker_setup``: run once on every worker of the embedded cluster as it starts (a
        picklable callable without arguments, e.g. loading compiled kernels); an existing cluster's
        workers are set up by whoever started them. ``security``: the ``distributed.Security`` for an
        existing cluster (default: Dask's configuration). ``jobs_per_session``, ``queue_max``: the
        caps (default ``$OPMERGE_JOBS_PER_SESSION``, ``$OPMERGE_QUEUE_MAX``)."""
        from distributed import Client

        self.jobs_per_session = jobs_per_session or env_limit("OPMERGE_JOBS_PER_SESSION", JOBS_PER_SESSION)
        self.queue_max = queue_max or env_limit("OPMERGE_QUEUE_MAX", QUEUE_MAX)

        self.address = address
        self.cluster = None
        if address:
            self.client = connect(address, security=security)
        else:
            self.cluster = embedded_cluster(n_workers, allowed_failures)
            self.client = Client(self.cluster, set_as_default=False)
            self.client.register_plugin(NiceWorkers(worker_setup))
        self._store, self._ledger = store, None           # opened on first use: see ``store``
        self.store_path = store.path if store is not None else default_path()
        self.cache = cache if cache is not None else ResultCache()
        if self.cache.problem:
            log.warning("%s (results are kept in memory only)", self.cache.problem)
        self.lease_s = lease_s
        self.topic = f"opmerge-{self.client.id}"
        self._lock = threading.RLock()
        self._jobs: dict[int | str, Job] = {}
        self._by_key: dict[str, Job] = {}
        self._touched: dict[str, float] = {}
        self._waiting: dict[int, Job] = {}                  # this process's runs waiting for a lane
        self._order: list[int] = []                          # every waiting run of the cluster, in turn
        self._slots: tuple[float, int, bool] = (float("-inf"), 1, False)   # (when, run_slots, lanes?)
        # the cluster as the run store names it: every process of a web tier reaches it at this address
        self.cluster_id = self.client.scheduler.address
        self._closed = False
        self.client.subscribe_topic(self.topic, self._on_event)
        self._watch = threading.Thread(target=self._watch_leases, name="opmerge-lease", daemon=True)
        self._watch.start()
        self._turner = threading.Thread(target=self._keep_turns, name="opmerge-turns", daemon=True)
        self._turner.start()

    # ---- the run store ----------------------------------------------------------------------------
    @property
    def store(self) -> RunStore:
        """The run store, opened on first use: a bad ``OPMERGE_HOME`` raises ``StoreError`` (one line:
        the path and what to do) where a run needs it, never at start, so pages that need no store keep
        working; once the folder is mended the next use opens it, without a restart."""
        return self._opened()[0]

    @property
    def ledger(self) -> Ledger:
        """The writer of this process's runs (runs.py), on the store."""
        return self._opened()[1]

    def _opened(self) -> tuple[RunStore, Ledger]:
        with self._lock:
            if self._store is None:
                self._store = RunStore(self.store_path)
            if self._ledger is None:
                self._ledger = Ledger(self._store)
            return self._store, self._ledger

    # ---- submitting -------------------------------------------------------------------------------
    @property
    def run_slots(self) -> int:
        """Runs at once: one per worker offering the ``train`` resource (the embedded cluster's do),
        else one per worker thread (a cluster started without it)."""
        return self._shape()[0]

    def _lanes(self) -> bool:
        """Does the cluster have training lanes (workers offering the ``train`` resource)?"""
        return self._shape()[1]

    def _shape(self) -> tuple[int, bool]:
        """(run slots, lanes?) of the cluster as it is now, looked at most every ``SLOTS_EVERY`` s."""
        now = time.monotonic()
        if now - self._slots[0] > SLOTS_EVERY:
            with contextlib.suppress(Exception):
                workers = self.client.scheduler_info()["workers"].values()
                lanes = sum(int(w.get("resources", {}).get(TRAIN_RESOURCE, 0)) for w in workers)
                slots = lanes or sum(w.get("nthreads", 1) for w in workers)
                self._slots = (now, max(1, slots), lanes > 0)
        return self._slots[1], self._slots[2]

    def submit(self, kind: str, fn: Callable, *args, params: dict | None = None,
               owner: str | None = None, lease: bool = False, finalize: Finalize | None = None,
               group: str | None = None) -> Job:
        """Queue a recorded run ``fn(*args, progress=, cancel=)``; its result stays in ``job.result``
        and ``finalize(result, run_dir) -> {"metrics": …, "artifacts": …}`` records it (server side).
        ``JobRefused`` if ``owner`` (a browser session) has ``jobs_per_session`` runs queued or running
        already, or ``queue_max`` runs are waiting; ``StoreError`` if the run store cannot record it."""
        with self._lock:
            self._check_open()
            with self.store.transaction():           # the caps hold across processes sharing the store
                self._admit(owner, self.store.lane_queue(self.cluster_id))
                run = self.ledger.create(kind, params, owner=owner, cluster=self.cluster_id, group=group)
            key = f"{kind}-run-{run.id}-{self.client.id}"
            job = Job(run.id, key, kind, params or {}, owner, lease, True, group, finalize=finalize,
                      _run=run, _call=(fn, args), _backend=self)
            self._register(job)
            if owner is not None:
                self._touched[owner] = time.monotonic()
            self._waiting[job.id] = job
        self._dispatch()
        return job

    def _admit(self, owner: str | None, queue: LaneQueue) -> None:
        """Refuse a run beyond this session's cap or the queue's (one line: what to do)."""
        if owner is not None:
            mine = sum(1 for r in (*queue.waiting, *queue.on_lanes)
                       if r["owner"] == owner and not r["cancel_requested"])
            if mine >= self.jobs_per_session:
                raise JobRefused(f"you already have {mine} jobs queued or running — cancel one or wait "
                                 f"for it to finish (at most {self.jobs_per_session} per session)")
        if len(queue.waiting) >= self.queue_max:
            raise JobRefused(f"the queue is full ({len(queue.waiting)} runs are waiting for a worker) — "
                             "try again in a few minutes")

    def _dispatch(self) -> None:
        """Give this process's waiting runs a lane when their turn comes: the first ``run_slots`` minus
        the runs on the lanes in ``turn_order`` over every process's waiting runs. Deciding and marking
        happen in one store transaction, so two processes never give away the same lane."""
        with self._lock:
            if not self._waiting or self._closed:
                return
            slots = self.run_slots
            for store in {j._run.store for j in self._waiting.values()}:      # one, unless rehomed
                mine = {i: j for i, j in self._waiting.items() if j._run.store is store}
                try:
                    with store.transaction():
                        queue = store.lane_queue(self.cluster_id)
                        order = turn_order(queue)
                        go = [i for i in order[:max(0, slots - len(queue.on_lanes))] if i in mine]
                        store.dispatch(go)
                except StoreError as exc:                # busy or damaged: the next look tries again
                    log.warning("runs wait for their turn: %s", exc)
                    continue
                self._order = order
                for run_id in go:
                    job = self._waiting.pop(run_id)
                    fn, args = job._call
                    job._call = None
                    try:
                        self._start(job, fn, args)
                    except Exception as exc:             # e.g. the client closed: its lane is free again
                        self._finished_without(job, Status.FAILED, failure_reason(exc))

    def cached(self, fn: Callable, *args, kind: str = "compute") -> Job:
        """A pure heavy result ``fn(*args)``: from the cache, the identical in-flight job, or a new one.
        The returned job may already be done (cache hit)."""
        name = f"{fn.__module__}.{fn.__qualname__}"
        key = result_key(fn, args)
        with self._lock:
            job = self._by_key.get(key)
            if job is not None and (not job.done or job.status == Status.DONE
                                    or time.time() - (job.finished or 0) <= RETRY_AFTER):
                return job
            hit, value = self.cache.get(key)
            job = Job(key, key, kind, {"fn": name}, record=False, _backend=self)
            if hit:
                job.status, job.result, job.progress = Status.DONE, value, 1.0
                job.started = job.finished = time.time()
                job._done.set()
                return job
            self._check_open()
            self._register(job)
            self._start(job, fn, args)
        return job

    def _start(self, job: Job, fn: Callable, args: tuple) -> None:
        """Submit to Dask: a run on a training lane (if the cluster has them), a page result ahead."""
        import dask

        options: dict[str, Any] = {"priority": PAGE_PRIORITY}
        annotations: dict[str, Any] = {}
        if job.record:
            options = {"priority": 0}
            if self._lanes():                         # the lane's thread, at the lowest CPU priority
                options["resources"] = {TRAIN_RESOURCE: 1}
                annotations["executor"] = TRAIN_EXECUTOR
        with dask.annotate(**annotations):
            job._future = self.client.submit(run_task, fn, args, self.topic, job.key, job.record,
                                             key=job.key, pure=False, **options)
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

    def jobs(self, owner: str | None = None, *, group: str | None = None) -> list[Job]:
        """This server's jobs (finished ones while they are kept), of a session and/or a group."""
        with self._lock:
            return [j for j in self._jobs.values() if (owner is None or j.owner == owner)
                    and (group is None or j.group == group)]

    def queue_position(self, job: Job) -> int | None:
        """A waiting run: its place in the line for a lane, among every process's runs (as of this
        process's last look); a page result: among this server's queued ones, by age."""
        if job.status != Status.QUEUED:
            return None
        with self._lock:
            if job.record:
                if job._call is None:               # it has its lane: about to start
                    return None
                return self._order.index(job.id) + 1 if job.id in self._order else None
            order = sorted((j for j in self._jobs.values() if not j.record and j.status == Status.QUEUED),
                           key=lambda j: j.created)
        return next((i + 1 for i, j in enumerate(order) if j is job), None)

    def group_runs(self, group: str) -> list[dict]:
        """A group's runs waiting for or on the cluster's lanes, from every process sharing the store:
        store rows (``id``, ``kind``, ``status``, ``progress``, ``cancel_requested``, …) plus
        ``position`` (in the line for a lane, None on a lane), oldest first."""
        queue = self.store.lane_queue(self.cluster_id)
        order = turn_order(queue)
        rows = [{**r, "position": order.index(r["id"]) + 1} for r in queue.waiting]
        rows += [{**r, "position": None} for r in queue.on_lanes]
        return sorted((r for r in rows if r["run_group"] == group), key=lambda r: r["id"])

    # ---- cancelling and leases --------------------------------------------------------------------
    def cancel(self, job: Job) -> None:
        """A run still waiting for a slot: dropped at once. A run on the cluster: its cancel flag is set
        and the task stops cooperatively (at its start if it has not started yet): it keeps its slot
        until it has really stopped, so a cancelled run never trains on beside the next one. A page
        result not started yet: dropped."""
        with self._lock:
            if job.done:
                return
            job.cancel_requested = True
            dropped = self._waiting.get(job.id) is job
            if dropped:                             # never dispatched: nothing runs anywhere
                del self._waiting[job.id]
                job._call = None
        if dropped:
            self._finished_without(job, Status.CANCELLED, "cancelled")
        elif job.record:
            from distributed import Event

            with contextlib.suppress(Exception):
                Event(cancel_event_name(job.key), client=self.client).set()
            with contextlib.suppress(StoreError):  # other processes count it out of the caps
                job._run.store.request_cancel([job.id])
        elif job.status == Status.QUEUED and job._future is not None:
            job._future.cancel()

    def cancel_session(self, owner: str) -> int:
        """Cancel every unfinished job of a session; returns how many."""
        return self._cancel_all(self.jobs(owner))

    def cancel_run(self, run_id: int) -> None:
        """Cancel a run of the cluster's line, this process's or another's (asked through the store:
        its process cancels it at its next look, within about ``TURNS_EVERY`` s)."""
        job = self._jobs.get(run_id)
        if job is not None and job.record and job._run.store.path == self.store.path:
            self.cancel(job)
        else:
            self.store.request_cancel([run_id])

    def cancel_group(self, group: str) -> int:
        """Cancel every unfinished run of a group (a room's teacher), whichever process runs it;
        returns how many."""
        rows = self.group_runs(group)
        for row in rows:
            self.cancel_run(row["id"])
        return len(rows)

    def _cancel_all(self, jobs: list[Job]) -> int:
        pending = [j for j in jobs if not j.done]
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

    def _keep_turns(self) -> None:
        """While this process has runs waiting or on the lanes, every ``TURNS_EVERY`` s: cancel those
        another process asked to cancel (a room's teacher), give waiting ones their turn (another
        process's run may have left its lane) and, now and then, recover the runs of dead processes
        (they would keep their turn and their lane)."""
        recovered = time.monotonic()
        while not self._closed:
            time.sleep(TURNS_EVERY)
            with self._lock:
                active = [j for j in self._jobs.values() if j.record and not j.done and j._run is not None]
            if not active:
                continue
            recover, now = False, time.monotonic()
            if self._waiting and now - recovered > RECOVER_EVERY:
                recover, recovered = True, now
            for store in {j._run.store for j in active}:
                try:
                    if recover:
                        store.recover()
                    asked = set(store.cancel_requests())
                except StoreError:
                    continue
                for job in active:
                    if job.id in asked and job._run.store is store and not job.cancel_requested:
                        self.cancel(job)
            self._dispatch()

    # ---- events from workers ----------------------------------------------------------------------
    def _on_event(self, event: tuple[float, dict]) -> None:
        msg = event[1]
        job = self._by_key.get(msg.get("key"))
        if job is None or job.done:
            return
        if job.status == Status.QUEUED:
            job.status, job.started = Status.RUNNING, time.time()
            if job._run is not None:
                with contextlib.suppress(Exception):
                    job._run.start()
        if msg.get("event") == PROGRESS_EVENT:
            job.progress = msg["done"] / max(msg["total"], 1)
            job.info = msg.get("info") or {}
            if "loss" in job.info:
                job.losses.append((job.progress, float(job.info["loss"])))
                if len(job.losses) > LOSS_POINTS_MAX:
                    del job.losses[::2]
            if job._run is not None:
                job._run.progress(msg["done"], msg["total"], job.info)

    def _finished(self, job: Job, future) -> None:
        """Done callback (a Dask callback thread): result or error → job, store, cache."""
        status, error, result = Status.DONE, None, None
        try:
            if future.cancelled():
                status = error = Status.CANCELLED
            else:
                result = future.result()
        except BaseException as exc:  # the task's own exception, re-raised by Dask
            status, error = self._classify(job, exc)
        if job._run is not None:
            status, error = self._record(job._run, status, error, result, job.finalize)
        job.result = result if status == Status.DONE else None
        job.status, job.error, job.finished = status, error, time.time()
        if job.started is None:
            job.started = job.finished
        if status == Status.DONE:
            job.progress = 1.0
            if not job.record:
                self.cache.put(job.key, result)
        if job.record:
            from distributed import Event

            with contextlib.suppress(Exception):
                Event(cancel_event_name(job.key), client=self.client).clear()
        job._future = None
        job._done.set()
        if job.record:
            self._dispatch()                      # its lane goes to the next session in turn
        self._evict()

    @staticmethod
    def _classify(job: Job, exc: BaseException) -> tuple[Status, str]:
        from distributed import KilledWorker

        if isinstance(exc, KilledWorker):
            return Status.FAILED, WORKER_DIED
        if job.cancel_requested or isinstance(exc, Cancelled | CancelledError):
            return Status.CANCELLED, Status.CANCELLED
        return Status.FAILED, failure_reason(exc)

    @staticmethod
    def _record(run: Run, status: Status, error: str | None, result: Any,
                finalize: Finalize | None) -> tuple[Status, str | None]:
        """Finish the run (server side); a result that cannot be recorded fails it."""
        try:
            if status == Status.DONE:
                run.done(result, finalize)
            elif status == Status.CANCELLED:
                run.cancelled(error or Status.CANCELLED)
            else:
                run.failed(error or Status.FAILED)
        except Exception:
            if run.status == Status.FAILED:      # finalize raised: the run says why
                return Status.FAILED, run.error
        return status, error

    def _evict(self) -> None:
        """Bound the job table (server RSS stays bounded): a finished result lives in the cache, a
        failed one is kept ``RETRY_AFTER`` seconds (then asked again), at most KEEP_FINISHED runs."""
        now = time.time()
        with self._lock:
            for job in [j for j in self._jobs.values() if j.done and not j.record]:
                if job.status == Status.DONE or now - (job.finished or now) > RETRY_AFTER:
                    self._forget(job)
            runs = sorted((j for j in self._jobs.values() if j.done and j.record),
                          key=lambda j: j.finished or 0)
            for job in runs[:max(0, len(runs) - KEEP_FINISHED)]:
                self._forget(job)

    def _forget(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if self._by_key.get(job.key) is job:
            self._by_key.pop(job.key, None)

    def rehome(self) -> None:
        """Follow a new ``$OPMERGE_HOME``: its run store (opened on next use) and cache, same cluster
        (unfinished jobs keep reporting to the store they were created in)."""
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
            self._store, self._ledger = None, None
            self.store_path, self.cache = default_path(), ResultCache()

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
        if self._ledger is not None:
            self._ledger.close()
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)
        for job in pending:                       # nobody will report on them any more
            if not job.done:
                self._finished_without(job, Status.CANCELLED if cancel else Status.FAILED, "server shut down")

    def _finished_without(self, job: Job, status: Status, error: str) -> None:
        """A job that will never report again (never dispatched, or the server shut down)."""
        job.status, job.error, job.finished = status, error, time.time()
        if job._run is not None:
            with contextlib.suppress(Exception):
                self._record(job._run, status, error, None, None)
        job._done.set()


_DEFAULT: Backend | None = None
_DEFAULT_HOME: str | None = None         # $OPMERGE_HOME when _DEFAULT last checked its store
_DEFAULT_LOCK = threading.Lock()


def default_backend(worker_setup: Callable[[], Any] | None = None) -> Backend:
    """The process-wide backend (started on first use): ``$OPMERGE_SCHEDULER`` or an embedded cluster
    whose workers run ``worker_setup`` (given by the caller that starts it: the dashboard).

    The run store and the result cache follow ``$OPMERGE_HOME`` (tests change it); the cluster stays.
    """
    global _DEFAULT, _DEFAULT_HOME
    with _DEFAULT_LOCK:
        home = os.environ.get("OPMERGE_HOME")     # every rerun asks: compare paths only on a change
        if _DEFAULT is None or _DEFAULT._closed:
            address = os.environ.get("OPMERGE_SCHEDULER") or None
            _DEFAULT = Backend(address, worker_setup=worker_setup)
            # before concurrent.futures' own exit hook: Dask's callback threads still take work then
            threading._register_atexit(_DEFAULT.shutdown)
        elif home != _DEFAULT_HOME and _DEFAULT.store_path != default_path():
            _DEFAULT.rehome()
        _DEFAULT_HOME = home
        return _DEFAULT
