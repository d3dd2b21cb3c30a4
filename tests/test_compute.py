"""The compute backend on real Dask clusters: an embedded LocalCluster and a separately started
`dask scheduler` + `dask worker` on localhost. One run life cycle (queued → running with progress →
done / failed / cancelled → run store), cooperative cancellation on a worker, a worker killed
mid-job, shared in-flight results, the persistent cache, leases and a bounded job table."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from opmerge_core.backend import cluster, compute, worker
from opmerge_core.basics.progress import Cancelled
from opmerge_core.store import runs
from opmerge_core.store.cache import ResultCache
from opmerge_core.store.runstore import LaneQueue, RunStore
from opmerge_core.theory import sweep
from opmerge_core.theory.setting import Setting


def sleepy(n: int, *, progress=None, cancel=None) -> int:
    for i in range(n):
        if cancel is not None and cancel.is_set():
            raise Cancelled("stopped")
        time.sleep(0.05)
        if progress is not None:
            progress(i + 1, n, {"loss": 1.0 / (i + 1)})
    return 2 * n


def diverging(*, progress=None, cancel=None) -> None:
    raise ValueError("loss became nan at step 3")


def kill_my_worker(*, progress=None, cancel=None) -> None:
    progress(1, 10, {})
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGKILL)


def slow_square(x: float) -> float:
    time.sleep(0.5)
    return x * x


def wait(pred, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    home = tmp_path_factory.mktemp("compute")
    b = compute.Backend(n_workers=2, store=RunStore(home / "runs.sqlite"),
                        cache=ResultCache(home / "cache"))
    yield b
    b.shutdown()


def test_a_run_goes_through_the_whole_life_cycle(backend):
    job = backend.submit("test", sleepy, 20, params={"n": 20}, owner="s1",
                         finalize=lambda result, folder: {"metrics": {"twice": result}})
    assert job.status == "queued" and backend.store.get(job.id)["status"] == "queued"
    assert wait(lambda: job.status == "running")
    assert wait(lambda: 0 < job.progress < 1) and "loss" in job.info
    assert backend.store.get(job.id)["status"] == "running"
    assert job.wait(30) and job.status == "done" and job.result == 40
    row = backend.store.get(job.id)
    assert row["status"] == "done" and row["progress"] == 1 and row["metrics"] == {"twice": 40}
    assert row["params"] == {"n": 20} and row["owner"] == "s1"
    assert len(job.losses) >= 2 and job.losses[-1][1] == pytest.approx(1 / 20)


def twice(result: int, folder) -> dict:
    return {"metrics": {"twice": result}}


def test_a_backend_run_and_a_local_run_leave_the_same_rows(backend):
    """One life cycle (runs.py) for both paths: the same job gives the same run-store row."""
    volatile = ("id", "created", "heartbeat", "finished", "cluster", "dispatched")   # when and where

    def row(run_id: int) -> dict:
        return {k: v for k, v in backend.store.get(run_id).items() if k not in volatile}

    job = backend.submit("test", sleepy, 3, params={"n": 3}, finalize=twice)
    local_id, result = runs.execute(backend.store, "test", sleepy, 3, params={"n": 3}, finalize=twice)
    assert job.wait(30) and job.result == result == 6
    assert row(job.id) == row(local_id) and row(local_id)["status"] == "done"
    bad = backend.submit("test", diverging)
    with pytest.raises(ValueError):
        runs.execute(backend.store, "test", diverging)
    local_bad = backend.store.list(limit=1)[0]["id"]
    assert bad.wait(20) and local_bad != bad.id
    assert row(bad.id) == row(local_bad) and row(bad.id)["status"] == "failed"
    stopped = backend.submit("test", sleepy, 400)
    assert wait(lambda: stopped.status == "running")
    stopped.cancel()
    flag = threading.Event()
    flag.set()
    with pytest.raises(Cancelled):
        runs.execute(backend.store, "test", sleepy, 400, cancel=flag)
    local_stopped = backend.store.list(limit=1)[0]["id"]
    assert stopped.wait(10) and local_stopped != stopped.id
    cancelled = [backend.store.get(i) for i in (stopped.id, local_stopped)]
    assert {(r["status"], r["error"], str(r["metrics"])) for r in cancelled} == {("cancelled", "cancelled",
                                                                                  "{}")}


def test_cancel_a_running_job_on_its_worker_and_a_queued_one(backend):
    running = [backend.submit("test", sleepy, 400) for _ in range(2)]   # fill both workers
    queued = backend.submit("test", sleepy, 400)
    assert wait(lambda: all(j.status == "running" for j in running))
    assert queued.status == "queued" and queued.queue_position == 1
    queued.cancel()
    assert queued.wait(10) and queued.status == "cancelled"
    started = time.time()
    for job in running:
        job.cancel()
    assert all(j.wait(10) for j in running), "a cancelled task stops cooperatively"
    assert time.time() - started < 5 and all(j.status == "cancelled" for j in running)
    assert {backend.store.get(j.id)["status"] for j in [*running, queued]} == {"cancelled"}
    assert not any(j.progress >= 1 for j in running)


def test_a_failing_task_is_a_failed_run_and_the_worker_survives(backend):
    bad = backend.submit("test", diverging)
    assert bad.wait(20) and bad.status == "failed" and bad.error == "loss became nan at step 3"
    assert backend.store.get(bad.id)["error"] == "loss became nan at step 3"
    ok = backend.submit("test", sleepy, 2)
    assert ok.wait(20) and ok.result == 4


def test_a_worker_killed_mid_job_fails_the_run(backend):
    job = backend.submit("test", kill_my_worker)
    assert job.wait(60), "the scheduler notices the dead worker"
    assert job.status == "failed" and job.error == compute.WORKER_DIED
    row = backend.store.get(job.id)
    assert row["status"] == "failed" and row["error"] == compute.WORKER_DIED
    after = backend.submit("test", sleepy, 2)           # the nanny restarted the worker
    assert after.wait(60) and after.status == "done"


def test_identical_requests_share_one_computation_and_the_cache_persists(backend, tmp_path):
    x = float(np.random.default_rng().random())
    first, second = backend.cached(slow_square, x), backend.cached(slow_square, x)
    assert first is second and not first.done
    assert first.wait(20) and first.result == pytest.approx(x * x)
    assert backend.cached(slow_square, x).status == "done"         # a cache hit, no new task
    fresh = ResultCache(backend.cache.directory)           # another process / a restart
    assert fresh.get(first.key) == (True, pytest.approx(x * x))


def test_cached_results_of_core_functions_equal_the_direct_call(backend):
    setting, lams = Setting(T=16, S=1.0), np.geomspace(0.1, 10, 7)
    job = backend.cached(sweep.compare, setting, lams)
    assert job.wait(60) and job.status == "done", job.error
    direct = sweep.compare(setting, lams)
    assert job.result.equals(direct)


def test_a_lease_expires_when_the_session_stops_polling(backend):
    backend.lease_s = 0.4
    try:
        gone = backend.submit("test", sleepy, 400, owner="closed-tab", lease=True)
        kept = backend.submit("test", sleepy, 30, owner="open-tab", lease=True)
        for _ in range(600):                      # this tab keeps polling, the other one closed
            backend.touch("open-tab")
            if kept.done:
                break
            time.sleep(0.05)
        assert gone.wait(10) and gone.status == "cancelled"
        assert kept.status == "done"
    finally:
        backend.lease_s = compute.LEASE_S


def test_finished_jobs_are_evicted_from_memory(backend, monkeypatch):
    monkeypatch.setattr(compute, "KEEP_FINISHED", 3)
    jobs = [backend.submit("test", sleepy, 1) for _ in range(6)]
    assert all(j.wait(30) for j in jobs)
    time.sleep(0.1)
    assert sum(1 for j in backend.jobs() if j.record and j.done) <= 3
    assert backend.get(jobs[0].id) is None and backend.store.get(jobs[0].id)["status"] == "done"


# ---- fair compute: page results ahead of runs, caps, runs served in turn, groups -------------------
def thread_priority(*args, progress=None, cancel=None) -> int:
    """The CPU priority (nice) of the worker thread running this task."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@contextlib.contextmanager
