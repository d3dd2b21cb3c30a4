"""The one run life cycle (store/runs.py) in this process: queued → running → done / failed /
cancelled in the run store, throttled progress, one heartbeat per run. The same rows from a run on
the compute backend: tests/test_compute.py."""

from __future__ import annotations

import threading

import pytest

from opmerge_core.basics.progress import Cancelled, check_cancel, report
from opmerge_core.store import runs
from opmerge_core.store.runstore import RunStore

VOLATILE = ("id", "created", "heartbeat", "finished")     # what differs between two equal runs


def counting(n: int, *, progress=None, cancel=None) -> int:
    for i in range(n):
        check_cancel(cancel)
        report(progress, i + 1, n, loss=1.0 / (i + 1))
    return 2 * n


def failing(exc: BaseException, *, progress=None, cancel=None) -> None:
    report(progress, 1, 4)
    raise exc


def record(result: int, folder) -> dict:
    (folder / "result.txt").write_text(str(result))
    return {"metrics": {"twice": result}, "artifacts": {"result": str(folder / "result.txt")}}


def same_row(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in VOLATILE}


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs.sqlite") as s:
        yield s


def test_a_local_run_is_recorded_from_queued_to_done(store):
    seen = []
    run_id, result = runs.execute(store, "test", counting, 5, params={"n": 5}, finalize=record,
                                  progress=lambda d, t, info: seen.append((d, t, info["loss"])))
    assert result == 10 and seen[-1] == (5, 5, pytest.approx(0.2))
    row = store.get(run_id)
    assert row["status"] == "done" and row["progress"] == 1 and row["error"] is None
    assert row["metrics"] == {"twice": 10} and row["params"] == {"n": 5}
    assert (store.run_dir(run_id) / "result.txt").read_text() == "10"


def test_each_state_is_written_by_the_run(store):
    ledger = runs.Ledger(store)
    try:
        run = ledger.create("test", {"n": 1}, owner="me")
        assert store.get(run.id)["status"] == "queued" and store.get(run.id)["owner"] == "me"
        run.progress(1, 2)                                  # not started: nothing to report
        assert store.get(run.id)["progress"] == 0
        run.start()
        run.progress(1, 2)
        assert store.get(run.id)["status"] == "running" and store.get(run.id)["progress"] == 0.5
        run.cancelled()
        run.done(3, record)                                 # a run finishes once
        assert store.get(run.id)["status"] == "cancelled" and store.get(run.id)["metrics"] == {}
    finally:
        ledger.close()


@pytest.mark.parametrize("exc, status, error", [
    (Cancelled("cancelled"), "cancelled", "cancelled"),
    (KeyboardInterrupt(), "cancelled", runs.USER_INTERRUPT),          # Ctrl-C in `opmerge train`
    (ValueError("loss became nan at step 3"), "failed", "loss became nan at step 3"),
    (RuntimeError("out of memory"), "failed", "RuntimeError: out of memory"),
])
def test_a_local_run_that_stops_is_recorded_and_the_exception_propagates(store, exc, status, error):
    with pytest.raises(type(exc)):
        runs.execute(store, "test", failing, exc, finalize=record)
    (row,) = store.list()
    assert row["status"] == status and row["error"] == error and row["metrics"] == {}
    assert row["progress"] == 0.25


def test_a_cancel_flag_set_mid_run_records_the_run_cancelled(store):
    flag = threading.Event()

    def progress(done, total, info):
        if done == 3:
            flag.set()

    with pytest.raises(Cancelled):
        runs.execute(store, "test", counting, 100, finalize=record, progress=progress, cancel=flag)
    (row,) = store.list()
    assert row["status"] == "cancelled" and 0 < row["progress"] < 1 and row["artifacts"] == {}


def test_a_result_that_cannot_be_recorded_fails_the_run(store):
    def broken(result, folder):
        raise OSError("disk full")

    with pytest.raises(OSError):
        runs.execute(store, "test", counting, 2, finalize=broken)
    (row,) = store.list()
    assert row["status"] == "failed" and row["error"] == "recording the result failed: OSError: disk full"


def test_progress_writes_are_throttled(store, monkeypatch):
    writes = []
    update = store.update
    monkeypatch.setattr(store, "update", lambda run_id, **kw: (writes.append(kw["progress"]),
                                                               update(run_id, **kw)))
    ledger = runs.Ledger(store, store_every=3600.0)
    try:
        run = ledger.create("test")
        run.start()
        for done in range(1, 1001):
            run.progress(done, 1000, {})
            if done == 500:                    # the first report is in the store, the next ones wait
                assert store.get(run.id)["progress"] == pytest.approx(0.001)
        assert writes == [pytest.approx(0.001), 1.0]          # the first report and the last step
    finally:
        ledger.close()
    unthrottled = runs.Ledger(store, store_every=0.0)
    try:
        run = unthrottled.create("test")
        run.start()
        writes.clear()
        for done in range(1, 11):
            run.progress(done, 10, {})
        assert writes == [pytest.approx(d / 10) for d in range(1, 11)]
    finally:
        unthrottled.close()


def test_one_heartbeat_per_local_run(store):
    def beats() -> int:
        return sum(t.name == "opmerge-heartbeat" and t.is_alive() for t in threading.enumerate())

    for t in threading.enumerate():          # heartbeats of finished runs stop (a running one stays)
        if t.name == "opmerge-heartbeat":
            t.join(1.0)
    before = beats()
    during = []
    runs.execute(store, "test", counting, 3, progress=lambda d, t, info: during.append(beats()))
    assert during == [before + 1] * 3


def test_two_equal_local_runs_give_the_same_rows(store):
    a, _ = runs.execute(store, "test", counting, 4, params={"n": 4}, finalize=record)
    b, _ = runs.execute(store, "test", counting, 4, params={"n": 4}, finalize=record)
    ra, rb = same_row(store.get(a)), same_row(store.get(b))
    assert ra.pop("artifacts") != rb.pop("artifacts")            # each run has its own folder
    assert ra == rb
