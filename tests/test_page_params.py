"""The pages' own controls bound to the URL (``url_params.OWN``): Train, CelebA latents, Spectrum,
Paper experiments and Theory vs practice. A URL value sets its widget; a bad one is a warning naming
the parameter and the default, and the widget shows that default (also where Streamlit itself would
read the value differently); a widget change is the session state under the parameter's URL name, and
the widget is bound to it. Lessons set these parameters through the same registry, and docs/LESSONS.md
lists it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from opmerge_dashboard import lessons, untrusted, url_params
from opmerge_dashboard.lessons import LessonError
from opmerge_dashboard.url_params import OWN, page_params

APP = "../dashboard/app.py"
DOC = Path(__file__).resolve().parents[1] / "docs" / "LESSONS.md"
WIDGETS = ("slider", "select_slider", "selectbox", "segmented_control", "number_input", "text_input",
           "multiselect", "toggle")
PAGES = ("train", "celeba", "spectrum", "experiments", "practice")

# page -> (URL values, the widgets' values they give); every widget named here is on the page then
GOOD = {
    "train": ({"tr_T": "8", "tr_steps": "20", "tr_lr": "1", "tr_batch": "16", "tr_spectrum": "two-level",
               "tr_d": "6", "tr_seed": "7", "tr_opt": "adam", "tr_student": "mlp", "tr_inputs": "boot",
               "tr_strategies": ["boot", "Vanilla"], "tr_plan": "[[8 7] 6 5 4 3 2 1]"},
              {"tr_T": 8, "tr_steps": 20, "tr_lr": 1.0, "tr_batch": 16, "tr_spectrum": "two-level",
               "tr_d": 6, "tr_seed": 7, "tr_opt": "adam", "tr_student": "mlp", "tr_inputs": "boot",
               "tr_strategies": ["boot", "vanilla"], "tr_plan": "[[8 7] 6 5 4 3 2 1]"}),
    "celeba": ({"T": "4", "celeba_samples": "4", "celeba_seed": "3", "celeba_gain": "8",
                "celeba_columns": ["2", "4"]},
               {"celeba_samples": 4, "celeba_seed": 3, "celeba_gain": 8.0, "celeba_columns": [2, 4]}),
    "spectrum": ({"T": "8", "sp_source": "two-level", "sp_d": "16", "sp_hi": "2.5"},
                 {"sp_source": "two-level", "sp_d": 16, "sp_hi": 2.5}),
    "experiments": ({"ex_T": "16", "ex_strategy": "Vanilla", "ex_T_c": "8"},
                    {"ex_T": 16, "ex_strategy": "vanilla", "ex_T_c": 8}),
    "practice": ({"tp_teacher": "mixture-2d", "tp_preset": "ring8", "tp_T": "8", "tp_student": "mlp",
                  "tp_plans": ["dp", "boot"], "tp_seeds": "4", "tp_S": "0.5"},
                 {"tp_teacher": "mixture-2d", "tp_preset": "ring8", "tp_T": 8, "tp_student": "mlp",
                  "tp_plans": ["dp", "boot"], "tp_seeds": 4, "tp_S": 0.5}),
}
# page -> (bad URL values, parameter -> the value its widget shows instead: the default, or the note's)
BAD = {
    "train": ({"tr_T": "5", "tr_steps": "300", "tr_lr": "abc", "tr_spectrum": "power-law", "tr_d": "3.5",
               "tr_seed": "-1", "tr_opt": "rmsprop", "tr_strategies": ["boot", "nope"]},
              {"tr_T": 32, "tr_steps": 200, "tr_lr": 0.005, "tr_d": 8, "tr_seed": 0, "tr_opt": "sgd",
               "tr_strategies": ["boot", "vanilla", "dp"]}),
    "celeba": ({"T": "4", "celeba_samples": "40", "celeba_seed": "1e3", "celeba_gain": "3.4",
                "celeba_columns": ["7"]},
               {"celeba_samples": 6, "celeba_seed": 0, "celeba_gain": 3.0, "celeba_columns": []}),
    "spectrum": ({"T": "8", "sp_source": "fractal", "sp_d": "999", "sp_a": "1.55"},
                 {"sp_source": "power-law", "sp_d": 32, "sp_a": 1.5}),
    "experiments": ({"ex_T": "17", "ex_strategy": "nope", "ex_T_c": "256"},
                    {"ex_T": 64, "ex_strategy": "boot", "ex_T_c": 32}),
    "practice": ({"tp_teacher": "cnn", "tp_preset": "spiral", "tp_T": "7", "tp_student": "resnet",
                  "tp_plans": ["boot", "nope"], "tp_seeds": "2", "tp_S": "3"},
                 {"tp_teacher": "latent-mlp", "tp_preset": "two-blobs", "tp_T": 16, "tp_student": "linear",
                  "tp_plans": list(url_params.PRACTICE_PLANS), "tp_seeds": 3, "tp_S": 1.0}),
}
NOTED = {"celeba_gain", "sp_a"}                  # snapped onto the widget's grid (a note, no default)


def open_page(page: str, query: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def widgets(at: AppTest) -> dict:
    """Every keyed widget on the page, by key."""
    return {w.key: w for kind in WIDGETS for w in at.get(kind) if getattr(w, "key", None)}


def assert_shows(at: AppTest, expected: dict) -> None:
    """Each widget shows its expected value, which is also the session state under its URL name."""
    shown = widgets(at)
    for key, value in expected.items():
        assert key in shown, f"{key} has no widget"
        assert shown[key].value == value, (key, shown[key].value, value)
        assert at.session_state[key] == value


def url_warnings(at: AppTest) -> list[str]:
    """The URL warnings as a reader sees them (their quoted values are escaped markdown)."""
    said = (untrusted.unescape(w.value) for w in at.warning)
    return [w for w in said if w.startswith("URL parameter")]


def url_text(param: url_params.Param, value: object) -> str | list[str]:
    """A value as its widget writes it in the URL."""
    return [param.label(v) for v in value] if param.multi else str(value)


# ---- the registry --------------------------------------------------------------------------------
def test_every_default_reads_back_through_its_own_check() -> None:
    for params in OWN.values():
        for key, param in params.items():
            value, note = param.check(url_text(param, param.default))
            assert note is None and value == (list(param.default) if param.multi else param.default), key


def test_the_pages_choices_are_the_cores() -> None:
    """url_params writes the trainer's choices and bounds down (the trainer imports torch)."""
    from opmerge_core.training import config, graph, train_spec

    assert url_params.TRAIN_STRATEGIES == train_spec.STRATEGY_CHOICES
    assert url_params.TRAIN_OPTIMIZERS == config.OPTIMIZERS
    assert url_params.TRAIN_STUDENTS == config.STUDENTS
    assert url_params.INPUTS == graph.INPUTS
    config.TrainConfig(seed=url_params.SEED_MAX)
    with pytest.raises(ValueError):
        config.TrainConfig(seed=url_params.SEED_MAX + 1)
    assert max(url_params.TRAIN_STEPS) <= config.STEPS_MAX
    assert max(url_params.TRAIN_BATCHES) <= config.BATCH_MAX