def cancelled_afterwards(backend):
    """Cancel every run a test leaves unfinished (the module's cluster is shared)."""
    try:
        yield
    finally:
        pending = [j for j in backend.jobs() if j.record and not j.done]
        for j in pending:
            j.cancel()
        assert all(j.wait(30) for j in pending)


def test_a_page_result_never_waits_behind_runs(backend):
    with cancelled_afterwards(backend):
        runs = [backend.submit("test", sleepy, 1200, owner=f"student-{i}") for i in range(4)]
        assert wait(lambda: sum(r.status == "running" for r in runs) == 2, 60), "both lanes busy"
        assert [r.status for r in runs[2:]] == ["queued", "queued"]
        x = float(np.random.default_rng().random())                  # a result nobody computed yet
        page = backend.cached(slow_square, x)
        assert page.wait(30) and page.result == pytest.approx(x * x)
        assert all(r.status == "running" for r in runs[:2]), "it ran beside them, not after them"
        assert backend.cached(thread_priority, x).wait(30)
        assert backend.cached(thread_priority, x).result == worker.WORKER_NICE
    lane = backend.submit("test", thread_priority)
    assert lane.wait(60) and lane.result == worker.TRAIN_NICE         # a run yields the CPU


def test_a_session_has_at_most_its_share_of_runs(backend):
    with cancelled_afterwards(backend):
        first, second = (backend.submit("test", sleepy, 1200, owner="flooding-tab") for _ in range(2))
        with pytest.raises(compute.JobRefused, match="you already have 2 jobs queued or running — "
                                                     "cancel one or wait"):
            backend.submit("test", sleepy, 1200, owner="flooding-tab")
        assert [j.status for j in backend.jobs("flooding-tab")].count("queued") <= 2
        second.cancel()
        third = backend.submit("test", sleepy, 1, owner="flooding-tab")    # a cancelled one frees it
        assert backend.submit("test", sleepy, 1, owner="another-tab")      # other sessions unaffected
    assert third.status in ("done", "cancelled") and first.status == "cancelled"


