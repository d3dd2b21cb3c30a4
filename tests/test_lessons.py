"""Lessons (docs/LESSONS.md): the shipped lessons load and every step opens its page in its state
(AppTest), answers come from the engine and flip with λ, malformed lessons give one line naming the file
and the step (page and CLI), `opmerge lesson list --json`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_dashboard import lessons, questions
from opmerge_dashboard.lessons import LessonError
from opmerge_dashboard.untrusted import unescape

APP = "../dashboard/app.py"
DOC = Path(__file__).resolve().parents[1] / "docs" / "LESSONS.md"
TITLES = {"phase": "The phase transition of operator merging", "operators": "Teacher operators",
          "playground": "Plan playground", "spectrum": "A whole spectrum, one plan",
          "experiments": "Paper experiments, live", "train": "Train real students",
          "celeba": "CelebA latents",
          "sfd": "SFD: Simple and Fast Distillation",
          "mixtures": "Gaussian mixtures: distilling a nonlinear teacher", "about": "About this lab"}
GOOD_STEP = '''
[[steps]]
title = "A step"
page = "phase"
params = { lam = 0.5, T = 8 }
narrative = "Look at the plan."
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def shipped() -> dict[str, lessons.Lesson]:
    catalog = lessons.available()
    assert not catalog.errors, catalog.errors
    return catalog.lessons


# ---- the shipped lessons -------------------------------------------------------------------------
def test_shipped_lessons_load_with_their_questions() -> None:
    found = shipped()
    assert "phase-transition" in found
    for lesson in found.values():
        for step in lesson.steps:
            assert step.state, "every step knows the full state of its page"
            if step.question:
                assert len(step.question.choices) >= 2 and step.question.prompt


def test_every_step_of_every_shipped_lesson_opens_in_its_state() -> None:
    """AppTest: open step 1 by URL, then press Next through the lesson; at each step the page is the
    step's page, the lesson bar says "step k of n" and every URL-bound control shows the step's value."""
    for lesson in shipped().values():
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["lesson"], at.query_params["step"] = lesson.name, "1"
        at.run()
        n = len(lesson.steps)
        for step in lesson.steps:
            assert not at.exception, (lesson.name, step.index, at.exception)
            assert not at.error, (lesson.name, step.index, [e.value for e in at.error])
            assert TITLES[step.page] in [t.value for t in at.title], (lesson.name, step.index)
            where = " ".join(m.value for m in at.markdown)
            assert f"step {step.index} of {n}" in where
            for key, value in step.state.items():
                widgets = [w for w in at.get("slider") + at.get("select_slider") + at.get("selectbox")
                           + at.get("toggle") + at.get("segmented_control") + at.get("number_input")
                           + at.get("text_input") + at.get("multiselect") if getattr(w, "key", None) == key]
                for w in widgets:
                    assert w.value == value or (value is None and w.value in (None, "")), \
                        (lesson.name, step.index, key, w.value, value)
            if step.index < n:
                at.button(key="lesson_next").click().run()
        assert at.button(key="lesson_next").disabled
        # the pages may have submitted their students' trainings to the shared backend: leave it idle
        # for the tests that follow (a closed tab does the same when its lease runs out); a session
        # has an owner id once it has started a job
        from opmerge_dashboard.backend import backend
        if "job_owner" in at.session_state:
            backend().cancel_session(at.session_state["job_owner"])


def test_previous_goes_back_and_a_bad_step_number_is_clamped_with_a_note() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lesson"], at.query_params["step"] = "phase-transition", "99"
    at.run()
    n = len(shipped()["phase-transition"].steps)
    assert any(f"step {n} of {n}" in m.value for m in at.markdown)
    assert any("step '99'" in unescape(e.value) for e in at.error)         # shown escaped, as text
    at.button(key="lesson_prev").click().run()
    assert any(f"step {n - 1} of {n}" in m.value for m in at.markdown)
    assert not at.exception


# ---- answers come from the engine ------------------------------------------------------------------
def test_the_answer_flips_when_the_steps_lambda_crosses_one(tmp_path: Path) -> None:
    text = '''title = "Flip"
[[steps]]
title = "Which plan?"
page = "phase"
params = { lam = LAM, T = 16 }
narrative = "Guess."
[steps.question]
kind = "optimal_strategy"
'''
    answers = {}
    for lam in ("0.5", "0.9", "3", "10"):
        lesson = lessons.load_file(write(tmp_path, f"flip{lam.replace('.', '')}", text.replace("LAM", lam)))
        step = lesson.steps[0]
        answers[lam] = questions.solve(step.question.kind, step.question.params, step.state)
    assert answers["0.5"].correct == answers["0.9"].correct == "boot"
    assert answers["3"].correct == answers["10"].correct == "vanilla"
    assert "overshoots" in answers["0.5"].why and "undershoots" in answers["3"].why
    assert answers["3"].figure is not None


def test_two_plans_answer_follows_the_side_of_the_target() -> None:
    state = {"lam": 0.5, "T": 8, "S": 1.0, "schedule": "trig", "init": "teacher", "surrogate": "teacher"}
    below = questions.solve("smaller_w2", {"a": "boot", "b": "vanilla"}, state)
    above = questions.solve("smaller_w2", {"a": "boot", "b": "vanilla", "lam": "3"}, state)
    assert below.correct == "a" and above.correct == "b"          # THEORY §5 table, T = 8
    assert "0.72174" in below.why and "0.73986" in below.why


def test_sfd_questions_read_the_shipped_reference_run() -> None:
    from opmerge_core.sfd import reference
    ref = reference.load_sfd()
    run = next(r for r in ref.runs if r["params"]["algorithm"] == "sfd" and r["params"]["nfe"] == 3)
    m = run["metrics"]
    beats = m["latent_fd"] + 2 * m["latent_fd_sd"] < m["latent_fd_solver"]
    assert questions.solve("sfd_beats_solver", {"nfe": "3"}, {}).correct == ("yes" if beats else "no")
    with pytest.raises(ValueError, match="NFE 5"):
        questions.solve("sfd_beats_solver", {"nfe": "5"}, {})


def test_afs_error_is_negligible_at_t_max_and_large_late() -> None:
    assert questions.solve("afs_error", {}, {}).correct == "negligible"        # 7.8e-5 at t = 80
    assert questions.solve("afs_error", {"t": "1"}, {}).correct == "large"     # √2 − 1 at t = 1, λ = 1


# ---- malformed lessons: one line naming the file and the step ---------------------------------------
BAD = [
    ('title = "x"\n[[steps]\n', "not valid TOML", None),
    ('summary = "no title"' + GOOD_STEP, "missing field `title`", None),
    ('title = "x"\n', "at least one step", None),
    ('title = "x"' + GOOD_STEP.replace('page = "phase"', 'page = "nowhere"'), "unknown page 'nowhere'", 1),
    ('title = "x"' + GOOD_STEP.replace("T = 8", "T = 8, colour = 1"), "unknown parameter `colour`", 1),
    ('title = "x"' + GOOD_STEP + GOOD_STEP.replace("lam = 0.5", "lam = -1"), "parameter `lam`", 2),
    ('title = "x"' + GOOD_STEP.replace("lam = 0.5", "lam = 0.33"), "grid value", 1),
    ('title = "x"' + GOOD_STEP.replace('narrative = "Look at the plan."', ""),
     "missing field `narrative`", 1),
    ('title = "x"' + GOOD_STEP + '[steps.question]\nkind = "telepathy"\n', "unknown question kind", 1),
    ('title = "x"' + GOOD_STEP
     + '[steps.question]\nkind = "smaller_w2"\nparams = { a = "boot", b = "boot" }\n',
     "same plan", 1),
    ('title = "x"' + GOOD_STEP + '[steps.question]\nkind = "optimal_strategy"\nparams = { lam = "big" }\n',
     "parameter `lam`", 1),
    ('title = "x"' + GOOD_STEP.replace('"Look at the plan."', '"' + "a" * 3000 + '"'), "too long", 1),
    ('title = "x"' + GOOD_STEP * 41, "41 steps", None),
    ('title = "x"\ncolour = "red"' + GOOD_STEP, "unknown field `colour`", None),
    ('title = "x"' + GOOD_STEP.replace('page = "phase"', 'page = "sfd"').replace(
        "lam = 0.5, T = 8", "sfd_solver = \"rk4\""), "parameter `sfd_solver`", 1),
]


@pytest.mark.parametrize(("text", "message", "step"), BAD)
def test_a_malformed_lesson_is_one_line_naming_file_and_step(tmp_path: Path, text: str, message: str,
                                                             step: int | None) -> None:
    path = write(tmp_path, "broken", text)
    with pytest.raises(LessonError) as info:
        lessons.load_file(path)
    line = str(info.value)
    assert "\n" not in line and line.startswith("lesson file broken.toml")
    assert message in line
    if step is not None:
        assert f"step {step}" in line


def test_bad_file_names_and_sizes(tmp_path: Path) -> None:
    with pytest.raises(LessonError, match="file name"):
        lessons.load_file(write(tmp_path, "Bad Name", 'title = "x"' + GOOD_STEP))
    big = write(tmp_path, "big", 'title = "x"' + GOOD_STEP + "#" * lessons.FILE_BYTES_MAX)
    with pytest.raises(LessonError, match="too large"):
        lessons.load_file(big)


def test_a_teachers_folder_adds_and_replaces_lessons(tmp_path: Path) -> None:
    write(tmp_path, "mine", 'title = "Mine"' + GOOD_STEP)
    write(tmp_path, "phase-transition", 'title = "My own phase transition"' + GOOD_STEP)
    write(tmp_path, "broken", 'title = "x"' + GOOD_STEP.replace("T = 8", "T = 0"))
    catalog = lessons.available(tmp_path)
    assert catalog.lessons["mine"].title == "Mine"
    assert catalog.lessons["phase-transition"].title == "My own phase transition"
    assert len(catalog.errors) == 1 and "broken.toml, step 1" in catalog.errors[0]
    with pytest.raises(LessonError, match=r"broken\.toml, step 1"):
        lessons.load("broken", tmp_path)
    with pytest.raises(LessonError, match="unknown lesson 'nope'"):
        lessons.load("nope", tmp_path)


def test_a_malformed_lesson_on_the_page_is_one_line(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, "broken", 'title = "x"' + GOOD_STEP.replace("T = 8", "T = 0"))
    monkeypatch.setenv(lessons.ENV, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["lesson"], at.query_params["step"] = "broken", "1"
    at.run()
    assert not at.exception
    errors = [unescape(e.value) for e in at.error]
    assert any(e.startswith("lesson file broken.toml, step 1: parameter `T`") for e in errors), errors
    at.switch_page("app_pages/lessons.py").run()
    assert not at.exception
    assert any("broken.toml, step 1" in e.value for e in at.error)


# ---- the CLI ----------------------------------------------------------------------------------------
def opmerge(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = f"import sys\nfrom opmerge_core.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_cli_lesson_list_json() -> None:
    out = opmerge("lesson", "list", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["errors"] == []
    by_name = {x["name"]: x for x in data["lessons"]}
    lesson = shipped()["phase-transition"]
    listed = by_name["phase-transition"]
    assert listed["title"] == lesson.title and len(listed["steps"]) == len(lesson.steps)
    for step, row in zip(lesson.steps, listed["steps"]):
        assert row["step"] == step.index and row["page"] == step.page and row["params"] == step.params
        if step.question:
            assert row["question"]["kind"] == step.question.kind
            assert "answer" not in row["question"]            # answers are computed, never listed


def test_cli_reports_a_malformed_lesson_in_one_line_with_exit_2(tmp_path: Path) -> None:
    write(tmp_path, "broken", 'title = "x"' + GOOD_STEP.replace("lam = 0.5", "lam = 1e9"))
    out = opmerge("lesson", "list", "--dir", str(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(r"broken\.toml, step 1: parameter `lam`", lines[0]), out.stderr
    assert "Traceback" not in out.stderr
    assert "phase-transition" in out.stdout                   # the good lessons are still listed
    out = opmerge("lesson", "check", str(tmp_path / "broken.toml"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "step 1" in out.stderr


def test_the_cli_checks_lessons_without_streamlit() -> None:
    code = ("import sys\nfrom opmerge_dashboard import lessons\nlessons.available()\n"
            "assert 'streamlit' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_url_budget_defaults_are_the_cores() -> None:
    """url_params writes the core's budget defaults down (checking a URL must not import torch)."""
    from opmerge_core.sfd import distill, mixture_demo
    from opmerge_dashboard import url_params

    assert url_params.SFD_DEFAULT_BUDGET == distill.DEFAULT_BUDGET
    assert url_params.SFD_MIXTURE_BUDGET == distill.MIXTURE_BUDGET
    assert url_params.MIXTURE_PAGE_BUDGET == mixture_demo.MIXTURE_PAGE_BUDGET


def test_the_example_in_the_docs_is_a_valid_lesson(tmp_path: Path) -> None:
    """docs/LESSONS.md's complete example loads, and its questions are answered by the engine."""
    example = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    lesson = lessons.load_file(write(tmp_path, "two-regimes", example))
    assert [s.page for s in lesson.steps] == ["phase", "playground"]
    first, second = (questions.solve(s.question.kind, s.question.params, s.state) for s in lesson.steps)
    assert first.correct == "vanilla" and second.correct == "b"


def test_the_docs_list_every_question_kind_and_page() -> None:
    from opmerge_dashboard.url_params import PAGES
    text = DOC.read_text(encoding="utf-8")
    for kind in questions.KINDS:
        assert f"`{kind}`" in text
    for page in PAGES:
        assert f"`{page}`" in text
