"""AppTest for the "SFD" dashboard page: a 2-D run through the compute backend and run store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_dashboard.untrusted import unescape

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "app_pages/sfd.py"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("opmerge_home")


def open_page(monkeypatch, home: Path, assets: Path) -> AppTest:
    monkeypatch.setenv("OPMERGE_HOME", str(home))
    monkeypatch.setenv("OPMERGE_ASSETS", str(assets))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE)
    return at.run()


def test_missing_latent_teacher_falls_back_to_mixtures(monkeypatch, home, tmp_path):
    at = open_page(monkeypatch, home, tmp_path)
    assert not at.exception
    assert at.title[0].value.startswith("SFD")
    assert at.selectbox(key="sfd_teacher").value == "mixture-2d"
    at.selectbox(key="sfd_teacher").set_value("latent-mlp").run()
    assert not at.exception
    assert any("missing teacher weights" in w.value for w in at.warning)
    assert at.button(key="sfd_train").disabled


def test_train_through_the_job_runner(monkeypatch, home, tmp_path):
    at = open_page(monkeypatch, home, tmp_path)
    at.selectbox(key="sfd_preset").set_value("two-blobs")
    at.slider(key="sfd_nfe").set_value(1)
    at.select_slider(key="sfd_budget").set_value(2048).run()
    assert "--preset two-blobs --nfe 1 --budget 2048" in at.code[-1].value     # --algorithm sfd: default
    at.button(key="sfd_train").click().run()
    for _ in range(240):
        if any("done" in s.value for s in at.success):
            break
        time.sleep(0.25)
        at.run()
    assert not at.exception
    assert any("done: fine-tuning" in s.value for s in at.success), [s.value for s in at.success]
    metrics = {m.label: [float(v) for v in m.value.split(" ± ")] for m in at.metric}
    assert metrics["student latent FD"][0] < metrics["plain solver, NFE 1"][0]   # mean ± sd over seeds
    assert all(len(v) == 2 and v[1] >= 0 for v in metrics.values())
    assert metrics["floor (exact samples)"][0] < metrics["student latent FD"][0]
    assert len(at.get("plotly_chart")) >= 2             # loss curve + quality vs seconds


def test_sfd_v_with_nfe_1_is_refused(monkeypatch, home, tmp_path):
    at = open_page(monkeypatch, home, tmp_path)
    at.selectbox(key="sfd_algorithm").set_value("sfd-v")
    at.slider(key="sfd_nfe").set_value(1).run()
    assert not at.exception
    assert any("NFE for sfd-v" in unescape(w.value) for w in at.warning)       # shown as text
    assert at.button(key="sfd_train").disabled