def test_the_whole_queue_has_a_cap(backend, monkeypatch):
    monkeypatch.setattr(backend, "queue_max", 2)
    with cancelled_afterwards(backend):
        for i in range(4):                                            # 2 on the lanes, 2 waiting
            backend.submit("test", sleepy, 1200, owner=f"tab-{i}")
        with pytest.raises(compute.JobRefused, match=r"the queue is full \(2 runs are waiting"):
            backend.submit("test", sleepy, 1200, owner="tab-4")


def lane_queue(waiting: list[tuple[int, str]], on_lanes: list[str], served: dict | None = None):
    """A ``LaneQueue`` as the store gives it: waiting (id, owner) oldest first, owners of runs on lanes."""
    return LaneQueue([{"id": i, "owner": o} for i, o in waiting], [{"owner": o} for o in on_lanes],
                     served or {})


def test_turns_go_to_the_session_with_the_fewest_runs_on_the_lanes():
    queue = lane_queue([(3, "A"), (4, "A"), (5, "B"), (6, "C"), (7, "C")], on_lanes=["A", "A", "C"])
    assert compute.turn_order(queue) == [5, 6, 3, 7, 4]


def test_among_equals_the_session_served_least_recently_goes_first():
    # A flooded (its runs wait longest) and one of its runs just left a lane; C never had one
    assert compute.turn_order(lane_queue([(1, "A"), (2, "A"), (9, "C")], [], {"A": 100.0})) == [9, 1, 2]
    assert compute.turn_order(lane_queue([(1, "A"), (9, "C")], [], {"A": 100.0, "C": 50.0})) == [9, 1]
    assert compute.turn_order(lane_queue([(1, "A"), (9, "C")], [])) == [1, 9]      # then the oldest


