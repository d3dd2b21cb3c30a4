"""The SQLite run store: life cycle, JSON fields, and runs of killed processes found as failed."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from opmerge_core.store import runstore
from opmerge_core.store.runstore import INTERRUPTED, RunStore


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_default_path_and_life_cycle(home):
    with RunStore() as store:
        assert store.path == home / "runs.sqlite" and store.path.exists()
        assert store._exec("PRAGMA journal_mode").fetchone()[0] == "wal"
        a = store.create("train", {"T": 8, "lam": [0.5]})
        b = store.create("train", {"T": 4})
        assert store.get(a)["status"] == "queued" and store.get(a)["params"]["lam"] == [0.5]
        store.start(a)
        store.update(a, progress=0.25, metrics={"loss": 1.0})
        row = store.get(a)
        assert row["status"] == "running" and row["progress"] == 0.25 and row["pid"] == os.getpid()
        store.finish(a, "done", metrics={"w2": 0.1}, artifacts={"summary": "x.json"})
        store.finish(b, "failed", error="loss became nan")
        assert [r["id"] for r in store.list()] == [b, a]
        assert store.get(a)["progress"] == 1 and store.get(a)["artifacts"] == {"summary": "x.json"}
        assert store.get(b)["error"] == "loss became nan"
        assert [r["id"] for r in store.list(status="done")] == [a]
        assert store.get(999) is None
        assert store.run_dir(a).is_dir()
        with pytest.raises(ValueError):
            store.finish(a, "running")


def test_runs_of_dead_or_silent_processes_are_marked_failed(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        dead = store.create("train", pid=2**22 + 12345)       # no such process
        mine = store.create("train")                           # this process: alive
        silent = store.create("train", pid=1)                  # alive pid, but no heartbeat
        store._exec("UPDATE runs SET heartbeat=? WHERE id=?", (time.time() - 3600, silent))
        done = store.create("train", pid=2**22 + 12345)
        store.finish(done, "done")
    with RunStore(path) as store:
        assert sorted(store.recovered) == [dead, silent]
        assert store.get(dead)["status"] == "failed" and store.get(dead)["error"] == INTERRUPTED
        assert store.get(mine)["status"] == "queued"
        assert store.get(done)["status"] == "done"


def test_killed_training_is_found_failed(tmp_path):
    """A training process killed with SIGKILL mid-way: its run is 'failed' on the next open."""
    path = tmp_path / "runs.sqlite"
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(1)
        from opmerge_core.training import train_spec
        from opmerge_core.store import runs
        from opmerge_core.store.runstore import RunStore
        spec = train_spec.TrainSpec(T=32, lam=[0.5], strategies=["boot"], steps=100000,
                                    lr=1e-5, batch=16, device="cpu")
        runs.execute(RunStore({str(path)!r}), train_spec.KIND, train_spec.run, spec,
                     params=spec.as_dict(), finalize=train_spec.record)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        row = None
        while time.time() < deadline:
            if path.exists():
                with RunStore(path, recover=False) as store:
                    rows = store.list()
                if rows and rows[0]["status"] == "running" and rows[0]["progress"] > 0:
                    row = rows[0]
                    break
            time.sleep(0.2)
        assert row is not None, "the training never reported progress"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with RunStore(path) as store:
        after = store.get(row["id"])
        assert store.recovered == [row["id"]]
        assert after["status"] == "failed" and after["error"] == INTERRUPTED
        assert 0 < after["progress"] < 1


def test_reused_pid_is_told_apart_by_its_start_time(tmp_path):
    if runstore.process_start(os.getpid()) is None:
        pytest.skip("no /proc")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with RunStore(tmp_path / "r.sqlite") as store:
            same = store.create("train", pid=other.pid)
            reused = store.create("train", pid=other.pid)
            store._exec("UPDATE runs SET pid_start='1' WHERE id=?", (reused,))
        with RunStore(tmp_path / "r.sqlite") as store:
            assert store.recovered == [reused]
            assert store.get(same)["status"] == "queued"
    finally:
        other.kill()
        other.wait()


def test_heartbeat_thread(tmp_path):
    with RunStore(tmp_path / "r.sqlite") as store:
        run = store.create("x")
        store._exec("UPDATE runs SET heartbeat=0 WHERE id=?", (run,))
        with runstore.Heartbeat(store, [run], every=0.05):
            time.sleep(0.3)
        assert store.get(run)["heartbeat"] > time.time() - 5


def test_a_dead_run_with_the_current_pid_is_recovered(tmp_path):
    """A container restarts its server as PID 1: the old server's runs carry the new server's pid."""
    with RunStore(tmp_path / "r.sqlite") as store:
        mine = store.create("train")
        old = store.create("train")
        store._exec("UPDATE runs SET instance='an earlier process' WHERE id=?", (old,))
    with RunStore(tmp_path / "r.sqlite") as store:
        assert store.recovered == [old]
        assert store.get(old)["status"] == "failed" and store.get(old)["pid"] == os.getpid()
        assert store.get(mine)["status"] == "queued"
