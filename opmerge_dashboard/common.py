"""Shared dashboard machinery: URL-bound teaching parameters, cached core calls, export helpers.

Every teaching parameter is a keyed widget bound to the URL (``bind="query-params"``) under the exact
names of the dashboard issue: ``lam``, ``T``, ``S``, ``schedule``, ``init``, ``surrogate``, ``plan``,
``preset``. URL values are checked here, once per session, *before* any widget exists: a bad value
becomes a visible warning naming the parameter and the default is used (never an exception).

All mathematics comes from ``opmerge_core``; this module only caches it (``st.cache_data``, bounded)
and turns it into widgets, downloads and CLI commands.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from opmerge_core.infra import compute
from opmerge_core.theory import dp, planner, plans, sweep, value_sets
from opmerge_core.theory import heavy as heavy_core
from opmerge_core.theory.schedules import SCHEDULE_LABELS, SCHEDULES
from opmerge_core.theory.setting import SURROGATE_LABELS, SURROGATES, Setting
from opmerge_core.theory.shared_plan import SharedPlan, shared_plan
from opmerge_core.theory.shrinkage import INIT_LABELS, INITS
from opmerge_dashboard import figures, presentation

# ---- the parameters -----------------------------------------------------------------------------
# λ lives on a log-spaced grid of round numbers, refined around the transition (λ ≈ 1 … 2), so the
# URL carries readable values (lam=0.5) and a keyboard arrow moves one grid step.
LAM_GRID: tuple[float, ...] = (
    0.05, 0.06, 0.07, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
    1.0, 1.02, 1.05, 1.1, 1.2, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0,
    20.0, 25.0, 30.0, 40.0, 50.0,
)
LAM_MIN, LAM_MAX = LAM_GRID[0], LAM_GRID[-1]
T_MIN, T_MAX = 2, 1024
S_MIN, S_MAX, S_STEP = 0.05, 20.0, 0.05
WARN, ERROR = ":material/warning:", ":material/error:"  # alert icons
PLAN_URL_MAX = 20_000            # characters of plan text accepted from the URL / text box

DEFAULTS: dict[str, object] = {
    "lam": 0.5, "T": 32, "S": 1.0, "schedule": "trig", "init": "teacher", "surrogate": "teacher",
    "plan": "", "preset": None,
}
PARAM_KEYS = tuple(DEFAULTS)


@dataclass(frozen=True)
class Preset:
    label: str
    values: dict
    story: str


PRESETS: dict[str, Preset] = {
    "below": Preset("Below the transition", {"lam": 0.5, "T": 32, "S": 1.0},
                    "λ < 1: every plan overshoots P, the smallest value wins — sequential BOOT."),
    "at1": Preset("At λ = 1", {"lam": 1.0, "T": 32, "S": 1.0},
                  "λ = 1: all teacher steps are equal (A*_t = cos(π/2T)); BOOT is still optimal."),
    "hybrid": Preset("Hybrid band", {"lam": 1.3, "T": 32, "S": 1.0},
                     "λ_B(T) < λ < λ_V: the optimum is a hybrid plan between BOOT and vanilla."),
    "above": Preset("Far above", {"lam": 5.0, "T": 32, "S": 1.0},
                    "λ ≫ 1: every plan undershoots P, the largest value wins — vanilla."),
}
PRESET_BY_LABEL = {p.label: code for code, p in PRESETS.items()}

# ---- URL sanitising (before any widget is created) ----------------------------------------------


def _nearest_lam(x: float) -> float:
    return min(LAM_GRID, key=lambda g: abs(math.log(g) - math.log(x)))


def _check_lam(raw: str) -> tuple[float, str | None]:
    x = float(raw)
    if not math.isfinite(x) or not LAM_MIN <= x <= LAM_MAX:
        raise ValueError(f"must be a number in [{LAM_MIN:g}, {LAM_MAX:g}], got {raw!r}")
    snapped = _nearest_lam(x)
    note = None if math.isclose(snapped, x, rel_tol=1e-9) else f"λ = {x:g} is shown as the nearest " \
        f"grid value {snapped:g}"
    return snapped, note


def _check_T(raw: str) -> tuple[int, None]:
    if not raw.strip().lstrip("+").isdigit():
        raise ValueError(f"must be an integer in [{T_MIN}, {T_MAX}], got {raw!r}")
    T = int(raw)
    if not T_MIN <= T <= T_MAX:
        raise ValueError(f"must be an integer in [{T_MIN}, {T_MAX}], got {T}")
    return T, None


def _check_S(raw: str) -> tuple[float, str | None]:
    x = float(raw)
    if not math.isfinite(x) or not S_MIN <= x <= S_MAX:
        raise ValueError(f"must be a number in [{S_MIN:g}, {S_MAX:g}], got {raw!r}")
    snapped = round(round(x / S_STEP) * S_STEP, 2)
    snapped = min(max(snapped, S_MIN), S_MAX)
    return snapped, None if math.isclose(snapped, x) else f"S = {x:g} is shown as {snapped:g}"


def _choice(options: tuple[str, ...]):
    def check(raw: str) -> tuple[str, None]:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return raw, None
    return check


def _check_preset(raw: str) -> tuple[str, None]:
    code = raw if raw in PRESETS else PRESET_BY_LABEL.get(raw)
    if code is None:
        raise ValueError(f"must be one of {', '.join(PRESETS)}, got {raw!r}")
    return PRESETS[code].label, None


def _check_plan(raw: str) -> tuple[str, None]:
    if len(raw) > PLAN_URL_MAX:
        raise ValueError(f"is too long ({len(raw)} characters, max {PLAN_URL_MAX})")
    if raw.strip():
        plans.parse(raw)  # raises ValueError("position N: ...")
    return raw, None


_CHECKS = {"lam": _check_lam, "T": _check_T, "S": _check_S, "schedule": _choice(SCHEDULES),
           "init": _choice(INITS), "surrogate": _choice(SURROGATES), "plan": _check_plan,
           "preset": _check_preset}


def sanitize_url() -> None:
    """Once per session: validate the URL's parameters and seed session_state with good values.

    Bad values → a message in ``st.session_state["_url_warnings"]`` (shown by ``show_url_warnings``)
    and the default. A preset in the URL fills the parameters the URL does not give explicitly.
    """
    if st.session_state.get("_url_checked"):
        return
    st.session_state["_url_checked"] = True
    warnings: list[str] = []
    given: dict[str, object] = {}
    for key in PARAM_KEYS:
        raw = st.query_params.get(key)
        if raw is None:
            continue
        try:
            value, note = _CHECKS[key](str(raw))
        except (ValueError, TypeError, OverflowError) as exc:
            default = DEFAULTS[key]
            shown = "empty" if default in ("", None) else repr(default)
            warnings.append(f"URL parameter `{key}` {exc} — using the default ({shown}).")
            st.session_state[f"_rejected_{key}"] = str(raw)
            continue
        if note:
            warnings.append(f"URL parameter `{key}`: {note}.")
        given[key] = value
    if "preset" in given:  # a preset fills what the URL does not say explicitly
        for key, value in PRESETS[PRESET_BY_LABEL[given["preset"]]].values.items():
            given.setdefault(key, value)
    if given.get("plan"):
        plan_T = plans.parse(given["plan"]).T
        if "T" not in given and T_MIN <= plan_T <= T_MAX:
            given["T"] = plan_T
        elif given.get("T", DEFAULTS["T"]) != plan_T:
            warnings.append(f"URL parameter `plan` is for T = {plan_T} but T = "
                            f"{given.get('T', DEFAULTS['T'])} — using the default (empty).")
            st.session_state["_rejected_plan"] = given.pop("plan")
    for key in PARAM_KEYS:
        st.session_state[key] = given.get(key, DEFAULTS[key])
    st.session_state["_url_warnings"] = warnings


def show_url_warnings() -> None:
    for message in st.session_state.get("_url_warnings", []):
        st.warning(message, icon=WARN)


# ---- callbacks (run before the script, so they may write widget keys) ---------------------------


def apply_preset(code: str | None = None) -> None:
    """Preset buttons / the bound ``preset`` control: write the preset's values."""
    label = st.session_state.get("preset") if code is None else PRESETS[code].label
    if label is None or label not in PRESET_BY_LABEL:
        return
    for key, value in PRESETS[PRESET_BY_LABEL[label]].values.items():
        st.session_state[key] = value
    st.session_state["preset"] = label