def test_runs_of_different_sessions_are_served_in_turn(backend, monkeypatch):
    """One tab floods the queue (its cap raised for the test): another student's run goes next."""
    monkeypatch.setattr(backend, "jobs_per_session", 10)
    with cancelled_afterwards(backend):
        flood = [backend.submit("test", sleepy, 1200, owner="flood") for _ in range(6)]
        assert wait(lambda: sum(r.status == "running" for r in flood) == 2, 60)
        small = backend.submit("test", sleepy, 2, owner="student")
        other = backend.submit("test", sleepy, 2, owner="other")
        assert (small.queue_position, other.queue_position) == (1, 2)
        assert [r.queue_position for r in flood[2:]] == [3, 4, 5, 6]
        flood[0].cancel()                                            # one run's length later
        assert small.wait(60) and small.status == "done"
        assert other.wait(60) and other.status == "done"
        assert all(r.status == "queued" for r in flood[2:]), "not first come first served"


def test_a_teacher_sees_and_cancels_a_groups_runs(backend):
    with cancelled_afterwards(backend):
        room = [backend.submit("test", sleepy, 1200, owner=f"pupil-{i}", group="room-7") for i in range(3)]
        elsewhere = backend.submit("test", sleepy, 1200, owner="pupil-9", group="room-8")
        assert {j.id for j in backend.jobs(group="room-7")} == {j.id for j in room}
        assert backend.cancel_group("room-7") == 3
        assert all(j.wait(30) and j.status == "cancelled" for j in room)
        assert not elsewhere.done and elsewhere.group == "room-8"


def test_server_processes_sharing_a_cluster_share_its_lanes_turns_caps_and_rooms(backend, monkeypatch):
    """A second backend on the same cluster and run store (another server process of the web tier):
    a flood in one process does not take the lanes from a student of the other; the queue's cap counts
    both; a teacher in one process sees and cancels a room's run of the other."""
    other = compute.Backend(backend.cluster_id, security=backend.cluster.security,
                            store=RunStore(backend.store.path), cache=ResultCache(backend.cache.directory))
    monkeypatch.setattr(backend, "jobs_per_session", 10)
    try:
        with cancelled_afterwards(backend), cancelled_afterwards(other):
            flood = [backend.submit("test", sleepy, 1200, owner="flood") for _ in range(4)]
            assert wait(lambda: sum(r.status == "running" for r in flood) == 2, 60), "both lanes busy"
            small = other.submit("test", sleepy, 2, owner="student", group="room-3")
            assert other.run_slots == 2 and small.queue_position == 1
            assert wait(lambda: [r.queue_position for r in flood[2:]] == [2, 3], 10)
            assert len(backend.store.lane_queue(backend.cluster_id).on_lanes) == 2, "no third run on a lane"
            monkeypatch.setattr(other, "queue_max", 3)
            with pytest.raises(compute.JobRefused, match=r"the queue is full \(3 runs are waiting"):
                other.submit("test", sleepy, 2, owner="late")
            assert [r["id"] for r in backend.group_runs("room-3")] == [small.id]    # the teacher's view
            flood[0].cancel()                                        # one run's length later
            assert small.wait(60) and small.status == "done", "the other process's student went next"
            assert all(r.status == "queued" for r in flood[2:])
            far = other.submit("test", sleepy, 1200, owner="student", group="room-3")   # waits: lanes full
            assert backend.cancel_group("room-3") == 1               # asked through the store …
            assert far.wait(30) and far.status == "cancelled"        # … cancelled by its own process
    finally:
        other.shutdown()


def test_bad_settings_and_addresses():
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        cluster.check_address("localhost:8786")
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        cluster.connect("tcp://127.0.0.1:9", timeout="1s")


