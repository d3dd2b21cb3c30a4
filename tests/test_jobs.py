"""The shared job runner: bounded pool, FIFO queue positions, cancellation, sessions, failures."""

import threading
import time

import pytest
import torch

from opmerge_core import jobs, train_spec
from opmerge_core.runstore import RunStore

torch.set_num_threads(1)


@pytest.fixture
def runner(tmp_path):
    r = jobs.JobRunner(max_workers=1, store=RunStore(tmp_path / "runs.sqlite"), lease_s=0.4)
    yield r
    r.shutdown()


def wait(pred, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def blocking(gate: threading.Event):
    def task(job):
        while not gate.wait(0.01):
            if job.cancel_event.is_set():
                raise jobs.TrainingCancelled("cancelled")
        return "ok"
    return task


def test_queue_beyond_the_limit_reports_positions(runner):
    gate = threading.Event()
    a, b, c = (runner.submit("test", blocking(gate), {"i": i}) for i in range(3))
    assert wait(lambda: a.status == "running")
    assert (a.queue_position, b.queue_position, c.queue_position) == (None, 1, 2)
    assert runner.running == 1 and runner.store.get(b.id)["status"] == "queued"
    gate.set()
    assert wait(lambda: c.done)
    assert [j.status for j in (a, b, c)] == ["done"] * 3 and c.result == "ok"
    assert [r["status"] for r in runner.store.list()] == ["done"] * 3


def test_cancel_queued_and_running(runner):
    gate = threading.Event()
    a, b = runner.submit("test", blocking(gate)), runner.submit("test", blocking(gate))
    assert wait(lambda: a.status == "running")
    b.cancel()
    assert b.status == "cancelled" and runner.store.get(b.id)["status"] == "cancelled"
    a.cancel()
    assert wait(lambda: a.done) and a.status == "cancelled"
    assert runner.store.get(a.id)["status"] == "cancelled"


def test_cancel_session_only_touches_that_session(runner):
    gate = threading.Event()
    mine = [runner.submit("test", blocking(gate), owner="s1") for _ in range(2)]
    other = runner.submit("test", blocking(gate), owner="s2")
    assert runner.cancel_session("s1") == 2
    assert wait(lambda: all(j.done for j in mine))
    assert all(j.status == "cancelled" for j in mine) and not other.done
    gate.set()
    assert wait(lambda: other.done) and other.status == "done"


def test_failures_are_recorded_and_the_worker_survives(runner):
    def bad(job):
        raise ValueError("loss became nan at step 3")
    failed = runner.submit("test", bad)
    ok = runner.submit("test", lambda job: 42)
    assert wait(lambda: ok.done)
    assert failed.status == "failed" and failed.error == "loss became nan at step 3"
    row = runner.store.get(failed.id)
    assert row["status"] == "failed" and row["error"] == "loss became nan at step 3"
    assert ok.result == 42


def test_lease_expiry_cancels_an_abandoned_session(runner):
    gate = threading.Event()
    job = runner.submit("test", blocking(gate), owner="tab", lease=True)
    kept = runner.submit("test", blocking(gate), owner="open-tab", lease=True)
    for _ in range(40):                      # this tab keeps polling, the other closed
        runner.touch("open-tab")
        if job.done:
            break
        time.sleep(0.05)
    assert job.status == "cancelled" and not kept.done
    gate.set()
    assert wait(lambda: kept.done) and kept.status == "done"


def test_training_job_end_to_end(runner):
    spec = train_spec.TrainSpec(T=4, lam=[0.5, 2.0], strategies=["boot", "vanilla", "dp"], steps=30,
                                lr=0.01, batch=16)
    job = runner.submit_train(spec, owner="s")
    assert wait(lambda: job.done, 60) and job.status == "done", job.error
    row = runner.store.get(job.id)
    assert row["kind"] == "train" and row["params"]["T"] == 4 and row["progress"] == 1
    assert set(row["metrics"]["w2_empirical"]) == {"boot", "vanilla", "dp"}
    assert set(job.result.plans) == {"boot", "vanilla", "dp"} and job.losses


def test_training_job_divergence_is_a_failed_run(runner):
    spec = train_spec.TrainSpec(T=4, lam=[1e4], strategies=["temporal"], steps=200, lr=1.0, batch=8)
    job = runner.submit_train(spec)
    assert wait(lambda: job.done, 60)
    row = runner.store.get(job.id)
    assert job.status == row["status"] == "failed" and "lr must be <" in row["error"]


def test_max_workers_from_env(monkeypatch):
    monkeypatch.setenv("OPMERGE_MAX_JOBS", "3")
    assert jobs.default_max_workers() == 3
    monkeypatch.setenv("OPMERGE_MAX_JOBS", "0")
    with pytest.raises(ValueError, match="OPMERGE_MAX_JOBS"):
        jobs.default_max_workers()
    monkeypatch.delenv("OPMERGE_MAX_JOBS")
    assert jobs.default_max_workers() >= 1


def test_default_runner_is_a_singleton(tmp_path, monkeypatch):
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    monkeypatch.setattr(jobs, "_DEFAULT", None)
    first = jobs.default_runner()
    try:
        assert jobs.default_runner() is first and first.store.path == tmp_path / "runs.sqlite"
    finally:
        first.shutdown()