def reset() -> None:
    for key in PARAM_KEYS:
        st.session_state[key] = DEFAULTS[key]
    st.session_state["_url_warnings"] = []


def _clear_preset() -> None:
    label = st.session_state.get("preset")
    if label in PRESET_BY_LABEL:
        values = PRESETS[PRESET_BY_LABEL[label]].values
        if any(st.session_state.get(k) != v for k, v in values.items()):
            st.session_state["preset"] = None


# ---- widgets ------------------------------------------------------------------------------------


def fmt_lam(x: float) -> str:
    return f"{x:g}"


SHARED_WIDGETS = ("preset", "lam", "T", "S", "schedule", "init", "surrogate")  # in display order


def _preset_widget() -> None:
    st.segmented_control("Preset", list(PRESET_BY_LABEL), key="preset", bind="query-params",
                         on_change=apply_preset, persist_state="session",
                         help="Story-telling settings; Reset restores defaults.")


def _lam_widget() -> None:
    st.select_slider("λ (data variance, log scale)", options=LAM_GRID, key="lam", format_func=fmt_lam,
                     bind="query-params", on_change=_clear_preset, persist_state="session",
                     help="Eigenvalue λ of the data covariance. The optimal plan flips at λ ≈ 1.")


def _T_widget() -> None:
    st.slider("T (teacher steps)", T_MIN, T_MAX, key="T", step=1, bind="query-params",
              on_change=_clear_preset, persist_state="session")