def test_workers_from_env(monkeypatch):
    monkeypatch.setenv("OPMERGE_WORKERS", "3")
    assert cluster.default_workers() == 3
    for bad in ("0", "many"):
        monkeypatch.setenv("OPMERGE_WORKERS", bad)
        with pytest.raises(ValueError, match="OPMERGE_WORKERS"):
            cluster.default_workers()


def test_an_existing_cluster_runs_runs_and_cached_results(scheduler_address, tmp_path):
    b = compute.Backend(scheduler_address, store=RunStore(tmp_path / "runs.sqlite"),
                        cache=ResultCache(tmp_path / "cache"))
    try:
        assert b.cluster is None and b.run_slots == 1         # no training lanes: one run per thread
        job = b.submit("test", sleepy, 10, finalize=lambda r, folder: {"metrics": {"r": r}})
        assert job.wait(60) and job.status == "done", job.error
        assert b.store.get(job.id)["metrics"] == {"r": 20}
        cancelled = b.submit("test", sleepy, 400)
        assert wait(lambda: cancelled.status == "running", 30)
        cancelled.cancel()
        assert cancelled.wait(10) and cancelled.status == "cancelled"
        result = b.cached(slow_square, 3.0)
        assert result.wait(30) and result.result == 9.0
    finally:
        b.shutdown()


