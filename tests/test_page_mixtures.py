"""AppTest for the "Mixtures" dashboard page (issue 6)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "opmerge_dashboard" / "app.py")
PAGE = "app_pages/mixtures.py"


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(PAGE)
    return at.run()


def test_page_renders_trajectories_densities_and_merge_error():
    at = open_page()
    assert not at.exception
    assert at.title[0].value.startswith("Gaussian mixtures")
    assert len(at.get("plotly_chart")) == 3
    table = at.dataframe[0].value
    assert list(table["method"]) == ["data", "teacher", "solver", "sfd", "alg1"]
    sw2 = dict(zip(table["method"], table["sliced_w2"]))
    assert sw2["sfd"] < sw2["solver"]                       # SFD beats the plain solver at NFE 2
    assert any("opmerge sfd train --teacher mixture-2d --preset ring8 --nfe 2" in c.value for c in at.code)


def test_changing_controls_reruns():
    at = open_page()
    at.selectbox(key="mix_preset").set_value("gaussian")
    at.select_slider(key="mix_budget").set_value(1024)
    at.toggle(key="mix_afs").set_value(True).run()
    assert not at.exception
    assert "--afs" in at.code[0].value and "--preset gaussian" in at.code[0].value