@pytest.mark.parametrize(("raw", "values", "problem"), [
    ({"tr_plan": "[[4 3] 2 1]"}, {"tr_plan": "[[4 3] 2 1]", "tr_T": 4}, None),          # a plan sets T
    ({"tr_plan": "[[4 3] 2 1]", "tr_T": "8"}, {"tr_plan": "", "tr_T": 8}, "the plan is for T = 4 but T = 8"),
    ({"tr_plan": "[5 4 3 2 1]"}, {"tr_plan": "", "tr_T": 32}, "T = 5 but T = 32"),     # no T = 5 offered
    ({"celeba_samples": "4", "celeba_columns": ["2", "5"]}, {"celeba_columns": []}, "5 is more than"),
    ({"celeba_columns": ["3", "3", "1"]}, {"celeba_columns": [3, 1]}, None),          # repeats dropped
    ({"tr_strategies": []}, {"tr_strategies": []}, None),                               # none is allowed
    ({"tr_lr": "1e-3"}, {"tr_lr": 0.001}, None),                                       # a number by value
])
def test_relations_between_parameters(raw: dict, values: dict, problem: str | None) -> None:
    page = "celeba" if any(k.startswith("celeba") for k in raw) else "train"
    resolved = url_params.resolve(page_params(page), raw)
    assert {k: resolved.values[k] for k in values} == values
    messages = [m for _, m, _ in resolved.problems]
    assert (problem is None and not messages) or any(problem in m for m in messages), messages


# ---- the pages -----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_url_values_set_the_pages_own_widgets(page: str) -> None:
    query, expected = GOOD[page]
    at = open_page(page, query)
    assert not url_warnings(at), url_warnings(at)
    assert_shows(at, expected)


