"""The URL parameters of every page: names, defaults and checks — without Streamlit.

Every teaching parameter of the dashboard is a keyed widget bound to the URL (``bind="query-params"``,
the key is the parameter's name). This module says which parameters each page reads and checks a raw
URL value the way the page does: ``check(raw) -> (value, note)`` returns the widget's value (and a
note when the value was snapped onto the widget's grid) or raises ``ValueError`` with what is allowed.
The pages use these checks before their widgets exist (``params.sanitize_url``,
``params.sanitize_page``) and a lesson's step is validated by the same checks (``lessons``), so the
CLI can validate a lesson without importing Streamlit. Option tables that live in modules importing
torch (SFD algorithms, teachers) are read lazily, when a value of theirs is checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opmerge_core.basics.validation import check_lam, check_S, check_T
from opmerge_core.theory import plans
from opmerge_core.theory.schedules import SCHEDULES
from opmerge_core.theory.setting import SURROGATES
from opmerge_core.theory.shrinkage import INITS
from opmerge_core.training.graph import INPUTS

# ---- the shared theory parameters (the sidebar) -------------------------------------------------
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

Check = Callable[[str], tuple[object, "str | None"]]


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


# ---- check builders for the pages' own widgets ---------------------------------------------------
Options = Sequence[object] | Callable[[], Sequence[object]]
Labels = Mapping[object, str] | Callable[[], Mapping[object, str]]      # option -> the label it shows


def _options(options: Options) -> Sequence[object]:
    return options() if callable(options) else options


def _labels(labels: Labels | None) -> Mapping[str, str]:
    return (labels() if callable(labels) else labels) or {}


def _pick(raw: str, allowed: Sequence[object], labels: Labels | None, name: str) -> object:
    """The option ``raw`` names: the option itself (a number also by value: 1 = 1.0), or its label."""
    for option in allowed:
        if raw == str(option):
            return option
    if any(isinstance(o, int | float) and not isinstance(o, bool) for o in allowed):
        try:
            x = float(raw)
        except ValueError:
            x = math.nan
        for option in allowed:
            if isinstance(option, int | float) and math.isclose(x, option, rel_tol=1e-12):
                return option
    by_label = {str(v): k for k, v in _labels(labels).items()}
    if raw in by_label:
        return by_label[raw]
    raise ValueError(f"unknown {name} {raw!r}; choose one of: {', '.join(map(str, allowed))}")


def choice(options: Options, labels: Labels | None = None, name: str = "value") -> Check:
    """One of ``options`` (a tuple, or a function giving it: lazy imports). A selection widget bound
    to the URL writes its *label* there (``format_func``), so a label is accepted too and read as its
    option; a number matches by value (``1`` is the option ``1.0``)."""
    def check(raw: str) -> tuple[object, None]:
        return _pick(raw, _options(options), labels, name), None
    return check


def choices(options: Options, labels: Labels | None = None, name: str = "value",
            most: int | None = None) -> Check:
    """Several of ``options`` (a multiselect: ``?k=a&k=b`` in the URL, a TOML array in a lesson), each
    read as ``choice`` reads it, in the order given, repeats dropped; an empty list is allowed."""
    def check(raw: str | Sequence[str]) -> tuple[list, None]:
        allowed = _options(options)
        items = [raw] if isinstance(raw, str) else list(raw)
        if len(items) > (most or len(allowed)):
            raise ValueError(f"at most {most or len(allowed)} values, got {len(items)}")
        picked = [_pick(str(item), allowed, labels, name) for item in items if str(item) != ""]
        return list(dict.fromkeys(picked)), None
    return check


def integer(lo: int, hi: int) -> Check:
    def check(raw: str) -> tuple[int, None]:
        text = raw.strip().lstrip("+")
        if not (text.isascii() and text.isdigit()) or not lo <= int(text) <= hi:
            raise ValueError(f"must be an integer in [{lo}, {hi}], got {raw!r}")
        return int(text), None
    return check


def number(lo: float, hi: float, step: float | None = None) -> Check:
    """A finite number in [lo, hi] (snapped to ``step`` with a note)."""
    def check(raw: str) -> tuple[float, str | None]:
        x = float(raw)
        if not math.isfinite(x) or not lo <= x <= hi:
            raise ValueError(f"must be a number in [{lo:g}, {hi:g}], got {raw!r}")
        if step is None:
            return x, None
        snapped = min(max(round(round((x - lo) / step) * step + lo, 10), lo), hi)
        return snapped, None if math.isclose(snapped, x) else f"{x:g} is shown as {snapped:g}"
    return check


def flag(raw: str) -> tuple[bool, None]:
    """A toggle: true/false (also 1/0, yes/no, on/off)."""
    value = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}.get(raw.strip().lower())
    if value is None:
        raise ValueError(f"must be true or false, got {raw!r}")
    return value, None


@dataclass(frozen=True)
class Param:
    """One URL parameter: the value its widget shows when the URL does not give it, and its check.
    ``multi``: a multiselect's list of values (repeated in the URL, ``?k=a&k=b``; an array in a lesson),
    which its widget writes as ``label(value)`` for each value (its ``format_func``)."""

    default: object
    check: Check
    multi: bool = False
    label: Callable[[object], str] = str


THEORY: dict[str, Param] = {
    "lam": Param(DEFAULTS["lam"], _check_lam), "T": Param(DEFAULTS["T"], _check_T),
    "S": Param(DEFAULTS["S"], _check_S),
    "schedule": Param(DEFAULTS["schedule"], choice(SCHEDULES, name="schedule")),
    "init": Param(DEFAULTS["init"], choice(INITS, name="init")),
    "surrogate": Param(DEFAULTS["surrogate"], choice(SURROGATES, name="surrogate")),
    "plan": Param(DEFAULTS["plan"], _check_plan), "preset": Param(DEFAULTS["preset"], _check_preset),
}
CHECKS = {key: p.check for key, p in THEORY.items()}

THEORY_WIDGETS = ("preset", "lam", "T", "S", "schedule", "init", "surrogate")   # in display order
# url path of a page -> the shared theory parameters that act on it (order: THEORY_WIDGETS)
PAGE_CONTROLS: dict[str, tuple[str, ...]] = {
    "phase": THEORY_WIDGETS, "operators": THEORY_WIDGETS, "playground": THEORY_WIDGETS,
    "spectrum": THEORY_WIDGETS, "about": THEORY_WIDGETS,
    "experiments": ("S", "schedule", "init", "surrogate"),       # each section has its own T / λ grid
    "celeba": ("T", "S", "schedule", "init", "surrogate"),       # λ is the latent spectrum
    "train": ("lam", "schedule", "init", "surrogate"),           # own T; S is set by η · steps
    "sfd": (), "mixtures": (), "practice": (),
}


# ---- the pages' own parameters (widget key = URL name) -------------------------------------------
def _algorithms() -> tuple[str, ...]:
    from opmerge_core.sfd.distill import ALGORITHMS
    return ALGORITHMS


def _algorithm_labels() -> dict[str, str]:
    from opmerge_core.sfd.distill import ALGORITHM_LABELS
    return ALGORITHM_LABELS


def _teachers() -> tuple[str, ...]:
    from opmerge_core.sfd.teachers import TEACHERS
    return TEACHERS


def _teacher_labels() -> dict[str, str]:
    from opmerge_core.sfd.teachers import TEACHER_LABELS
    return TEACHER_LABELS


def _solver_labels() -> dict[str, str]:
    from opmerge_core.sfd.solvers import SOLVER_LABELS
    return SOLVER_LABELS


def _mixture_presets() -> tuple[str, ...]:
    from opmerge_core.sfd.mixtures import PRESETS as MIXTURES
    return tuple(MIXTURES)


def _mixture_labels() -> dict[str, str]:
    from opmerge_core.sfd.mixtures import PRESET_LABELS
    return PRESET_LABELS


def _practice(name: str):
    """A constant of the experiment's spec (torch-free, read when a value is checked)."""
    from opmerge_core.practice import spec
    return getattr(spec, name)


