"""AppTest for the "Train" dashboard page: renders, trains through the compute backend, results."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "app_pages/train.py"


@pytest.fixture
def at(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    app = AppTest.from_file(APP, default_timeout=60)
    app.switch_page(PAGE)
    app.run()
    assert not app.exception, app.exception
    return app


def wait_for(at: AppTest, pred, tries: int = 240, what: str = "the condition") -> None:
    """Rerun the page until ``pred(at)`` holds; fail (never fall through) after ``tries`` reruns."""
    for _ in range(tries):
        if pred(at):
            return
        time.sleep(0.25)
        at.run()
        assert not at.exception, at.exception
    pytest.fail(f"timed out after {tries} reruns waiting for {what}")


def runner_job(at: AppTest, key: str):
    """The page's job (its id is in the session state) as the shared runner records it."""
    from opmerge_dashboard.backend import backend

    return backend().get(at.session_state[key])


def values(arr) -> list:
    """A plotly data array: a list, or the typed-array form {"dtype", "bdata" (base64)}."""
    import base64

    import numpy as np

    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).tolist()
    return list(arr)


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure spec of the chart with this element key."""
    import json

    for el in at.get("plotly_chart"):
        if (el.proto.id and key in el.proto.id) or getattr(el, "key", None) == key:
            return json.loads(el.proto.spec)
    pytest.fail(f"no plotly chart {key!r}")


def small(at: AppTest) -> AppTest:
    at.select_slider(key="tr_T").set_value(4)
    at.select_slider(key="tr_steps").set_value(20)
    at.select_slider(key="tr_batch").set_value(16)
    return at.run()


def test_renders_with_defaults(at):
    assert at.title[0].value == "Train real students"
    assert at.multiselect(key="tr_strategies").value == ["boot", "vanilla", "dp"]
    assert not at.button(key="tr_start").disabled
    assert "opmerge train --strategies boot,vanilla,dp" in at.code[-1].value
    assert any("No run started" in c.value for c in at.caption)


def test_bad_plan_is_a_warning_and_disables_start(at):
    at.text_input(key="tr_plan").set_value("[[4 3] 2").run()
    assert not at.exception
    assert any("unbalanced bracket" in w.value for w in at.warning)
    assert at.button(key="tr_start").disabled


def test_start_a_tiny_job_and_show_results(at):
    small(at)
    at.text_input(key="tr_plan").set_value("[[4 3] [2 1]]").run()
    at.button(key="tr_start").click().run()
    wait_for(at, lambda a: any(h.value.startswith("Results of run") for h in a.header), what="results")
    assert any("Training (run" in s.value and "done" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["S_eff = 2ηn"]) == pytest.approx(2 * 0.005 * 20)
    assert metrics["students trained"] == "6"   # boot 3 (= dp) + vanilla 1 + custom 2 ([4 3] shared)
    assert len(at.get("plotly_chart")) >= 3            # W2 bars, per-merge operators, loss curves
    assert any("Monte-Carlo error" in c.value for c in at.caption)
    at.selectbox(key="tr_view").set_value("custom").run()
    assert not at.exception
    runs = at.dataframe[-1].value
    assert list(runs["status"]) == ["done"] and "W2 boot" in runs.columns


def test_budget_sweep_plot(at):
    small(at)
    at.multiselect(key="tr_strategies").set_value(["boot"]).run()
    at.button(key="tr_sweep").click().run()
    wait_for(at, lambda a: any(h.value == "Shrinkage vs training budget" for h in a.header), what="sweep")
    job = runner_job(at, "tr_sweep_job")
    assert job.status == "done"
    rows = job.result["rows"]                 # one trained run per budget factor, all for boot
    assert len({r["steps"] for r in rows}) >= 3 and {r["strategy"] for r in rows} == {"boot"}
    for r in rows:                            # each marker sits on the closed form at S = 2 lr steps
        assert r["empirical"] == pytest.approx(r["theory"], abs=0.05)
    spec = chart(at, "fig_train_budget")
    names = [t.get("name") for t in spec["data"]]
    assert "boot theory" in names and "boot trained" in names
    markers = next(t for t in spec["data"] if t.get("name") == "boot trained")
    assert len(values(markers["x"])) == len({r["steps"] for r in rows})


def test_cancel_a_running_job(at):
    at.select_slider(key="tr_T").set_value(64)
    at.select_slider(key="tr_steps").set_value(5000).run()
    at.button(key="tr_start").click().run()
    wait_for(at, lambda a: any(b.key and b.key.startswith("tr_cancel_") for b in a.button))
    next(b for b in at.button if b.key and b.key.startswith("tr_cancel_")).click().run()
    wait_for(at, lambda a: any("was cancelled" in i.value for i in a.info), what="the cancelled notice")
    job = runner_job(at, "tr_job")
    assert job.status == "cancelled"
    assert job.progress < 1.0                 # stopped before the 5000 steps finished
