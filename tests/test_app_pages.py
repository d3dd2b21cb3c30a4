"""AppTest checks of the theory pages of the dashboard: every page renders, the URL
initialises the widgets, the optimal plan flips from sequential BOOT to vanilla across λ = 1, bad URL
parameters and bad uploads produce visible messages instead of exceptions."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from opmerge_dashboard.params import DEFAULTS
from opmerge_dashboard.spectrum_upload import parse_spectrum
from opmerge_dashboard.untrusted import unescape

APP = "../dashboard/app.py"  # relative to this file
PAGES = ["phase", "operators", "playground", "spectrum", "experiments", "about"]


def make_app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at


def run_page(page: str, **query: str) -> AppTest:
    at = make_app(**query).run()
    assert not at.exception, at.exception
    if page != "phase":
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def chart_types(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["data"][0]["type"] for c in at.get("plotly_chart")]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(page: str) -> None:
    at = run_page(page)
    assert at.title, "each page has a title"
    assert not at.error
    if page != "about":
        assert at.get("plotly_chart"), "each figure page shows at least one Plotly figure"


def test_home_default_view_shows_the_flip() -> None:
    at = run_page("phase")
    assert metric(at, "Optimal plan") == "Sequential BOOT"  # default λ = 0.5
    assert "heatmap" in chart_types(at)                     # the phase diagram
    assert at.select_slider(key="lam").value == 0.5
    assert at.slider(key="T").value == 32
    assert any("opmerge plan --T 32 --lam 0.5" in c.value for c in at.code)
    assert len(at.get("download_button")) >= 3             # CSV behind the tree, table, curves, phase


def test_query_params_initialise_widgets() -> None:
    at = run_page("phase", lam="3", T="16", S="2.5", schedule="cosine", init="teacher", surrogate="exact")
    assert at.select_slider(key="lam").value == 3.0
    assert at.slider(key="T").value == 16
    assert at.slider(key="S").value == pytest.approx(2.5)
    assert at.selectbox(key="schedule").value == "cosine"
    assert at.selectbox(key="surrogate").value == "exact"
    assert not at.warning or all("mixed band" in w.value for w in at.warning)
    assert any("--shrinkage 2.5 --schedule cosine --surrogate exact" in c.value for c in at.code)


def test_lambda_flip_from_boot_to_vanilla() -> None:
    at = run_page("phase", lam="0.5", T="32")
    assert metric(at, "Optimal plan") == "Sequential BOOT"
    at.select_slider(key="lam").set_value(3.0).run()
    assert not at.exception
    assert metric(at, "Optimal plan") == "Vanilla"


@pytest.mark.parametrize(("query", "name"), [
    ({"lam": "-1"}, "lam"), ({"lam": "abc"}, "lam"), ({"lam": "1e9"}, "lam"),
    ({"T": "abc"}, "T"), ({"T": "5000"}, "T"), ({"T": "1.5"}, "T"),
    ({"S": "nan"}, "S"), ({"schedule": "nope"}, "schedule"), ({"init": "x"}, "init"),
    ({"surrogate": "1"}, "surrogate"), ({"plan": "[[4 3] 2"}, "plan"), ({"plan": "[4 4 1]"}, "plan"),
    ({"preset": "whatever"}, "preset"),
])
def test_bad_params_warn_and_fall_back(query: dict, name: str) -> None:
    at = run_page("phase", **query)
    messages = [w.value for w in at.warning]
    assert any(f"`{name}`" in m and "default" in m for m in messages), messages
    assert at.select_slider(key="lam").value == DEFAULTS["lam"]
    assert at.slider(key="T").value == DEFAULTS["T"]
    assert metric(at, "Optimal plan") == "Sequential BOOT"


def test_all_bad_params_at_once() -> None:
    at = run_page("playground", lam="-1", T="abc", plan="[[4 3]] 2 1]")
    text = " ".join(w.value for w in at.warning)
    for name in ("lam", "T", "plan"):
        assert f"`{name}`" in text
    assert at.text_input(key="plan").value == ""


def test_off_grid_lambda_is_snapped_with_a_note() -> None:
    at = run_page("phase", lam="0.33")
    assert at.select_slider(key="lam").value == 0.3
    assert any("`lam`" in w.value and "0.3" in unescape(w.value) for w in at.warning)


def test_presets_and_reset() -> None:
    at = run_page("phase")
    at.segmented_control(key="preset").set_value("Far above").run()
    assert at.select_slider(key="lam").value == 5.0
    assert metric(at, "Optimal plan") == "Vanilla"
    at.segmented_control(key="preset").set_value("Hybrid band").run()
    assert metric(at, "Optimal plan") in ("Hybrid", "Mixed")
    at.button(key="reset").click().run()
    assert at.select_slider(key="lam").value == DEFAULTS["lam"]
    assert at.segmented_control(key="preset").value is None
    assert metric(at, "Optimal plan") == "Sequential BOOT"


def test_preset_from_url() -> None:
    at = run_page("phase", preset="above")
    assert at.select_slider(key="lam").value == 5.0
    assert metric(at, "Optimal plan") == "Vanilla"


def test_present_mode() -> None:
    at = run_page("phase", present="1")
    assert metric(at, "Optimal plan") == "Sequential BOOT"
    assert any("font-size" in h.proto.body for h in at.get("html"))


# ---- playground ---------------------------------------------------------------------------------
def test_playground_plan_from_url_sets_T_and_evaluates() -> None:
    at = run_page("playground", plan="[[4 3] 2 1]", lam="0.5")
    assert at.slider(key="T").value == 4
    assert not at.warning
    from opmerge_core.theory import plans
    from opmerge_core.theory.setting import Setting
    want = plans.parse("[[4 3] 2 1]").evaluate(Setting(4), [0.5])[0]
    assert metric(at, "Your plan's one-step value") == f"{want:.5f}"
    assert "histogram" in chart_types(at)                  # all 11 plans for T = 4


def test_playground_parse_error_is_inline_with_position() -> None:
    at = run_page("playground", T="4")
    at.text_input(key="plan").input("[[4 3] 2").run()
    assert not at.exception
    assert at.error and "position 1" in at.error[0].value and "never closed" in at.error[0].value
    at.text_input(key="plan").input("[4 3 2 1]").run()
    assert not at.error


def test_playground_merge_and_split_buttons() -> None:
    at = run_page("playground", T="4")
    at.selectbox(key="pg_start").set_value("vanilla")
    at.button(key="pg_load").click().run()
    assert at.text_input(key="plan").value == "[4 3 2 1]"
    at.selectbox(key="pg_pair").set_value(0)
    at.button(key="pg_merge").click().run()
    assert at.text_input(key="plan").value == "[[4 3] 2 1]"
    at.selectbox(key="pg_node").set_value((2, 4))
    at.run()
    at.button(key="pg_split").click().run()
    assert at.text_input(key="plan").value == "[4 3 2 1]"


# ---- spectrum upload ----------------------------------------------------------------------------
def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("bad.csv", b"1.0, 2.0, banana\n", "only numbers"),
    ("neg.csv", b"1.0\n-2.0\n", "> 0"),
    ("big.csv", b"1.0," * 400_000, "at most 1,000,000 are accepted"),
    ("many.csv", ("0.5\n" * 5000).encode(), "at most 4,096"),
    ("obj.npy", _npy(np.array([{"a": 1}], dtype=object)), "real numbers"),
    ("str.npy", _npy(np.array(["a", "b"])), "real numbers"),
    ("complex.npy", _npy(np.array([1 + 2j, 3.0])), "got dtype complex128"),   # not: drop the imaginary part
    ("delta.npy", _npy(np.array([1, 2], dtype="timedelta64[s]")), "got dtype timedelta64[s]"),
    ("bool.npy", _npy(np.array([True, False])), "got dtype bool"),
    ("date.npy", _npy(np.array(["2020-01-01"], dtype="datetime64[D]")), "got dtype datetime64[D]"),
    ("junk.npy", b"\x93NUMPY garbage", "npy"),
    ("empty.csv", b"", "empty"),
])
def test_spectrum_bad_upload_shows_error_and_app_keeps_working(name: str, data: bytes, reason: str) -> None:
    at = run_page("spectrum")
    at.segmented_control(key="sp_source").set_value("upload").run()
    at.file_uploader(key="sp_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert at.error and reason in unescape(at.error[0].value), [e.value for e in at.error]
    assert at.get("plotly_chart"), "falls back to the power-law preset"


def test_spectrum_good_upload_and_shared_plan_flag() -> None:
    at = run_page("spectrum")
    at.segmented_control(key="sp_source").set_value("upload").run()
    at.file_uploader(key="sp_upload").set_value(("ok.csv", b"3.0\n2.0\n0.5\n0.2\n", "text/csv")).run()
    assert not at.exception and not at.error
    assert any("Loaded 4 eigenvalues" in s.value for s in at.success)
    flags = [s.value for s in at.success] + [w.value for w in at.warning]
    assert any(f.startswith("Shared plan: **") for f in flags)  # the shared plan's `exact` flag


def test_npy_header_is_checked_before_anything_is_allocated() -> None:
    """A 192-byte file whose header claims 2**40 float64 values: a clear message, no MemoryError."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (2**40,)})
    data = buf.getvalue() + bytes(192 - len(buf.getvalue()))
    assert len(data) == 192
    with pytest.raises(ValueError, match=r"declares 1,099,511,627,776 eigenvalues"):
        parse_spectrum("huge.npy", data)
    truncated = _npy(np.arange(1.0, 101.0))[:-8]
    with pytest.raises(ValueError, match="truncated"):
        parse_spectrum("cut.npy", truncated)