SOLVER = choice(lambda: tuple(_solver_labels()), _solver_labels, name="solver")
MIXTURE = choice(_mixture_presets, _mixture_labels, name="mixture preset")
SFD_BUDGETS = (2048, 4096, 8192, 16384, 40_000, 80_000, 160_000)       # trajectories (SFD page)
MIXTURE_BUDGETS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)         # per student (Mixtures page)
PRACTICE_T = (4, 8, 16, 32)                                             # Theory vs practice page
PRACTICE_SEEDS = (3, 4, 5, 6)          # seeds 0 … n − 1: at least 3 (issue 19), mean ± sd over them
PRACTICE_BUDGETS = (0.25, 0.5, 1.0, 2.0, 4.0)                           # S per merge
PRACTICE_PLANS = ("vanilla", "boot", "progressive", "uniform", "dp")    # spec.DEFAULT_PLANS (a test)
# the core's defaults (distill.DEFAULT_BUDGET, MIXTURE_BUDGET, mixture_demo.MIXTURE_PAGE_BUDGET; a test
# keeps them equal) — written here so that checking a URL does not import torch
SFD_DEFAULT_BUDGET, SFD_MIXTURE_BUDGET, MIXTURE_PAGE_BUDGET = 80_000, 8192, 32_768

# Train page: its own T, the spectrum it trains on and the optimiser's settings
TRAIN_T = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
TRAIN_STEPS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
TRAIN_LRS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
TRAIN_BATCHES = (8, 16, 32, 64, 128, 256, 512, 1024, 4096)
TRAIN_SPECTRA = {"sidebar": "sidebar λ", "power-law": "power law", "two-level": "two-level"}
TRAIN_D_MIN, TRAIN_D_MAX = 2, 64
TRAIN_LABELS = {**plans.STRATEGY_LABELS, "dp": "DP optimum (at S_eff)", "custom": "typed plan"}


