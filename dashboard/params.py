"""The shared teaching parameters, bound to the URL: presets, URL checks, the widgets, ``Params``.

Every teaching parameter is a keyed widget bound to the URL (``bind="query-params"``): ``lam``, ``T``,
``S``, ``schedule``, ``init``, ``surrogate``, ``plan``, ``preset``. URL values are checked here, once per
session, *before* any widget exists, by the core's checks (``basics.validation``) with the sliders'
tighter bounds, then snapped to the sliders' grids: a bad value becomes a visible warning naming the
parameter and the default is used (never an exception). ``params()`` gives the state as λ, T and
the core's ``Model`` (everything but T).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import streamlit as st

from opmerge_core.theory.schedules import SCHEDULE_LABELS, SCHEDULES
from opmerge_core.theory.setting import SURROGATE_LABELS, SURROGATES, Model, Setting
from opmerge_core.theory.shrinkage import INIT_LABELS, INITS
from opmerge_dashboard import untrusted
from opmerge_dashboard.url_params import (  # noqa: F401  (re-exported: the pages import them from here)
    DEFAULTS,
    LAM_GRID,
    LAM_MAX,
    LAM_MIN,
    OWN,
    PARAM_KEYS,
    PLAN_URL_MAX,
    PRESET_BY_LABEL,
    PRESETS,
    S_MAX,
    S_MIN,
    S_STEP,
    T_MAX,
    T_MIN,
    THEORY,
    THEORY_WIDGETS,
    Param,
    Preset,
    resolve,
)

WARN, ERROR = ":material/warning:", ":material/error:"  # alert icons

# ---- URL sanitising (before any widget is created) ----------------------------------------------


def _seed(params: dict[str, Param], flag: str) -> None:
    """Once per session (per ``flag``): check the URL's values of ``params`` and seed session_state
    with the good ones (defaults for the rest). Bad values → a message in ``_url_warnings`` (shown by
    ``show_url_warnings``) and the default.

    On its first run a bound widget takes its value from the URL if *Streamlit* can read it, even over
    session_state (it would show ``T=3.5`` as 3, a slider value off its step as is, and keep only the
    labels of a multiselect's list that mixes codes and labels). So a value rejected or snapped here,
    or a list not written as its widget writes it, leaves the URL and the script reruns once, before
    any widget exists: the widget then shows what the check (and the warning) says."""
    if st.session_state.get(flag):
        return
    st.session_state[flag] = True
    raw = {key: st.query_params.get_all(key) if p.multi else st.query_params.get(key)
           for key, p in params.items() if key in st.query_params}
    resolved = resolve(params, raw)
    warnings = st.session_state.setdefault("_url_warnings", [])
    for key, message, is_note in resolved.problems:
        if is_note:
            warnings.append(f"URL parameter `{key}`: {untrusted.text(message)}.")
            continue
        default = list(params[key].default) if params[key].multi else params[key].default
        shown = "empty" if default in ("", None, []) else repr(default)
        warnings.append(f"URL parameter `{key}`: {untrusted.text(message)} — using the default "
                        f"({untrusted.text(shown)}).")
    for key, text in resolved.rejected.items():
        st.session_state[f"_rejected_{key}"] = text
    for key, value in resolved.values.items():
        st.session_state[key] = value
    corrected = {key for key, _, _ in resolved.problems if key in st.query_params}
    corrected |= {key for key, p in params.items() if p.multi and key in raw and key not in resolved.rejected
                  and raw[key] != [p.label(v) for v in resolved.values[key]]}
    for key in corrected:
        del st.query_params[key]
    if corrected:
        st.rerun()


def sanitize_url() -> None:
    """Once per session: the shared theory parameters from the URL (a preset in the URL fills the
    parameters the URL does not give explicitly)."""
    _seed(THEORY, "_url_checked")


def sanitize_page(page: str) -> None:
    """Once per session and page: the page's own URL parameters (``url_params.OWN``)."""
    if page in OWN:
        _seed(OWN[page], f"_url_checked_{page}")


BOUND = dict(bind="query-params", persist_state="session")      # a page's own control, in the URL
_OWN_PARAMS = {key: param for page in OWN.values() for key, param in page.items()}


def default(key: str) -> object:
    """A page's own URL parameter's default. Its widget is given it too: a bound widget drops its own
    default from the URL, so any other default would lose a value that equals it from the address
    (``?sfd_nfe=1`` would reload as the registry's NFE 3)."""
    param = _OWN_PARAMS[key]
    return list(param.default) if param.multi else param.default


def index(options: tuple, key: str) -> int:
    """The position of ``key``'s default among a selectbox's ``options`` (its ``index``)."""
    return list(options).index(default(key))


def keep_in_url(key: str, value: str) -> None:
    """``key=value`` in the URL, written only if it is not there yet: every write to st.query_params
    sends the browser a message, an unchanged value too (on every rerun of every session)."""
    if st.query_params.get(key) != value:
        st.query_params[key] = value


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


SHARED_WIDGETS = THEORY_WIDGETS  # in display order


def _preset_widget() -> None:
    st.segmented_control("Preset", list(PRESET_BY_LABEL), key="preset", bind="query-params",
                         on_change=apply_preset, persist_state="session",
                         help="Story-telling settings; Reset restores defaults.")
    label = st.session_state.get("preset")
    if label in PRESET_BY_LABEL:
        st.caption(PRESETS[PRESET_BY_LABEL[label]].story)     # what to notice in this preset


def _lam_widget() -> None:
    st.select_slider("λ (data variance, log scale)", options=LAM_GRID, value=DEFAULTS["lam"], key="lam",
                     format_func=fmt_lam, on_change=_clear_preset, **BOUND,
                     help="Eigenvalue λ of the data covariance. The optimal plan flips at λ ≈ 1.")


def _T_widget() -> None:
    st.slider("T (teacher steps)", T_MIN, T_MAX, DEFAULTS["T"], key="T", step=1, on_change=_clear_preset,
              **BOUND)


def _S_widget() -> None:
    st.slider("S (shrinkage budget κτ)", S_MIN, S_MAX, DEFAULTS["S"], key="S", step=S_STEP,
              on_change=_clear_preset, **BOUND, help="γ_s = exp(−S r_s²); each student learns ρ = 1 − γ of "
              "its target (THEORY §2).")


def _schedule_widget() -> None:
    st.selectbox("schedule", SCHEDULES, SCHEDULES.index(DEFAULTS["schedule"]), key="schedule",
                 on_change=_clear_preset, **BOUND,
                 help=" · ".join(f"{k}: {v}" for k, v in SCHEDULE_LABELS.items()))


def _init_widget() -> None:
    st.selectbox("init (student initialisation)", INITS, INITS.index(DEFAULTS["init"]), key="init",
                 on_change=_clear_preset, **BOUND, help=" · ".join(INIT_LABELS.values()))


def _surrogate_widget() -> None:
    st.selectbox("surrogate (target of the one-step student)", SURROGATES,
                 SURROGATES.index(DEFAULTS["surrogate"]), key="surrogate", on_change=_clear_preset, **BOUND,
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
        return _setting(self.model, self.T)


# One Model / Setting object per distinct value, shared by every rerun of every session: a page asks
# for ``p.setting`` many times per rerun, and each new object would be validated again (and
# recompute its schedule arrays).
@functools.lru_cache(maxsize=256)
def _model(S: float, schedule: str, init: str, surrogate: str) -> Model:
    return Model(S=S, schedule=schedule, init=init, surrogate=surrogate)


@functools.lru_cache(maxsize=1024)
def _setting(model: Model, T: int) -> Setting:
    return model.at(T)


def params() -> Params:
    s = st.session_state
    get = lambda k: s[k] if s.get(k) is not None else DEFAULTS[k]  # noqa: E731
    return Params(float(get("lam")), int(get("T")), _model(float(get("S")), str(get("schedule")),
                                                           str(get("init")), str(get("surrogate"))))


def model_choices_text(p: Params) -> str:
    m = p.model
    return (f"schedule **{SCHEDULE_LABELS[m.schedule]}** · init **{INIT_LABELS[m.init]}** · surrogate "
            f"**{SURROGATE_LABELS[m.surrogate]}** · S = **{m.S:g}** · T = **{p.T}** · λ = **{p.lam:g}**")