@pytest.mark.parametrize("dtype", ["<f2", "<f4", ">f8", "<i2", "<u1", ">i8"])
def test_real_float_and_integer_spectra_are_accepted(dtype: str) -> None:
    assert parse_spectrum("x.npy", _npy(np.array([1, 4, 2], dtype=dtype))).tolist() == [4.0, 2.0, 1.0]


def test_parse_spectrum_never_unpickles() -> None:
    payload = pickle.dumps([1.0, 2.0])
    with pytest.raises(ValueError, match=r"pickles|real numbers|npy"):
        parse_spectrum("x.npy", _npy(np.array([payload], dtype=object)))
    assert parse_spectrum("x.npy", _npy(np.array([0.5, 2.0]))).tolist() == [2.0, 0.5]


# ---- operators, experiments, spectrum presets ---------------------------------------------------
def test_operators_geometry_scrubs_client_side() -> None:
    at = run_page("operators", T="16", lam="2")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    animated = [s for s in specs if s.get("frames")]
    assert len(animated) == 1 and len(animated[0]["frames"]) == 16       # one frame per step
    assert animated[0]["layout"]["sliders"][0]["steps"][0]["method"] == "animate"
    assert metric(at, "P / (r₀/r_T)") != ""


def test_experiments_grid_has_every_cell() -> None:
    at = run_page("experiments")
    grid = next(d.value for d in at.dataframe if "gap_uniform" in d.value.columns)
    assert len(grid) == 6 * 4
    assert set(grid["T"]) == {64, 128, 256, 512}
    assert (grid[grid["regime"] == "boot"]["gap_boot"].abs() < 1e-12).all()
    assert (grid[grid["regime"] == "vanilla"]["gap_vanilla"].abs() < 1e-12).all()
    assert any("opmerge sweep" in c.value and "--T 64,128,256,512" in c.value for c in at.code)


@pytest.mark.parametrize("source", ["two-level", "flat"])
def test_spectrum_presets(source: str) -> None:
    at = run_page("spectrum")
    at.segmented_control(key="sp_source").set_value(source).run()
    assert not at.exception and not at.error
    assert at.get("plotly_chart")