def train_label(strategy: str) -> str:
    return TRAIN_LABELS.get(strategy, strategy)


SEED_MAX = 2**31 - 1                                   # the trainer's seed bound
# the trainer's choices (a test keeps them equal to the core's), written here: the trainer imports torch
TRAIN_OPTIMIZERS, TRAIN_STUDENTS = ("sgd", "adam"), ("linear", "mlp")
TRAIN_STRATEGIES = (*plans.STRATEGIES, "dp")            # train_spec.STRATEGY_CHOICES
# CelebA page: the face grid
FACES_MIN, FACES_MAX = 2, 12
FACES_SEED_MAX = 10_000
GAIN_MIN, GAIN_MAX, GAIN_STEP = 1.0, 20.0, 1.0
# Spectrum page: where the eigenvalues come from (an upload's content is never in the URL)
SPECTRUM_SOURCES = {"power-law": "power law", "two-level": "two-level", "flat": "flat", "upload": "upload"}
SPECTRUM_D_MIN, SPECTRUM_D_MAX = 4, 256
HIGH_LAM_MIN, HIGH_LAM_MAX, HIGH_LAM_STEP = 0.05, 50.0, 0.01      # two-level: the high λ
EXPONENT_MIN, EXPONENT_MAX, EXPONENT_STEP = 0.1, 4.0, 0.1        # power law: λ_i = 10 · i^(−a)
# Paper experiments page: each section's own T
EXPERIMENT_T = (8, 16, 32, 64, 128, 256)
EXPERIMENT_T_C = (8, 16, 32, 64, 128)