def _S_widget() -> None:
    st.slider("S (shrinkage budget κτ)", S_MIN, S_MAX, key="S", step=S_STEP, bind="query-params",
              on_change=_clear_preset, persist_state="session", help="γ_s = exp(−S r_s²); each student "
              "learns ρ = 1 − γ of its target (THEORY §2).")


def _schedule_widget() -> None:
    st.selectbox("schedule", SCHEDULES, key="schedule", bind="query-params", on_change=_clear_preset,
                 persist_state="session", help=" · ".join(f"{k}: {v}" for k, v in SCHEDULE_LABELS.items()))


def _init_widget() -> None:
    st.selectbox("init (student initialisation)", INITS, key="init", bind="query-params",
                 on_change=_clear_preset, persist_state="session", help=" · ".join(INIT_LABELS.values()))


def _surrogate_widget() -> None:
    st.selectbox("surrogate (target of the one-step student)", SURROGATES, key="surrogate",
                 bind="query-params", on_change=_clear_preset, persist_state="session",
                 help=" · ".join(SURROGATE_LABELS.values()))


PARAMETER_WIDGETS = {"preset": _preset_widget, "lam": _lam_widget, "T": _T_widget, "S": _S_widget,
                     "schedule": _schedule_widget, "init": _init_widget, "surrogate": _surrogate_widget}


def parameter_widget(key: str) -> None:
    """One shared, URL-bound control (``key`` in SHARED_WIDGETS) in the current container."""
    PARAMETER_WIDGETS[key]()


