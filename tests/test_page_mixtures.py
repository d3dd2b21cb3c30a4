"""AppTest for the "Mixtures" dashboard page: students train on the compute backend."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_core.cli import sfd as sfd_cli

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "app_pages/mixtures.py"


def open_page(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    monkeypatch.setenv("OPMERGE_MAX_JOBS", "1")
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(PAGE)
    return at.run()


def wait_for_table(at: AppTest, tries: int = 400) -> None:
    for _ in range(tries):
        if at.dataframe:
            return
        time.sleep(0.25)
        at.run()
        assert not at.exception, at.exception
    pytest.fail("the students never finished")


def test_training_runs_in_the_job_runner_and_the_page_shows_it(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path)
    assert not at.exception
    assert at.title[0].value.startswith("Gaussian mixtures")
    assert at.select_slider(key="mix_budget").value == 32768          # the real default budget
    assert not at.dataframe                                           # not trained in the script thread
    assert len(at.get("plotly_chart")) == 1                            # only the merge-error plot so far
    # small settings for the test: the default job is cancelled, a new one submitted
    at.selectbox(key="mix_preset").set_value("two-blobs")
    at.slider(key="mix_nfe").set_value(1)
    at.select_slider(key="mix_budget").set_value(1024).run()
    wait_for_table(at)
    table = at.dataframe[0].value
    assert list(table["method"]) == ["data", "teacher", "solver", "sfd", "alg1"]
    sw2 = dict(zip(table["method"], table["sliced_w2"], strict=True))
    assert sw2["sfd"] < sw2["solver"]                                  # SFD beats the plain solver at NFE 1
    assert dict(zip(table["method"], table["nfe"], strict=True))["solver"] == 1
    assert len(at.get("plotly_chart")) == 3
    assert any("share of samples near one of the 2 modes" in m.value for m in at.markdown)
    cli = "opmerge sfd train --teacher mixture-2d --preset two-blobs --nfe 1"
    command = next(c.value for c in at.code if cli in c.value)
    spec = sfd_cli.parse(shlex.split(command, comments=True)[1:])   # the real CLI reads it back
    assert (spec.preset, spec.config.nfe, spec.config.budget) == ("two-blobs", 1, 1024)
    from opmerge_dashboard.backend import backend

    kinds = [r["kind"] for r in backend().store.list(limit=10)]
    assert kinds.count("mixture_sfd") == 2                             # the default one and ours


def test_training_function_protocol_progress_and_cancel():
    from opmerge_core.basics.progress import Cancelled
    from opmerge_core.sfd import mixture_demo

    spec = mixture_demo.MixtureSpec(preset="two-blobs", nfe=1, budget=256, n_samples=200)
    seen = []
    out = mixture_demo.train_mixture_demo(spec,
                                          progress=lambda d, t, info: seen.append((d, t, info["student"])))
    assert seen[-1][:2] == (512, 512) and {s[2] for s in seen} == {"sfd", "alg1"}
    assert [m["method"] for m in out["metrics"]] == ["data", "teacher", "solver", "sfd", "alg1"]

    class Flag:                                   # any object with is_set() cancels
        def is_set(self) -> bool:
            return True

    with pytest.raises(Cancelled):
        mixture_demo.train_mixture_demo(spec, cancel=Flag())
    import pickle

    assert pickle.loads(pickle.dumps(spec)) == spec and pickle.dumps(mixture_demo.train_mixture_demo)
    with pytest.raises(ValueError, match="NFE"):
        mixture_demo.MixtureSpec(nfe=9)