OWN: dict[str, dict[str, Param]] = {
    "train": {
        "tr_strategies": Param(("boot", "vanilla", "dp"),
                               choices(TRAIN_STRATEGIES, TRAIN_LABELS, name="strategy"), multi=True,
                               label=train_label),
        "tr_plan": Param("", _check_plan),
        "tr_T": Param(32, choice(TRAIN_T, name="T")),
        "tr_spectrum": Param("sidebar", choice(tuple(TRAIN_SPECTRA), TRAIN_SPECTRA, name="spectrum")),
        "tr_d": Param(8, integer(TRAIN_D_MIN, TRAIN_D_MAX)),
        "tr_steps": Param(200, choice(TRAIN_STEPS, name="number of steps")),
        "tr_lr": Param(0.005, choice(TRAIN_LRS, name="learning rate")),
        "tr_batch": Param(256, choice(TRAIN_BATCHES, name="batch")),
        "tr_seed": Param(0, integer(0, SEED_MAX)),
        "tr_opt": Param("sgd", choice(TRAIN_OPTIMIZERS, name="optimiser")),
        "tr_student": Param("linear", choice(TRAIN_STUDENTS, name="student")),
        "tr_inputs": Param("forward", choice(INPUTS, name="inputs")),
    },
    "celeba": {
        "celeba_samples": Param(6, integer(FACES_MIN, FACES_MAX)),
        "celeba_seed": Param(0, integer(0, FACES_SEED_MAX)),
        "celeba_gain": Param(5.0, number(GAIN_MIN, GAIN_MAX, GAIN_STEP)),
        "celeba_columns": Param((), choices(range(1, FACES_MAX + 1), name="column"), multi=True),
    },
    "spectrum": {
        "sp_source": Param("power-law", choice(tuple(SPECTRUM_SOURCES), SPECTRUM_SOURCES, name="spectrum")),
        "sp_d": Param(32, integer(SPECTRUM_D_MIN, SPECTRUM_D_MAX)),
        "sp_hi": Param(5.0, number(HIGH_LAM_MIN, HIGH_LAM_MAX, HIGH_LAM_STEP)),
        "sp_a": Param(1.0, number(EXPONENT_MIN, EXPONENT_MAX, EXPONENT_STEP)),
    },
    "experiments": {
        "ex_T": Param(64, choice(EXPERIMENT_T, name="T")),
        "ex_strategy": Param("boot", choice(plans.STRATEGIES, plans.STRATEGY_LABELS, name="strategy")),
        "ex_T_c": Param(32, choice(EXPERIMENT_T_C, name="T")),
    },
    "sfd": {
        "sfd_teacher": Param("latent-mlp", choice(_teachers, _teacher_labels, name="teacher")),
        "sfd_preset": Param("ring8", MIXTURE),
        "sfd_algorithm": Param("sfd", choice(_algorithms, _algorithm_labels, name="algorithm")),
        "sfd_nfe": Param(3, integer(1, 5)),
        "sfd_solver": Param("dpmpp3m", SOLVER),
        "sfd_M": Param(3, integer(0, 8)),
        "sfd_afs": Param(False, flag),
        "sfd_budget": Param(SFD_DEFAULT_BUDGET, choice(SFD_BUDGETS, name="budget")),
    },
    "mixtures": {
        "mix_preset": Param("ring8", MIXTURE),
        "mix_nfe": Param(2, integer(1, 5)),
        "mix_solver": Param("dpmpp3m", SOLVER),
        "mix_M": Param(3, integer(0, 8)),
        "mix_afs": Param(False, flag),
        "mix_budget": Param(MIXTURE_PAGE_BUDGET, choice(MIXTURE_BUDGETS, name="budget")),
        "mix_seed": Param(0, integer(0, 10_000)),
    },
    "practice": {
        "tp_teacher": Param("latent-mlp", choice(lambda: _practice("TEACHERS"), name="teacher")),
        "tp_preset": Param("two-blobs", choice(_mixture_presets, name="mixture preset")),
        "tp_T": Param(16, choice(PRACTICE_T, name="T")),
        "tp_student": Param("linear", choice(lambda: _practice("STUDENTS"), name="student")),
        "tp_plans": Param(list(PRACTICE_PLANS), choices(lambda: _practice("PLAN_CHOICES"), name="plan"),
                          multi=True),
        "tp_seeds": Param(3, choice(PRACTICE_SEEDS, name="number of seeds")),
        "tp_S": Param(1.0, choice(PRACTICE_BUDGETS, name="budget S")),
    },
}


def page_params(page: str) -> dict[str, Param]:
    """Every URL parameter ``page`` (its url path) reads: the shared ones acting on it, the plan on
    the playground, and the page's own."""
    shared = {k: THEORY[k] for k in PAGE_CONTROLS[page]}
    if page == "playground":
        shared["plan"] = THEORY["plan"]
    return {**shared, **OWN.get(page, {})}


PAGES = tuple(PAGE_CONTROLS)
# read by the frame on every page, besides the pages' parameters: presentation mode (frame.py), the
# prediction toggle (predict.py), a lesson step (lesson_view.py), a room and its teacher key
# (room_view.py). Every parameter the app reads is here, in THEORY or in OWN (a test fuzzes them all).
FRAME = ("present", "predict", "lesson", "step", "room", "key")


def every_param() -> tuple[str, ...]:
    """Every URL parameter the app reads, on any page."""
    return (*FRAME, *THEORY, *(key for own in OWN.values() for key in own))


