"""AppTest for the "Theory vs practice" page: the shipped reference fills it, a run goes through the
compute backend, every control is bound to the URL, the printed command parses."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_core.cli import practice as practice_cli

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "app_pages/practice.py"


def open_page(monkeypatch, tmp_path, query: dict | None = None) -> AppTest:
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query or {})
    at.switch_page(PAGE)
    return at.run()


def command(at: AppTest):
    """The spec of the ``opmerge practice`` line the page prints (its code block may start with a comment)."""
    line = next(line for c in at.code for line in c.value.splitlines() if line.startswith("opmerge practice"))
    return practice_cli.parse(shlex.split(line)[1:])


def poll(at: AppTest, until, seconds: float = 180) -> AppTest:
    """Rerun the page until ``until(at)`` holds (conditions polled, generous: the machine is shared)."""
    deadline = time.monotonic() + seconds
    while not until(at) and time.monotonic() < deadline:
        time.sleep(0.25)
        at.run()
    return at


def test_the_reference_run_fills_the_page(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, {"tp_teacher": "mixture-2d"})
    assert not at.exception, at.exception
    assert at.title[0].value == "Theory vs practice"
    assert any("Reference run" in i.value for i in at.info)
    assert any(m.value.startswith("**Verdict.** On the 2-D mixture") for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 5          # W2 vs λ, BOOT − vanilla, compute, densities, gains
    notices = [m.value for m in at.markdown if m.value.startswith("**Notice**")]
    assert len(notices) == 5 and any("share of samples near a mode" in n for n in notices)
    assert at.dataframe                                # the quality-vs-compute table
    spec = command(at)
    assert (spec.teacher, spec.T, spec.student) == ("mixture-2d", 16, "linear")
    # two directions: the agreement is a count ("1 of 2"), with no rate's interval beside it
    metrics = {m.label: m.value for m in at.metric}
    assert " of " in metrics["agreement"] and "95% CI" not in metrics


def test_many_directions_give_a_rate_and_its_interval(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, {"tp_teacher": "gaussian"})
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["agreement"].endswith("%") and " – " in metrics["95% CI"]


def test_controls_are_bound_to_the_url(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, {"tp_teacher": "gaussian", "tp_T": "8", "tp_student": "mlp",
                                           "tp_seeds": "4", "tp_S": "0.5", "tp_plans": ["boot", "vanilla"]})
    assert not at.exception, at.exception
    spec = command(at)
    got = (spec.teacher, spec.T, spec.student, spec.seeds, spec.budget)
    assert got == ("gaussian", 8, "mlp", (0, 1, 2, 3), 0.5)
    assert set(spec.plans) == {"boot", "vanilla"}


@pytest.mark.slow
def test_a_run_goes_through_the_compute_backend(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, {"tp_teacher": "gaussian", "tp_T": "4", "tp_seeds": "3",
                                           "tp_plans": ["boot", "vanilla"]})
    at.button(key="tp_run").click().run()
    poll(at, lambda at: any("done in" in s.value for s in at.success))
    assert not at.exception, at.exception
    assert any("done in" in s.value for s in at.success), [s.value for s in at.success]
    assert not any("Reference run" in i.value for i in at.info)           # the user's own run is shown
    assert any(m.value.startswith("**Verdict.** On the Gaussian teacher") for m in at.markdown)
    assert any(m.label == "agreement" for m in at.metric)
    from opmerge_dashboard.backend import backend

    done = [j for j in backend().jobs() if j.kind == "practice" and j.status == "done"]
    assert done and done[-1].result["spec"]["seeds"] == [0, 1, 2]


@pytest.mark.slow
def test_a_run_shows_its_progress_and_is_cancelled(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, {"tp_teacher": "gaussian", "tp_T": "32", "tp_seeds": "6",
                                           "tp_student": "mlp"})
    at.button(key="tp_run").click().run()
    cancel = lambda at: [b for b in at.button if (b.key or "").startswith("tp_cancel_")]    # noqa: E731
    poll(at, lambda at: cancel(at))
    assert not at.exception, at.exception
    assert any(p.proto.text.startswith("Experiment (run ") for p in at.get("progress"))
    cancel(at)[0].click().run()
    poll(at, lambda at: any("was cancelled" in i.value for i in at.info))
    assert any("was cancelled" in i.value for i in at.info), [i.value for i in at.info]
    assert any("Reference run" in i.value for i in at.info)          # the page still shows the reference
    from opmerge_dashboard.backend import backend

    assert [j.status for j in backend().jobs() if j.kind == "practice"] == ["cancelled"]


def test_a_refused_run_is_one_line_and_the_reference_stays(monkeypatch, tmp_path):
    from opmerge_core.backend.compute import JobRefused
    from opmerge_dashboard.backend import backend

    at = open_page(monkeypatch, tmp_path, {"tp_teacher": "gaussian"})

    def refuse(*args, **kwargs):
        raise JobRefused("the queue is full (32 runs are waiting for a worker) — try again in a few minutes")

    monkeypatch.setattr(backend(), "submit", refuse)
    at.button(key="tp_run").click().run()
    assert not at.exception, at.exception
    said = [w.value for w in at.warning if w.value.startswith("Experiment not started")]
    assert len(said) == 1 and "the queue is full" in said[0], [w.value for w in at.warning]
    assert any("Reference run" in i.value for i in at.info)


def test_bad_url_values_are_warnings_and_the_checks_serve_lessons(monkeypatch, tmp_path):
    from opmerge_core.practice.spec import DEFAULT_PLANS
    from opmerge_dashboard import url_params

    at = open_page(monkeypatch, tmp_path, {"tp_teacher": "cnn", "tp_T": "7", "tp_plans": ["boot", "nope"]})
    assert not at.exception, at.exception
    text = " ".join(w.value for w in at.warning)
    assert "tp_teacher" in text and "tp_T" in text and "tp_plans" in text
    assert command(at).teacher == "latent-mlp"                               # the defaults
    state = url_params.check_page_params("practice", {"tp_plans": ["boot", "vanilla"], "tp_S": "0.5"})
    assert state["tp_plans"] == ["boot", "vanilla"] and state["tp_S"] == 0.5 and state["tp_T"] == 16
    assert tuple(url_params.PRACTICE_PLANS) == DEFAULT_PLANS