def parameter_widgets(keys: tuple[str, ...] = SHARED_WIDGETS) -> None:
    """The shared controls in the current container: ``keys`` (display order kept) and, if any is
    shown, Reset (after the presets)."""
    for key in SHARED_WIDGETS:
        if key in keys:
            parameter_widget(key)
        if key == "preset" and keys:
            st.button("Reset", key="reset", on_click=reset, icon=":material/restart_alt:")


@dataclass(frozen=True)
class Params:
    lam: float
    T: int
    S: float
    schedule: str
    init: str
    surrogate: str

    @property
    def key(self) -> tuple:
        return (self.T, self.S, self.schedule, self.init, self.surrogate)

    @property
    def setting(self) -> Setting:
        return Setting(self.T, self.S, self.schedule, self.init, self.surrogate)

    def with_T(self, T: int) -> Params:
        return Params(self.lam, T, self.S, self.schedule, self.init, self.surrogate)


def params() -> Params:
    s = st.session_state
    get = lambda k: s[k] if s.get(k) is not None else DEFAULTS[k]  # noqa: E731
    return Params(float(get("lam")), int(get("T")), float(get("S")), str(get("schedule")),
                  str(get("init")), str(get("surrogate")))


def model_choices_text(p: Params) -> str:
    return (f"schedule **{SCHEDULE_LABELS[p.schedule]}** · init **{INIT_LABELS[p.init]}** · surrogate "
            f"**{SURROGATE_LABELS[p.surrogate]}** · S = **{p.S:g}** · T = **{p.T}** · λ = **{p.lam:g}**")


# ---- cached core calls (bounded) ----------------------------------------------------------------


def curve_lams(T: int) -> np.ndarray:
    """λ grid for the strategy curves: 61 log points (only those in (1, λ_V) need a DP)."""
    return np.geomspace(LAM_MIN, LAM_MAX, 61)


PHASE_LAMS = np.geomspace(LAM_MIN, LAM_MAX, 41)
PHASE_TS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512)  # T = 384 would add ~1.3 s cold


IN_PROCESS_T_MAX = 256   # one DP up to here costs a few ms: computed in the server, above on a worker


@st.cache_data(max_entries=256, show_spinner=False)
def _optimal_here(key: tuple, lam: float) -> planner.OptimalPlan:
    return heavy_core.optimal(Setting(*key), lam)


def prefetch(*calls: tuple) -> None:
    """Submit heavy ``(fn, *args)`` calls to the backend without waiting, so a page's heavy results
    compute side by side on the workers while the page waits for the first of them."""
    with contextlib.suppress(ValueError):          # an unreachable scheduler: ``heavy`` says so
        for fn, *args in calls:
            backend().cached(fn, *args)


def home_calls(key: tuple, lam: float) -> list[tuple]:
    """The heavy calls of the home page for a setting (see ``prefetch``)."""
    S, schedule, init, surrogate = key[1:5]
    calls = [(heavy_core.thresholds, Setting(*key)), (sweep.compare, Setting(*key), curve_lams(key[0])),
             (heavy_core.phase, tuple(PHASE_LAMS.tolist()), PHASE_TS, S, schedule, init, surrogate)]
    if key[0] > IN_PROCESS_T_MAX:
        calls.insert(0, (heavy_core.optimal, Setting(*key), float(lam)))
    return calls


def optimal(key: tuple, lam: float) -> planner.OptimalPlan | None:
    """The DP-optimal plan (None while a large-T DP computes on the backend)."""
    if key[0] <= IN_PROCESS_T_MAX:
        return _optimal_here(key, lam)
    return heavy(heavy_core.optimal, Setting(*key), float(lam), label=f"Optimal plan at T = {key[0]}")


def compare(key: tuple, lams: tuple[float, ...]) -> pd.DataFrame | None:
    return heavy(sweep.compare, Setting(*key), np.asarray(lams), label=f"Strategies at T = {key[0]}")


def curves(key: tuple) -> pd.DataFrame | None:
    return heavy(sweep.compare, Setting(*key), curve_lams(key[0]),
                 label=f"Strategy curves at T = {key[0]}")