@pytest.mark.parametrize("page", PAGES)
def test_bad_url_values_warn_and_the_widgets_show_the_default(page: str) -> None:
    query, expected = BAD[page]
    at = open_page(page, query)
    messages = url_warnings(at)
    for key, value in expected.items():
        said = [m for m in messages if m.startswith(f"URL parameter `{key}`")]
        assert len(said) == 1, (key, messages)
        default = "empty" if value == [] else repr(value)
        assert key in NOTED or f"using the default ({default})" in said[0], said[0]
    assert_shows(at, expected)


@pytest.mark.parametrize("page", PAGES)
def test_every_own_control_is_bound_and_a_change_is_its_state(page: str) -> None:
    query, _ = GOOD[page]
    at = open_page(page, query)
    shown = widgets(at)
    for key in OWN[page]:
        if key in shown:
            assert shown[key].proto.query_param_key == key, key
    assert set(query) - {"T"} <= set(shown)
    change = {"train": ("tr_steps", 50), "celeba": ("celeba_gain", 12.0), "spectrum": ("sp_d", 64),
              "experiments": ("ex_T_c", 64), "practice": ("tp_S", 2.0)}[page]
    shown[change[0]].set_value(change[1]).run()
    assert not at.exception, at.exception
    assert at.session_state[change[0]] == change[1]
    assert widgets(at)[change[0]].value == change[1]
    if page in ("train", "practice"):                     # the page uses it: the printed command
        assert {"train": "--steps 50", "practice": "--budget 2"}[page] in at.code[-1].value


# visits that together show every control of a page (some appear only for one choice of another)
VISITS = {"train": [{"tr_spectrum": "power-law"}], "spectrum": [{}, {"sp_source": "two-level"}],
          "celeba": [{"T": "4"}]}


def widget_default(kind: str, w) -> object:
    """The default a widget was given, read from its message: a value, or the text of its option(s)."""
    p = w.proto
    if kind in ("slider", "number_input", "toggle", "text_input"):
        return p.default[0] if kind == "slider" else p.default
    if kind == "select_slider":
        return p.options[int(p.default[0])]
    if kind == "selectbox":
        return p.options[p.default]
    if kind == "multiselect":
        return [p.options[i] for i in p.default]
    return p.options[p.default[0]].content if p.default else None          # segmented_control


@pytest.mark.parametrize("page", url_params.PAGES)
def test_every_bound_widgets_default_is_its_parameters(page: str) -> None:
    """A bound widget drops its own default from the URL: were it not the parameter's default, a value
    equal to it (λ = 0.05, the slider's first) would vanish from the address and the link reload as
    the parameter's default."""
    params, seen = page_params(page), set()
    for query in VISITS.get(page, [{}]):
        at = open_page(page, query)
        for kind in WIDGETS:
            for w in at.get(kind):
                key = getattr(w, "key", None)
                if key not in params or not w.proto.query_param_key:
                    continue
                seen.add(key)
                param, shown = params[key], widget_default(kind, w)
                default = list(param.default) if param.multi else param.default
                if isinstance(shown, str | list) and shown != default:     # an option's text: read it back
                    shown = param.check(shown)[0]
                assert shown == default, (page, key, shown, default)
    assert seen == set(params), (page, set(params) - seen)


def test_a_multiselect_mixing_codes_and_labels_shows_all_of_them() -> None:
    """Streamlit alone would keep only the labels of such a list (``boot`` is a code, ``Vanilla`` a
    label); the page shows what the check read."""
    at = open_page("train", {"tr_strategies": ["boot", "Vanilla"]})
    assert widgets(at)["tr_strategies"].value == ["boot", "vanilla"]
    assert not url_warnings(at)


# ---- lessons set them ------------------------------------------------------------------------------
LESSON = '''title = "Own controls"

[[steps]]
title = "Train a plan"
page = "train"
narrative = "A typed plan at T = 4."
[steps.params]
tr_plan = "[[4 3] [2 1]]"
tr_strategies = ["vanilla"]
tr_steps = 20
tr_lr = 0.01
tr_opt = "adam"

[[steps]]
title = "A two-level spectrum"
page = "spectrum"
params = { T = 8, sp_source = "two-level", sp_d = 16, sp_hi = 3 }
narrative = "Half the directions at 3."

[[steps]]
title = "The grid, coloured by vanilla"
page = "experiments"
params = { ex_T = 16, ex_strategy = "vanilla", ex_T_c = 8 }
narrative = "Vanilla's gap."

[[steps]]
title = "Two faces"
page = "celeba"
params = { T = 4, celeba_samples = 3, celeba_columns = [1, 3], celeba_gain = 10 }
narrative = "Two faces, large."
'''


