"""The compute backend on real Dask clusters: an embedded LocalCluster and a separately started
`dask scheduler` + `dask worker` on localhost. One run life cycle (queued → running with progress →
done / failed / cancelled → run store), cooperative cancellation on a worker, a worker killed
mid-job, shared in-flight results, the persistent cache, leases and a bounded job table."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from opmerge_core.backend import cluster, compute
from opmerge_core.basics.progress import Cancelled
from opmerge_core.store import runs
from opmerge_core.store.cache import ResultCache
from opmerge_core.store.runstore import RunStore
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
    volatile = ("id", "created", "heartbeat", "finished")

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
        assert b.cluster is None and b.n_workers == 1
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