def thresholds(key: tuple) -> tuple[float, float] | None:
    return heavy(heavy_core.thresholds, Setting(*key), label=f"Thresholds λ_B(T), λ_V at T = {key[0]}")


def phase(S: float, schedule: str, init: str, surrogate: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    return heavy(heavy_core.phase, tuple(PHASE_LAMS.tolist()), PHASE_TS, S, schedule, init, surrogate,
                 label="λ × T phase diagram (computed once for everyone, then cached)")


def per_direction(key: tuple, lams: np.ndarray) -> tuple[list[str], dict[float, float]] | None:
    return heavy(heavy_core.per_direction, Setting(*key), np.asarray(lams, dtype=float),
                 label=f"Per-direction DP for {np.unique(lams).size} eigenvalues")


# Figures that do not depend on λ are cached as plain specs (keyed by the setting alone; the data
# arguments are not hashed); the page adds the λ marker and builds the figure without re-validation
# (figures.from_dict), which keeps a λ change cheap.
@st.cache_data(max_entries=64, show_spinner=False)
def curves_spec(key: tuple, _df: pd.DataFrame, lam_B: float, lam_V: float) -> dict:
    return figures.plain_spec(figures.strategy_curves(_df, None, lam_B, lam_V))


@st.cache_data(max_entries=16, show_spinner=False)
def phase_spec(S: float, schedule: str, init: str, surrogate: str, _ph: pd.DataFrame,
               _th: pd.DataFrame) -> dict:
    return figures.plain_spec(figures.phase_diagram(_ph, _th))


@st.cache_data(max_entries=128, show_spinner=False)
def span_values(key: tuple, plan_text: str, lam: float) -> dict:
    plan = plans.parse(plan_text, key[0])
    return {span: float(v[0]) for span, v in plans.evaluate_spans(plan, Setting(*key), [lam]).items()}


# The λ slider has LAM_GRID's 40 values, so every (setting, λ) view below is computed once for all
# sessions: a classroom moving λ mostly reads these caches.
@st.cache_data(max_entries=1024, show_spinner=False)
def plan_view(key: tuple, lam: float, plan_text: str, title: str) -> tuple[dict, pd.DataFrame]:
    """A plan's tree figure (plain spec) at one λ and the span values behind it."""
    values = span_values(key, plan_text, lam)
    tree_df = pd.DataFrame([{"e": e, "s": s, "kind": "teacher step" if s - e == 1 else "student",
                             "value": v} for (e, s), v in sorted(values.items())])
    return figures.plain_spec(figures.plan_tree(plans.parse(plan_text, key[0]), values, title)), tree_df


@st.cache_data(max_entries=1024, show_spinner=False)
def strategies_table(key: tuple, lam: float, dp_label: str, dp_value: float, dp_w2: float) -> pd.DataFrame:
    """Every named strategy's one-step value and W2 at one λ, next to the DP optimum."""
    setting = Setting(*key)
    rows = []
    for name, plan in plans.named_plans(setting.T).items():
        v = float(plan.evaluate(setting, [lam])[0])
        rows.append({"strategy": plans.STRATEGY_LABELS[name], "value": v,
                     "W2": float(setting.w2([v], [lam])[0])})
    rows.append({"strategy": f"DP optimum ({dp_label})", "value": dp_value, "W2": dp_w2})
    table = pd.DataFrame(rows)
    table["gap to DP"] = table["W2"] - dp_w2
    return table


ENUMERATE_T_MAX = value_sets.ALL_VALUES_T_MAX  # all plans' values: 103,049 plans at T = 10 (~10 ms)


@st.cache_data(max_entries=32, show_spinner="Evaluating every plan …")
def all_plan_values(key: tuple, lam: float) -> np.ndarray:
    return value_sets.all_plan_values(Setting(*key), lam)


# ---- output helpers -----------------------------------------------------------------------------


def plotly_config(name: str) -> dict:
    """Modebar export (PNG or SVG, chosen in the sidebar) at slide quality."""
    fmt = st.session_state.get("export_format") or "png"
    return {"displaylogo": False, "scrollZoom": False,
            "toImageButtonOptions": {"format": fmt, "scale": 2, "filename": f"opmerge_{name}"}}


def figure(fig: go.Figure | dict, name: str,
           data: pd.DataFrame | Callable[[], pd.DataFrame] | None = None, *,
           key: str | None = None) -> None:
    """Show a figure (or a trusted spec) with PNG/SVG export in its modebar and a CSV download of
    the data behind it."""
    if isinstance(fig, dict):
        fig = figures.from_dict(fig)
    st.plotly_chart(presentation.style_figure(fig), key=key or f"fig_{name}", width="stretch",
                    config=plotly_config(name))
    if data is not None:
        csv_download(data, name)


def csv_download(data: pd.DataFrame | Callable[[], pd.DataFrame], name: str) -> None:
    """A CSV download; ``data`` may be a function that builds the table (called on press only)."""
    def to_csv() -> str:   # a callable: the CSV is written only when the button is pressed
        return (data() if callable(data) else data).to_csv(index=False)

    st.download_button(f"CSV: {name}", to_csv, file_name=f"opmerge_{name}.csv",
                       mime="text/csv", key=f"csv_{name}", on_click="ignore", icon=":material/download:")


def _choice_args(p: Params) -> list[str]:
    out = ["--shrinkage", f"{p.S:g}"] if p.S != DEFAULTS["S"] else []
    for name in ("schedule", "init", "surrogate"):
        if getattr(p, name) != DEFAULTS[name]:
            out += [f"--{name}", getattr(p, name)]
    return out


def cli(command: str, p: Params, *, T: str | int | None = None, lam: str | float | None = None,
        extra: list[str] | None = None) -> str:
    """The exact ``opmerge`` command reproducing a view (non-default model choices spelled out)."""
    T = p.T if T is None else T
    lam = fmt_lam(p.lam) if lam is None else lam
    args = ["opmerge", command, *(extra or []), "--T", str(T), "--lam", str(lam), *_choice_args(p)]
    return " ".join(shlex.quote(a) for a in args)


def show_cli(command: str, label: str = "Reproduce with the CLI") -> None:
    st.caption(label)
    st.code(command, language="bash", wrap_lines=True)


def regime_label(regime: str) -> str:
    return planner.REGIME_LABELS[regime]


# ---- spectrum upload (bounded, never unpickles) -------------------------------------------------
SPECTRUM_BYTES_MAX = 1_000_000   # 1 MB
SPECTRUM_VALUES_MAX = 4096       # eigenvalues (= validation.D_MAX)


def parse_spectrum(name: str, data: bytes) -> np.ndarray:
    """Eigenvalues from an uploaded .csv/.txt (numbers separated by commas/whitespace/newlines) or
    .npy (numeric, ≤ 2-D, ``allow_pickle=False``). Raises ValueError with a one-line reason."""
    import io

    from opmerge_core.infra.validation import check_lam

    if len(data) > SPECTRUM_BYTES_MAX:
        raise ValueError(f"file is {len(data):,} bytes; at most {SPECTRUM_BYTES_MAX:,} are accepted")
    if not data:
        raise ValueError("file is empty")
    if name.lower().endswith(".npy"):
        _check_npy_header(io.BytesIO(data), len(data))
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"not a readable .npy array without pickles ({exc})") from None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("CSV must be UTF-8 text") from None
        tokens = [t for t in text.replace(",", " ").replace(";", " ").split() if t]
        try:
            arr = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise ValueError(f"CSV must contain only numbers; found {bad[:30]!r}") from None
    arr = np.asarray(arr, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("no eigenvalues found")
    if arr.size > SPECTRUM_VALUES_MAX:
        raise ValueError(f"{arr.size:,} eigenvalues; at most {SPECTRUM_VALUES_MAX:,} are accepted")
    return np.sort(check_lam(arr, name="eigenvalue"))[::-1].copy()


def _check_npy_header(stream, size: int) -> None:
    """Read only the .npy header: a numeric array of at most SPECTRUM_VALUES_MAX values whose data
    is really in the file — before numpy allocates anything (a 192-byte file may claim 2**40 values)."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(stream)
        shape, _fortran, dtype = (npy.read_array_header_1_0(stream) if version == (1, 0)
                                 else npy.read_array_header_2_0(stream))
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"not a readable .npy file ({exc})") from None
    if not np.issubdtype(dtype, np.number) or dtype.hasobject or len(shape) > 2:
        raise ValueError(f"expected a 1-D numeric array, got dtype {dtype} with shape {shape}")
    count = math.prod(shape)
    if count > SPECTRUM_VALUES_MAX:
        raise ValueError(f"the file declares {count:,} eigenvalues (shape {shape}); at most "
                         f"{SPECTRUM_VALUES_MAX:,} are accepted")
    if count * dtype.itemsize > size - stream.tell():
        raise ValueError(f"the file is truncated: its header declares shape {shape} of {dtype}")


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def shared(key: tuple, lams: tuple[float, ...]) -> SharedPlan | None:
    return heavy(shared_plan, Setting(*key), np.asarray(lams),
                 label=f"Shared plan for {len(lams)} directions (Pareto DP)")


# ---- the compute backend (compute.py): heavy results and training jobs ---------------------------
WAIT_S = float(os.environ.get("OPMERGE_WAIT_S", "0.3"))   # wait this long before showing a placeholder


def backend() -> compute.Backend:
    """The process-wide compute backend (a Dask cluster): every session's heavy work goes there."""
    return compute.default_backend()


def heavy(fn, *args, label: str):
    """``fn(*args)`` computed on the backend: the result, or None while it computes — then a progress
    placeholder is shown and the page reruns by itself when the result is ready. Identical requests
    of all sessions share one computation; results are cached for everyone."""
    try:
        job = backend().cached(fn, *args)
    except ValueError as exc:                     # e.g. an unreachable scheduler
        st.error(f"{label}: {exc}", icon=ERROR)
        return None
    if not job.done:
        job.wait(WAIT_S)
    if job.status == "done":
        return job.result
    if job.done:
        st.error(f"{label} failed: {job.error}", icon=ERROR)
        return None
    _pending(job.id, label)
    return None


@st.fragment(run_every=0.5)
def _pending(job_id: str, label: str) -> None:
    job = backend().get(job_id)
    if job is None or job.done:
        st.rerun()
    where = (f"queued (position {job.queue_position})" if job.status == "queued" else
             f"computing on the cluster, {job.elapsed:.0f} s")
    st.progress(min(max(job.progress, 0.0), 1.0), text=f":material/hourglass_top: {label} — {where} …")


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Once per server process: start the compute backend in the background, so the cluster is up
    by the time the first heavy request arrives, load the compiled DP kernels (the in-process DPs of
    every rerun use them) and import torch (the CelebA and SFD pages decode faces with the VAE), so no
    student's rerun waits behind those imports."""
    def start() -> None:
        dp.load_kernels(warm=True)
        compute.default_backend()
        import opmerge_core.latent.latents  # noqa: F401  torch: importing it later holds the GIL for ~1.6 s

    thread = threading.Thread(target=start, name="opmerge-warm-up", daemon=True)
    thread.start()
    return thread


def session_owner() -> str:
    """One id per browser session: its jobs are leased to it and cancelled when it goes away."""
    return st.session_state.setdefault("job_owner", uuid.uuid4().hex)


@st.fragment(run_every=30)
def keep_jobs_alive() -> None:
    """Renew this session's job lease from every page (closing the tab stops the renewals)."""
    backend().touch(session_owner())