# ---- the page side: a placeholder while a heavy result computes, then the result ------------------
def test_a_heavy_page_shows_a_placeholder_then_its_result(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from opmerge_dashboard import backend as dashboard_backend

    monkeypatch.setattr(dashboard_backend, "WAIT_S", 0.0)
    S = round(float(np.random.default_rng().uniform(2, 19)), 1)   # a setting nobody computed yet
    at = AppTest.from_file("../dashboard/app.py", default_timeout=60)
    at.query_params.update({"T": "300", "S": f"{S:g}"})
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Optimal plan"] == "…" and at.get("progress"), "a placeholder, not a blocked page"
    backend = dashboard_backend.backend()
    assert wait(lambda: all(j.done for j in backend.jobs() if not j.record), 120)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Optimal plan"] == "Sequential BOOT" and not at.get("progress")


def page_drawn_in_worker() -> bool:
    """In a worker: did re-importing the server's __main__ (as __mp_main__) run the dashboard?"""
    main = sys.modules.get("__mp_main__")
    return main is not None and "frame" in vars(main)


def test_workers_spawned_by_a_streamlit_server_do_not_run_the_app(tmp_path, monkeypatch):
    """Streamlit leaves the app script installed as __main__; spawned workers re-import it."""
    import types
    from pathlib import Path

    fake = types.ModuleType("__main__")
    fake.__file__ = str(Path(__file__).parents[1] / "dashboard" / "app.py")
    monkeypatch.setitem(sys.modules, "__main__", fake)
    b = compute.Backend(n_workers=1, store=RunStore(tmp_path / "runs.sqlite"),
                        cache=ResultCache(tmp_path / "cache"))
    try:
        assert list(b.client.run(page_drawn_in_worker).values()) == [False]
    finally:
        b.shutdown()


def test_the_embedded_cluster_listens_on_loopback_only(backend):
    """A classroom network must reach Streamlit only: no scheduler, worker or HTTP port outside."""
    import psutil

    me = psutil.Process()
    started = [p for p in me.children() if "dask" in p.cmdline()[1:3]]    # `dask scheduler`, `dask worker`
    theirs = {q.pid for p in started for q in [p, *p.children(recursive=True)]}
    ours = [me, *(p for p in me.children(recursive=True) if p.pid not in theirs)]
    listening = [c.laddr for p in ours for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    outside = [addr for addr in listening if addr.ip != "127.0.0.1"]
    assert listening and not outside, outside


# ---- a cluster only the server can use ----------------------------------------------------------
def refused(address: str, **client_options) -> bool:
    """Can a client with these options connect to ``address`` (and so submit work)? False if it can."""
    from distributed import Client

    try:
        client = Client(address, timeout="5s", set_as_default=False, **client_options)
    except (OSError, TimeoutError, TypeError):
        return True
    client.close()
    return False


def test_the_embedded_cluster_refuses_clients_without_its_credentials(backend):
    """A local user on the server host cannot connect to the embedded scheduler and run code there."""
    import urllib.error
    import urllib.request

    from distributed import Security

    address = backend.cluster.scheduler_address
    assert address.startswith("tls://127.0.0.1:")
    port = address.rsplit(":", 1)[1]
    assert refused(f"tcp://127.0.0.1:{port}")                        # a plain client
    assert refused(address)                                           # TLS without a certificate
    assert refused(address, security=Security.temporary())            # TLS with a certificate of its own
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        cluster.connect(address, timeout="5s", security=Security.temporary())
    with pytest.raises(ValueError, match="speaks TLS"):
        cluster.connect(address, timeout="5s")
    http = backend.cluster.scheduler.http_server.port                 # no HTTP endpoint tells anything
    for path in ("/info/main/workers.html", "/json/counts.json", "/metrics", "/health"):
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=5)
    job = backend.submit("test", sleepy, 3)                           # the server itself still can
    assert job.wait(120) and job.status == "done" and job.result == 6


def test_throwaway_credentials_in_a_private_folder(tmp_path):
    from opmerge_core.backend import security

    folder = security.write_credentials(tmp_path / "tls")
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in (security.CERT_FILE, security.KEY_FILE):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" in (folder / security.KEY_FILE).read_text()
    env = security.dask_env(folder)
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    assert env["DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY"] == str(folder / security.KEY_FILE)
    sec = security.from_folder(folder)
    assert sec.require_encryption and sec.tls_client_cert == str(folder / security.CERT_FILE)
    with pytest.raises(ValueError, match="no Dask TLS credentials"):
        security.dask_env(tmp_path)


@pytest.fixture(scope="module")
def tls_scheduler(tmp_path_factory, started_cluster):
    """A `dask scheduler` + one `dask worker` started as processes of their own, sharing throw-away
    credentials through security.dask_env (how several server processes share one cluster), the
    worker set up as the embedded cluster's are (``cluster.worker_flags``: a training lane)."""
    from opmerge_core.backend import security

    folder = security.write_credentials(tmp_path_factory.mktemp("tls") / "credentials")
    sec = security.from_folder(folder)
    with started_cluster("tls", security.dask_env(folder), sec, worker=cluster.worker_flags()) as address:
        yield address, sec


def test_a_started_cluster_shares_the_throwaway_credentials(tls_scheduler, tmp_path):
    from distributed import Security

    address, sec = tls_scheduler
    port = address.rsplit(":", 1)[1]
    assert refused(f"tcp://127.0.0.1:{port}") and refused(address, security=Security.temporary())
    b = compute.Backend(address, security=sec, store=RunStore(tmp_path / "runs.sqlite"),
                        cache=ResultCache(tmp_path / "cache"))
    try:
        job = b.submit("test", sleepy, 10, finalize=lambda r, folder: {"metrics": {"r": r}})
        assert wait(lambda: 0 < job.progress < 1, 60)                 # progress events over TLS
        assert job.wait(60) and job.status == "done" and b.store.get(job.id)["metrics"] == {"r": 20}
        cancelled = b.submit("test", sleepy, 400)
        assert wait(lambda: cancelled.status == "running", 30)
        cancelled.cancel()                                            # the cancel Event over TLS
        assert cancelled.wait(10) and cancelled.status == "cancelled"
        assert b.run_slots == 1                                       # one worker, one lane …
        lane = b.submit("test", thread_priority)                      # … whose own thread runs it
        assert lane.wait(60) and lane.result == worker.TRAIN_NICE, lane.error
    finally:
        b.shutdown()