@dataclass
class Resolved:
    """Parameters read from the URL: the values (given or default, for every key asked), the problems
    as (key, message, is_a_note) — a rejected value falls back to the default, a note snapped it — and
    the rejected raw values."""

    values: dict[str, object]
    problems: list[tuple[str, str, bool]]
    rejected: dict[str, str]


# relations between two parameters of a page, checked once both are known
PLAN_T = {"plan": "T", "tr_plan": "tr_T"}               # a plan -> the T it must be for (it sets it)
AT_MOST = {"celeba_columns": "celeba_samples"}          # a list of numbers -> the parameter bounding them


def _raw_value(param: Param, text: object) -> str | list[str]:
    """A URL (or lesson) value as its check reads it: a list for a multiselect, else one string."""
    if param.multi:
        return [str(t) for t in text] if isinstance(text, list | tuple) else [str(text)]
    if isinstance(text, list | tuple):
        if len(text) != 1:
            raise ValueError(f"takes one value, got {len(text)}")
        text = text[0]
    return str(text)


def _plan_sets_T(plan_key: str, T_key: str, params: Mapping[str, Param], given: dict, out: Resolved) -> None:
    """A plan sets its T unless the URL gives T (a good or a rejected one) or the page does not offer
    that T; a plan for another T than the one shown is rejected."""
    plan_T = plans.parse(given[plan_key]).T
    if T_key not in given and T_key not in out.rejected:
        try:
            value, note = params[T_key].check(str(plan_T))
            if note is None:
                given[T_key] = value
        except ValueError:
            pass
    T = given.get(T_key, params[T_key].default)
    if T != plan_T:
        out.problems.append((plan_key, f"the plan is for T = {plan_T} but T = {T}", False))
        out.rejected[plan_key] = given.pop(plan_key)


def resolve(params: Mapping[str, Param], raw: Mapping[str, object]) -> Resolved:
    """Check the raw URL values of ``params`` (missing ones take their default). A theory preset fills
    the parameters the URL does not give; a plan sets T unless T is given (a plan for another T is
    rejected); a list bounded by another parameter (``AT_MOST``) must stay within it."""
    out = Resolved({}, [], {})
    given: dict[str, object] = {}
    for key, param in params.items():
        text = raw.get(key)
        if text is None:
            continue
        try:
            value, note = param.check(_raw_value(param, text))
        except (ValueError, TypeError, OverflowError) as exc:
            out.problems.append((key, str(exc), False))
            out.rejected[key] = str(text)
            continue
        if note:
            out.problems.append((key, note, True))
        given[key] = value
    if "preset" in given:  # a preset fills what the URL does not say explicitly
        for key, value in PRESETS[PRESET_BY_LABEL[given["preset"]]].values.items():
            if key in params:
                given.setdefault(key, value)
    for plan_key, T_key in PLAN_T.items():
        if given.get(plan_key) and T_key in params:
            _plan_sets_T(plan_key, T_key, params, given, out)
    for key, bound_key in AT_MOST.items():
        if key in given and bound_key in params:
            bound = given.get(bound_key, params[bound_key].default)
            beyond = [x for x in given[key] if x > bound]
            if beyond:
                out.problems.append((key, f"{beyond[0]} is more than {bound_key} = {bound}", False))
                out.rejected[key] = str(raw[key])
                given.pop(key)
    out.values = {key: given.get(key, list(p.default) if p.multi else p.default) for key, p in params.items()}
    return out


def check_page_params(page: str, raw: Mapping[str, str]) -> dict[str, object]:
    """The state a page shows for these URL parameters (a lesson step): every parameter of the page,
    given or default. Unknown page or parameter, a bad value, or a value the widget would show
    differently (off its grid) → ValueError naming the parameter."""
    if page not in PAGE_CONTROLS:
        raise ValueError(f"unknown page {page!r}; pages: {', '.join(PAGES)}")
    known = page_params(page)
    for key in raw:
        if key not in known:
            raise ValueError(f"unknown parameter `{key}` for page {page!r}; it reads: "
                             f"{', '.join(known) or 'none'}")
    resolved = resolve(known, raw)
    for key, message, is_note in resolved.problems:
        raise ValueError(f"parameter `{key}`: {message}" + (" (use a grid value)" if is_note else ""))
    return resolved.values
