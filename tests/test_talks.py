"""Talks and classrooms: per-page controls, presentation mode, predict-then-reveal, the shipped
reference runs (safe, tolerant loading) and enlarged face grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from opmerge_core import figures
from opmerge_core.latent import images
from opmerge_core.sfd import reference
from opmerge_dashboard import controls, presentation

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
ASSETS = Path(__file__).resolve().parent.parent / "assets"


def open_page(page: str = "phase", **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    if page != "phase":
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, at.exception
    return at


def sidebar_keys(at: AppTest) -> set[str]:
    widgets = [*at.sidebar.slider, *at.sidebar.select_slider, *at.sidebar.selectbox,
               *at.sidebar.get("button_group")]
    return {w.key for w in widgets if w.key} - {"export_format"}


def metric_labels(at: AppTest) -> list[str]:
    return [m.label for m in at.metric]


# ---- each page shows the controls that act on it ------------------------------------------------
@pytest.mark.parametrize("page", ["phase", "experiments", "train", "mixtures"])
def test_sidebar_shows_only_the_controls_of_the_page(page: str) -> None:
    at = open_page(page)
    assert sidebar_keys(at) == set(controls.for_page(page)), page
    if not controls.for_page(page):
        assert any("own controls" in c.value for c in at.sidebar.caption)


def test_every_page_has_a_control_set() -> None:
    pages = {f.stem for f in (Path(APP).parent / "app_pages").glob("*.py")}
    assert pages == set(controls.PAGE_CONTROLS) | set(controls.WITHOUT_CONTROLS)
    assert all(set(keys) <= set(controls.THEORY) for keys in controls.PAGE_CONTROLS.values())
    assert all(controls.for_page(page) == () for page in controls.WITHOUT_CONTROLS)


def test_source_tree_uses_the_repository_assets(monkeypatch) -> None:
    from opmerge_core.latent import latents
    monkeypatch.delenv("OPMERGE_ASSETS", raising=False)
    assert latents.assets_dir() == ASSETS                                # editable / source checkout
    monkeypatch.setenv("OPMERGE_ASSETS", "/elsewhere")
    assert latents.assets_dir() == Path("/elsewhere")


def test_theory_state_survives_a_page_without_theory_controls() -> None:
    at = open_page("phase", lam="3", T="16")
    at.switch_page("app_pages/mixtures.py").run()
    assert not at.exception and "lam" not in sidebar_keys(at)
    at.switch_page("app_pages/phase.py").run()
    assert at.select_slider(key="lam").value == 3.0 and at.slider(key="T").value == 16
    assert "Vanilla" in [m.value for m in at.metric]


# ---- presentation mode ----------------------------------------------------------------------------
def test_presentation_puts_lambda_T_S_on_the_stage() -> None:
    at = open_page("phase", present="1", lam="0.5")
    assert {"lam", "T", "S"}.isdisjoint(sidebar_keys(at))
    assert at.main.select_slider(key="lam").value == 0.5
    assert {s.key for s in at.main.slider} >= {"T", "S"}
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert specs and all(s["layout"]["font"]["size"] == presentation.FIG_FONT for s in specs)
    at.main.select_slider(key="lam").set_value(3.0).run()
    assert "Vanilla" in [m.value for m in at.metric]


def test_outside_presentation_figures_keep_their_fonts() -> None:
    at = open_page("phase")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert all(s["layout"]["font"]["size"] < presentation.FIG_FONT for s in specs)


def test_celeba_stage_has_no_lambda() -> None:
    assert controls.STAGE[0] == "lam" and "lam" not in controls.for_page("celeba")
    assert controls.for_page("sfd") == () and controls.for_page("") == controls.THEORY


# ---- predict, then reveal -------------------------------------------------------------------------
def test_predict_hides_the_answer_until_a_pick_and_reveals_why() -> None:
    at = open_page("phase", predict="1", lam="0.5", T="32")
    assert at.toggle(key="predict").value is True
    assert not metric_labels(at) and not at.get("plotly_chart")          # plan, tree, metric hidden
    assert at.button(key="predict_reveal").disabled
    at.radio(key="predict_choice").set_value("boot").run()
    at.button(key="predict_reveal").click().run()
    assert "Optimal plan" in metric_labels(at)
    assert at.success and "Right!" in at.success[0].value and "overshoots" in at.success[0].value
    assert "predict" in at.query_params                                   # the link keeps the mode
    assert set(at.query_params) <= {"predict", "lam", "T"}               # the pick is not in the URL


def test_predict_wrong_pick_and_a_new_question_per_setting() -> None:
    at = open_page("phase", predict="true", lam="5", T="32")
    at.radio(key="predict_choice").set_value("boot").run()
    at.button(key="predict_reveal").click().run()
    text = at.info[0].value
    assert "Not quite" in text and "Vanilla" in text and "undershoots" in text and "W2" in text
    at.select_slider(key="lam").set_value(0.5).run()                    # new setting: ask again
    assert not metric_labels(at) and at.radio(key="predict_choice").value is None


def test_predict_off_shows_everything() -> None:
    at = open_page("phase")
    assert at.toggle(key="predict").value is False and "Optimal plan" in metric_labels(at)


# ---- reference runs: shipped, labelled, loaded safely and tolerantly -----------------------------
def test_shipped_references_load() -> None:
    sfd_ref, celeba_ref = reference.load_sfd(ASSETS), reference.load_celeba(ASSETS)
    assert sfd_ref is not None and celeba_ref is not None
    assert {r["params"]["algorithm"] for r in sfd_ref.runs} == set(reference.SFD_ALGORITHMS)
    assert {"teacher", "solver", *reference.SFD_ALGORITHMS} <= set(sfd_ref.samples)
    assert all(a.shape == (reference.KEEP, 128) for a in sfd_ref.samples.values())
    assert celeba_ref.setting == reference.CELEBA_SETTING
    rows = reference.celeba_rows(celeba_ref, {})
    assert rows and all("W2 (theory)" in r and any(k.endswith("(trained)") for k in r) for r in rows)
    for name in (reference.SFD_FILE, reference.SFD_SAMPLES_FILE, reference.CELEBA_FILE):
        assert (ASSETS / name).stat().st_size < 200_000


def _write_sfd(folder: Path, metrics: dict) -> None:
    run = {"command": "x", "params": {"teacher": "latent-mlp", "algorithm": "sfd", "nfe": 3, "afs": False},
           "metrics": metrics}
    (folder / reference.SFD_FILE).write_text(json.dumps({"runs": [run]}))


def test_reference_extra_keys_are_kept_and_missing_ones_do_not_break(tmp_path: Path) -> None:
    _write_sfd(tmp_path, {"latent_fd": 2.0, "latent_fd_floor": 0.1, "latent_fd_sd": 0.05, "note": "x"})
    ref = reference.load_sfd(tmp_path)
    assert reference.scalars(ref.runs[0]["metrics"]) == {"latent_fd": 2.0, "latent_fd_floor": 0.1,
                                                         "latent_fd_sd": 0.05}
    rows = reference.sfd_rows(ref, "latent-mlp")                         # no latent_fd_solver: one row
    assert [r["method"] for r in rows] == ["sfd"] and rows[0]["seconds"] == 0.0
    assert ref.samples == {}                                             # no samples file: no faces
    _write_sfd(tmp_path, {"latent_fd_solver": 3.0})                      # no latent_fd at all
    assert reference.sfd_rows(reference.load_sfd(tmp_path), None) == []


def test_reference_files_are_checked(tmp_path: Path) -> None:
    assert reference.load_sfd(tmp_path) is None and reference.load_celeba(tmp_path) is None
    (tmp_path / reference.SFD_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        reference.load_sfd(tmp_path)
    (tmp_path / reference.SFD_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        reference.load_sfd(tmp_path)
    (tmp_path / reference.SFD_FILE).write_bytes(b" " * (reference.MAX_BYTES + 1))
    with pytest.raises(ValueError, match="larger"):
        reference.load_sfd(tmp_path)
    (tmp_path / reference.CELEBA_FILE).write_text(json.dumps({"result": {}}))
    with pytest.raises(ValueError, match="setting"):
        reference.load_celeba(tmp_path)


def test_reference_samples_never_unpickle(tmp_path: Path) -> None:
    _write_sfd(tmp_path, {"latent_fd": 1.0})
    np.savez(tmp_path / reference.SFD_SAMPLES_FILE, teacher=np.ones((2, 3)),
             evil=np.array([{"a": 1}], dtype=object), solver=np.full((2, 3), np.nan))
    assert set(reference.load_sfd(tmp_path).samples) == {"teacher"}


@pytest.mark.slow
def test_sfd_page_first_view_is_the_reference_run(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))                   # an empty run store
    at = open_page("sfd")
    assert any("Reference run" in i.value for i in at.info)
    assert any({"latent_fd", "latent_fd_solver", "latent_fd_teacher"} <= set(d.value.columns)
               for d in at.dataframe)
    assert at.get("image"), "reference faces"
    assert any(c.key == "fig_sfd_quality_vs_seconds" for c in at.get("plotly_chart"))


@pytest.mark.slow
def test_celeba_trainer_check_shows_the_reference_at_its_setting(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    at = open_page("celeba")
    assert any("Reference run" in i.value for i in at.info)
    assert any("W2 (theory)" in d.value.columns for d in at.dataframe)
    at.multiselect(key="celeba_columns").set_value([2, 4]).run()          # zoom keeps the app alive
    assert not at.exception
    at.slider(key="T").set_value(16).run()                                # another setting: no table
    assert not any("W2 (theory)" in d.value.columns for d in at.dataframe)


# ---- faces ---------------------------------------------------------------------------------------
def test_enlarge_replicates_pixels() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    big = np.asarray(images.enlarge(Image.fromarray(arr), 3))
    assert big.shape == (15, 21, 3)
    assert (big[::3, ::3] == arr).all() and (big[2::3, 1::3] == arr).all()
    assert images.enlarge(Image.fromarray(arr), 1).size == (7, 5)


@pytest.mark.parametrize(("values", "expected"), [
    ((0.004, 1.7), [0.01, 0.1, 1.0]),                       # four decades: one tick per decade
    ((0.03, 2.5), [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]),         # two decades: 1-2-5
    ((0.3, 0.4), [0.3, 0.4]),                               # narrower than one 1-2-5 step
    ((0.0, -1.0), []),                                      # nothing positive to show
])
def test_log_ticks_are_full_numbers(values, expected) -> None:
    ticks = figures.theory.log_ticks(np.array(values))
    assert ticks == pytest.approx(expected)


def test_strategy_curves_label_every_log_tick() -> None:
    from opmerge_core.theory import sweep
    from opmerge_core.theory.setting import Setting
    df = sweep.compare(Setting(T=16), np.geomspace(0.05, 50, 31))
    fig = figures.theory.strategy_curves(df, 0.5, 1.1, 2.0)
    axis = fig.layout.yaxis
    assert axis.type == "log" and len(axis.tickvals) >= 2
    assert list(axis.ticktext) == [f"{x:g}" for x in axis.tickvals]
