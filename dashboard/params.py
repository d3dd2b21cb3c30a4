"""The shared teaching parameters, bound to the URL: presets, URL checks, the widgets, ``Params``.

Every teaching parameter is a keyed widget bound to the URL (``bind="query-params"``): ``lam``, ``T``,
``S``, ``schedule``, ``init``, ``surrogate``, ``plan``, ``preset``. URL values are checked here, once per
session, *before* any widget exists, by the core's checks (``basics.validation``) with the sliders'
tighter bounds, then snapped to the sliders' grids: a bad value becomes a visible warning naming the
parameter and the default is used (never an exception). ``params()`` gives the state as λ, T and
the core's ``Model`` (everything but T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from opmerge_core.basics.validation import check_choice, check_lam, check_S, check_T
from opmerge_core.theory import plans
from opmerge_core.theory.schedules import SCHEDULE_LABELS, SCHEDULES
from opmerge_core.theory.setting import SURROGATE_LABELS, SURROGATES, Model, Setting
from opmerge_core.theory.shrinkage import INIT_LABELS, INITS

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
    x = float(check_lam(raw, lo=LAM_MIN, hi=LAM_MAX)[0])
    snapped = _nearest_lam(x)
    note = None if math.isclose(snapped, x, rel_tol=1e-9) else f"λ = {x:g} is shown as the nearest " \
        f"grid value {snapped:g}"
    return snapped, note


def _check_T(raw: str) -> tuple[int, None]:
    return check_T(raw, lo=T_MIN, hi=T_MAX), None


def _check_S(raw: str) -> tuple[float, str | None]:
    x = check_S(raw, lo=S_MIN, hi=S_MAX)
    snapped = round(round(x / S_STEP) * S_STEP, 2)
    snapped = min(max(snapped, S_MIN), S_MAX)
    return snapped, None if math.isclose(snapped, x) else f"S = {x:g} is shown as {snapped:g}"


def _choice(options: tuple[str, ...], name: str):
    def check(raw: str) -> tuple[str, None]:
        return check_choice(raw, options, name), None
    return check


def _check_preset(raw: str) -> tuple[str, None]:
    code = raw if raw in PRESETS else PRESET_BY_LABEL.get(raw)
    if code is None:
        raise ValueError(f"unknown preset {raw!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[code].label, None


def _check_plan(raw: str) -> tuple[str, None]:
    if len(raw) > PLAN_URL_MAX:
        raise ValueError(f"plan is too long ({len(raw)} characters, max {PLAN_URL_MAX})")
    if raw.strip():
        plans.parse(raw)  # raises ValueError("position N: ...")
    return raw, None


_CHECKS = {"lam": _check_lam, "T": _check_T, "S": _check_S, "schedule": _choice(SCHEDULES, "schedule"),
           "init": _choice(INITS, "init"), "surrogate": _choice(SURROGATES, "surrogate"), "plan": _check_plan,
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
            warnings.append(f"URL parameter `{key}`: {exc} — using the default ({shown}).")
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
    label = st.session_state.get("preset")
    if label in PRESET_BY_LABEL:
        st.caption(PRESETS[PRESET_BY_LABEL[label]].story)     # what to notice in this preset


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
    """The shared parameters of a page: λ, T and the model (everything but T)."""

    lam: float
    T: int
    model: Model

    @property
    def setting(self) -> Setting:
        return self.model.at(self.T)


def params() -> Params:
    s = st.session_state
    get = lambda k: s[k] if s.get(k) is not None else DEFAULTS[k]  # noqa: E731
    return Params(float(get("lam")), int(get("T")), Model(S=float(get("S")), schedule=str(get("schedule")),
                                                          init=str(get("init")),
                                                          surrogate=str(get("surrogate"))))


def model_choices_text(p: Params) -> str:
    m = p.model
    return (f"schedule **{SCHEDULE_LABELS[m.schedule]}** · init **{INIT_LABELS[m.init]}** · surrogate "
            f"**{SURROGATE_LABELS[m.surrogate]}** · S = **{m.S:g}** · T = **{p.T}** · λ = **{p.lam:g}**")