def test_a_lesson_sets_the_pages_own_controls_and_opens_them(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "own.toml").write_text(LESSON, encoding="utf-8")
    lesson = lessons.load("own", tmp_path)
    first = lesson.steps[0].state
    assert first["tr_T"] == 4 and first["tr_strategies"] == ["vanilla"] and first["tr_lr"] == 0.01
    assert lesson.steps[3].state["celeba_columns"] == [1, 3]
    monkeypatch.setenv(lessons.ENV, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lesson"], at.query_params["step"] = "own", "1"
    at.run()
    assert any("--plan '[[4 3] [2 1]]'" in c.value and "--T 4" in c.value for c in at.code)
    for step in lesson.steps:
        assert not at.exception, at.exception
        assert not url_warnings(at) and not at.error, (step.index, [e.value for e in at.error])
        shown = widgets(at)
        for key in OWN[step.page]:
            if key in shown:
                assert shown[key].value == step.state[key], (step.index, key, shown[key].value)
        if step.index < len(lesson.steps):
            at.button(key="lesson_next").click().run()


@pytest.mark.parametrize(("page", "params", "message"), [
    ("train", 'tr_T = 5', "parameter `tr_T`: unknown T '5'"),
    ("train", 'tr_steps = 20.5', "parameter `tr_steps`"),
    ("train", 'tr_strategies = ["boot", "nope"]', "parameter `tr_strategies`: unknown strategy 'nope'"),
    ("train", 'tr_opt = ["sgd", "adam"]', "parameter `tr_opt`: takes one value"),
    ("train", 'tr_plan = "[[4 3] 2 1]", tr_T = 8', "parameter `tr_plan`: the plan is for T = 4 but T = 8"),
    ("train", 'tr_colour = "red"', "unknown parameter `tr_colour` for page 'train'"),
    ("celeba", 'celeba_columns = [7]', "parameter `celeba_columns`: 7 is more than celeba_samples = 6"),
    ("celeba", 'celeba_gain = 3.4', "parameter `celeba_gain`: 3.4 is shown as 3 (use a grid value)"),
    ("spectrum", 'sp_d = 1000', "parameter `sp_d`: must be an integer in [4, 256]"),
    ("experiments", 'ex_T_c = 256', "parameter `ex_T_c`: unknown T '256'"),
])
def test_a_bad_own_parameter_in_a_lesson_is_one_line(tmp_path: Path, page: str, params: str,
                                                      message: str) -> None:
    text = f'title = "x"\n[[steps]]\ntitle = "ok"\npage = "phase"\nnarrative = "."\n' \
           f'[[steps]]\ntitle = "bad"\npage = "{page}"\nparams = {{ {params} }}\nnarrative = "."\n'
    (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
    with pytest.raises(LessonError) as info:
        lessons.load_file(tmp_path / "bad.toml")
    line = str(info.value)
    assert "\n" not in line and line.startswith("lesson file bad.toml, step 2: "), line
    assert message in line, line


# ---- the docs list the registry ------------------------------------------------------------------
def doc_table(header: str) -> list[list[str]]:
    """The body rows (cells) of the markdown table whose header line is ``header``."""
    text = DOC.read_text(encoding="utf-8")
    rows = []
    for line in text[text.index(header):].splitlines()[2:]:       # after the header and |---|
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_docs_page_table_is_the_registry() -> None:
    rows = doc_table("| page | parameters |")
    listed = {page: names(params) for pages, params in rows for page in names(pages)}
    assert set(listed) == set(url_params.PAGES)
    for page, params in listed.items():
        assert params == list(page_params(page)), page


def test_the_docs_own_parameter_table_is_the_registry() -> None:
    """Every own parameter has a row; its default (as TOML) is the registry's, read the way a lesson is
    read; every value the row lists is accepted by the parameter's check."""
    rows = doc_table("| parameter | control | default | values |")
    own = {key: param for params in OWN.values() for key, param in params.items()}
    assert [names(r[0])[0] for r in rows] == list(own)
    for cells in rows:
        key, param = names(cells[0])[0], own[names(cells[0])[0]]
        default = tomllib.loads(f"x = {names(cells[2])[0]}")["x"]
        value, _ = param.check(lessons._url_value(default))
        assert value == (list(param.default) if param.multi else param.default), key
        for token in names(cells[3]):
            param.check([token] if param.multi else token)
