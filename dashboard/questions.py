"""Multiple-choice questions whose correct answer the engine computes at a step's state.

A lesson file names a question's *kind* and its parameters, never its answer (docs/LESSONS.md). Each
kind gives its choices and a default prompt (``prepare``, checked when the lesson loads, cheap and
without torch) and computes the answer — the correct choice, why (markdown, from the numbers) and the
figure that shows it (``solve``). A question's state is its step's state (every parameter of the step's
page) with the question's own parameters on top, checked by the same URL checks (``url_params``): a
question on the CelebA page may ask about λ = 3.

The home page's predict-then-reveal (``predict.py``) asks the ``optimal_strategy`` question at the
current state; its choices and its reason are the ones here. No Streamlit here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import plotly.graph_objects as go

from opmerge_core.theory import plans
from opmerge_core.theory.planner import OptimalPlan
from opmerge_core.theory.setting import Setting
from opmerge_dashboard import url_params
from opmerge_dashboard.url_params import THEORY, Check, choice, flag, integer, number

PROMPT_MAX = 400
IN_PROCESS_T_MAX = 256          # plan_views.IN_PROCESS_T_MAX: a larger T is answered on the compute backend


@dataclass(frozen=True)
class Spec:
    """What a question shows before the reveal."""

    prompt: str
    choices: tuple[tuple[str, str], ...]         # (key, label)


@dataclass(frozen=True)
class Answer:
    correct: str                                 # the key of the correct choice
    why: str                                     # markdown: the reason, from the numbers
    figure: go.Figure | None = None              # the figure that shows it


@dataclass(frozen=True)
class Kind:
    """A question kind: its parameters (name -> URL check), choices, default prompt and solver."""

    name: str
    summary: str                                 # one line for the docs and the CLI
    params: dict[str, Check]
    choices: Callable[[dict], tuple[tuple[str, str], ...]]
    prompt: Callable[[dict], str]
    solve: Callable[[dict], Answer]
    heavy: Callable[[dict], bool] = field(default=lambda state: False)


KINDS: dict[str, Kind] = {}


def _kind(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


# ---- state --------------------------------------------------------------------------------------
def question_state(kind: Kind, qparams: Mapping[str, str], state: Mapping[str, object]) -> dict:
    """The step's state with the question's own parameters on top (bad or unknown ones → ValueError).
    Theory parameters a page does not read take their defaults."""
    out = {key: p.default for key, p in THEORY.items()}
    out.update(state)
    for key, text in qparams.items():
        if key not in kind.params:
            raise ValueError(f"unknown parameter `{key}` for kind {kind.name!r}; it takes: "
                             f"{', '.join(kind.params) or 'none'}")
        try:
            value, note = kind.params[key](str(text))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"parameter `{key}` {exc}") from None
        if note:
            raise ValueError(f"parameter `{key}`: {note} (use a grid value)")
        out[key] = value
    return out


def prepare(kind: str, qparams: Mapping[str, str], state: Mapping[str, object], page: str = "") -> Spec:
    """Check a question of ``kind`` (its parameters) at a step's state: its prompt and choices."""
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; kinds: {', '.join(KINDS)}")
    k = KINDS[kind]
    s = question_state(k, qparams, state)
    return Spec(k.prompt(s), k.choices(s))


def solve(kind: str, qparams: Mapping[str, str], state: Mapping[str, object]) -> Answer:
    """The answer computed by the engine (may take a while for a large T: see ``is_heavy``)."""
    k = KINDS[kind]
    return k.solve(question_state(k, qparams, state))


def is_heavy(kind: str, qparams: Mapping[str, str], state: Mapping[str, object]) -> bool:
    """Whether the answer belongs on the compute backend (e.g. a DP at T > 256)."""
    k = KINDS[kind]
    return k.heavy(question_state(k, qparams, state))


# ---- theory: the optimal strategy ---------------------------------------------------------------
THEORY_PARAMS = {key: THEORY[key].check for key in ("lam", "T", "S", "schedule", "init", "surrogate")}
STRATEGY_CHOICES = {"boot": "Sequential BOOT — merge one teacher step at a time",
                    "vanilla": "Vanilla — one student for all T steps at once",
                    "hybrid": "Something in between — a hybrid plan"}
REGIME_ANSWER = {"boot": "boot", "vanilla": "vanilla", "hybrid": "hybrid", "mixed": "hybrid"}


def setting_of(state: Mapping[str, object]) -> Setting:
    return Setting(int(state["T"]), S=float(state["S"]), schedule=str(state["schedule"]),
                   init=str(state["init"]), surrogate=str(state["surrogate"]))


def why_optimal(best: OptimalPlan, lam: float, T: int, lam_B: float, lam_V: float) -> str:
    """The reason for the winner, from the numbers at this setting (THEORY §4)."""
    where = f"λ = {lam:g}, T = {T}"
    if best.regime == "boot":
        return (f"At {where} (λ ≤ λ_B(T) = {lam_B:.4g}) **every plan overshoots the target**: the smallest "
                f"one-step value over all plans is {best.lo:.5f} ≥ P = {best.P:.5f}. So the plan with the "
                "smallest value wins, and merging one step at a time shrinks the most, because "
                "f(xy) − f(x)f(y) = ρ(1−ρ)(1−x)(1−y) ≥ 0: **sequential BOOT**.")
    if best.regime == "vanilla":
        return (f"At {where} (λ ≥ λ_V = {lam_V:.4g}) **every plan undershoots the target**: the largest "
                f"one-step value over all plans is {best.hi:.5f} ≤ P = {best.P:.5f}. So the plan with the "
                "largest value — the least shrinkage — wins: train once on all steps, **vanilla**.")
    if best.regime == "mixed":
        return (f"At {where} some plans overshoot P = {best.P:.5f} and some undershoot it (values from "
                f"{best.lo:.5f} to {best.hi:.5f}): the optimum is the plan landing closest to P, neither "
                "extreme — a thin band just above λ = 1.")
    return (f"At {where}, between λ_B(T) = {lam_B:.4g} and λ_V = {lam_V:.4g}, neither extreme is "
            f"best: the optimum (value {best.value:.5f}, target P = {best.P:.5f}) mixes BOOT-like chains "
            "inside a flatter tree, moving from BOOT towards vanilla as λ grows: a **hybrid**.")


def named_w2(setting: Setting, lam: float) -> dict[str, float]:
    """W2 of every named strategy at one λ."""
    out = {}
    for name, plan in plans.named_plans(setting.T).items():
        value = float(plan.evaluate(setting, [lam])[0])
        out[plans.STRATEGY_LABELS[name]] = float(setting.w2([value], [lam])[0])
    return out


def _optimal_answer(state: dict) -> Answer:
    from opmerge_core.theory.planner import optimal_at
    from opmerge_core.theory.thresholds import switch_points
    setting, lam = setting_of(state), float(state["lam"])
    best = optimal_at(setting, lam)
    lam_B, lam_V = switch_points(setting)
    bars = {**named_w2(setting, lam), f"DP optimum ({best.label})": best.w2}
    fig = _bars(bars, f"DP optimum ({best.label})", f"W2 of every strategy at λ = {lam:g}, T = {setting.T}")
    exact = "" if best.exact else (" (T is too large for the exact search in the mixed band: the best known "
                                   "plan, not proven optimal)")
    return Answer(REGIME_ANSWER[best.regime],
                  f"The optimum here is **{best.label}**{exact}. "
                  + why_optimal(best, lam, setting.T, lam_B, lam_V), fig)


def _bars(w2: Mapping[str, float], highlight: str, title: str) -> go.Figure:
    from opmerge_core.figures.theory import strategy_bars
    return strategy_bars(list(w2), list(w2.values()), highlight, title=title,
                         y_title="W2 (smaller is better)")


def _theory_heavy(state: dict) -> bool:
    return int(state["T"]) > IN_PROCESS_T_MAX


_kind(Kind(
    "optimal_strategy", "Which strategy does the DP find optimal at this λ, T, S …",
    THEORY_PARAMS,
    choices=lambda s: tuple(STRATEGY_CHOICES.items()),
    prompt=lambda s: f"At λ = {s['lam']:g} and T = {s['T']}, which strategy gives the smallest W2 error?",
    solve=_optimal_answer, heavy=_theory_heavy))


# ---- theory: which of two plans ------------------------------------------------------------------
def _plan_check(raw: str) -> tuple[str, None]:
    """A named strategy (boot, vanilla, …) or a plan in bracket notation."""
    if raw in plans.STRATEGIES:
        return raw, None
    if len(raw) > url_params.PLAN_URL_MAX:
        raise ValueError(f"is too long (max {url_params.PLAN_URL_MAX} characters)")
    plans.parse(raw)
    return raw, None


def _plan(text: str, T: int) -> plans.Plan:
    return plans.strategy(text, T) if text in plans.STRATEGIES else plans.parse(text, T)


def _plan_label(text: str) -> str:
    return plans.STRATEGY_LABELS.get(text, f"the plan {text}")


def _two_plans(s: dict) -> tuple[plans.Plan, plans.Plan]:
    if "a" not in s or "b" not in s:
        raise ValueError("needs the parameters `a` and `b` (a strategy name or a bracket plan)")
    a, b = _plan(s["a"], int(s["T"])), _plan(s["b"], int(s["T"]))
    if a.merges == b.merges:
        raise ValueError(f"`a` and `b` are the same plan at T = {s['T']}")
    return a, b


def _two_plans_choices(s: dict) -> tuple[tuple[str, str], ...]:
    _two_plans(s)                      # checked at load: both plans exist at this T and differ
    return (("a", f"A: {_plan_label(s['a'])}"), ("b", f"B: {_plan_label(s['b'])}"))


def _smaller_w2_answer(s: dict) -> Answer:
    setting, lam = setting_of(s), float(s["lam"])
    a, b = _two_plans(s)
    P = float(setting.target([lam])[0])
    values = {k: float(p.evaluate(setting, [lam])[0]) for k, p in (("a", a), ("b", b))}
    w2 = {k: float(setting.w2([v], [lam])[0]) for k, v in values.items()}
    win = min(w2, key=w2.get)
    lose = "b" if win == "a" else "a"
    label = {"a": _plan_label(s["a"]), "b": _plan_label(s["b"])}
    side = {k: "above" if v > P else "below" for k, v in values.items()}
    reason = (f"At λ = {lam:g}, T = {setting.T} the target is P = {P:.5f}. {label['a']} gives the one-step "
              f"value {values['a']:.5f} ({side['a']} P), {label['b']} gives {values['b']:.5f} "
              f"({side['b']} P). "
              f"W2 = r_T·|value − P|: **{label[win]}** {w2[win]:.4g} against {w2[lose]:.4g}.")
    if side["a"] == side["b"] == "above":
        reason += " Both overshoot P, so the plan that shrinks more — the smaller value — wins."
    elif side["a"] == side["b"] == "below":
        reason += " Both undershoot P, so the plan that shrinks less — the larger value — wins."
    fig = _bars({f"A: {label['a']}": w2["a"], f"B: {label['b']}": w2["b"]},
                f"{win.upper()}: {label[win]}", f"W2 of the two plans at λ = {lam:g}, T = {setting.T}")
    return Answer(win, reason, fig)


_kind(Kind(
    "smaller_w2", "Which of two plans (a, b: a strategy name or a bracket plan) has the smaller W2",
    {**THEORY_PARAMS, "a": _plan_check, "b": _plan_check},
    choices=_two_plans_choices,
    prompt=lambda s: f"At λ = {s['lam']:g} and T = {s['T']}, which plan lands closer to the teacher "
                     f"(smaller W2)?",
    solve=_smaller_w2_answer, heavy=_theory_heavy))


# ---- theory: the teacher's own shrinkage ----------------------------------------------------------
def _teacher_answer(s: dict) -> Answer:
    from opmerge_core.figures.operators import composite_vs_exact
    from opmerge_core.theory import operators
    setting, lam = setting_of(s), float(s["lam"])
    P, exact = float(setting.P([lam])[0]), float(setting.exact([lam])[0])
    ratio = P / exact
    correct = "exact" if math.isclose(ratio, 1.0, rel_tol=1e-9) else "less" if ratio < 1 else "more"
    geo = operators.geometry(setting.alpha, setting.sigma, [lam])
    why = (f"At λ = {lam:g}, T = {setting.T}: $P = \\prod_t A^*_t$ = {P:.5f} and the exact flow map "
           f"$r_0/r_T$ = {exact:.5f}, so $P/(r_0/r_T)$ = {ratio:.4f}. Each DDIM step is a projection "
           "($\\cos\\Delta\\theta_t \\le 1$) followed by the exact rescaling $r_{t-1}/r_t$, so "
           "$P = (r_0/r_T)\\prod_t \\cos\\Delta\\theta_t \\le r_0/r_T$ (Prop. 3.2): "
           "the teacher itself shrinks.")
    return Answer(correct, why, composite_vs_exact(geo.A_star[:, 0], geo.r[:, 0]))


_kind(Kind(
    "teacher_shrinkage", "Is the teacher composite P below, at or above the exact flow map r₀/r_T",
    THEORY_PARAMS,
    choices=lambda s: (("less", "P < r₀/r_T: the teacher shrinks the signal"),
                       ("exact", "P = r₀/r_T: the teacher is exact"),
                       ("more", "P > r₀/r_T: the teacher amplifies it")),
    prompt=lambda s: f"With T = {s['T']} DDIM steps at λ = {s['lam']:g}, how does the teacher's one-step "
                     "composite P compare with the exact flow map r₀/r_T?",
    solve=_teacher_answer))


# ---- SFD: the shipped reference run ----------------------------------------------------------------
SFD_PARAMS = {"nfe": integer(1, 5), "teacher": choice(("latent-mlp", "latent-gmm"))}


def _reference_runs(s: dict) -> dict[str, dict]:
    """The shipped reference runs at this NFE by algorithm (assets/reference_sfd.json)."""
    from opmerge_core.sfd import reference
    ref = reference.load_sfd()
    if ref is None:
        raise ValueError("the shipped SFD reference run (assets/reference_sfd.json) is missing")
    nfe, teacher = int(s.get("nfe", s.get("sfd_nfe", 3))), s.get("teacher", "latent-mlp")
    runs = {r["params"]["algorithm"]: r for r in ref.runs
            if r.get("params", {}).get("nfe") == nfe and r["params"].get("teacher") == teacher
            and not r["params"].get("afs")}
    if not runs:
        raise ValueError(f"the shipped reference run has no run of teacher {teacher} at NFE {nfe}")
    return runs


def _pm(m: Mapping[str, float], key: str) -> str:
    sd = m.get(f"{key}_sd")
    return f"{m[key]:.2f}" + (f" ± {sd:.2f}" if sd is not None else "")


def _apart(m1: Mapping, k1: str, m2: Mapping, k2: str) -> float:
    """How many combined standard deviations separate two latent FDs (positive: the second is larger)."""
    sd = math.hypot(m1.get(f"{k1}_sd") or 0.0, m2.get(f"{k2}_sd") or 0.0)
    return (m2[k2] - m1[k1]) / sd if sd > 0 else math.copysign(math.inf, m2[k2] - m1[k1])


def _fd_bars(runs: dict[str, dict], title: str) -> go.Figure:
    any_run = next(iter(runs.values()))["metrics"]
    bars = {f"teacher ({any_run.get('teacher_nfe', '?')} NFE)": (any_run["latent_fd_teacher"],
                                                                any_run.get("latent_fd_teacher_sd")),
            f"plain solver (NFE {any_run.get('nfe_solver')})": (any_run["latent_fd_solver"],
                                                                any_run.get("latent_fd_solver_sd"))}
    names = {"sfd": "SFD student", "alg1": "Algorithm 1 student", "sfd-v": "SFD-v student"}
    for alg, run in runs.items():
        bars[names.get(alg, alg)] = (run["metrics"]["latent_fd"], run["metrics"].get("latent_fd_sd"))
    bars["floor (exact samples)"] = (any_run["latent_fd_floor"], any_run.get("latent_fd_floor_sd"))
    fig = go.Figure(go.Bar(x=list(bars), y=[v for v, _ in bars.values()],
                           error_y=dict(type="data", array=[sd or 0 for _, sd in bars.values()]),
                           text=[f"{v:.2f}" for v, _ in bars.values()], textposition="outside",
                           marker_color=["#009E73", "#D55E00", "#0072B2", "#56B4E9", "#999"][:len(bars)]))
    fig.update_yaxes(title="latent FD (lower is better)", type="log")
    fig.update_layout(title=title, showlegend=False, height=420, margin=dict(t=60, b=40))
    return fig


def _sfd_beats_answer(s: dict) -> Answer:
    runs = _reference_runs(s)
    alg = "sfd" if "sfd" in runs else next(iter(runs))
    m = runs[alg]["metrics"]
    z = _apart(m, "latent_fd", m, "latent_fd_solver")
    yes = z > 2
    why = (f"In the shipped reference run at NFE {m.get('nfe_student', s.get('nfe'))}, the SFD "
           f"student scores a "
           f"latent FD of **{_pm(m, 'latent_fd')}** and the plain solver at the same NFE (DPM-Solver++(3M), "
           f"no training) **{_pm(m, 'latent_fd_solver')}** — the teacher at {m.get('teacher_nfe')} NFE "
           f"scores {_pm(m, 'latent_fd_teacher')}, the floor of exact samples {_pm(m, 'latent_fd_floor')}. ")
    why += (f"The gap is {z:.0f} standard deviations: a few minutes of fine-tuning "
            f"({m.get('finetune_seconds', 0):.0f} s on a CPU) buys most of the teacher's quality at "
            f"{m.get('nfe_student', '')} NFE." if yes else
            "The difference is within the estimator's noise: no clear win here.")
    return Answer("yes" if yes else "no", why, _fd_bars(runs, "Latent FD in the shipped reference run"))


_kind(Kind(
    "sfd_beats_solver", "Does the SFD student beat the plain solver at this NFE in the shipped reference run",
    SFD_PARAMS,
    choices=lambda s: (("yes", "Yes: the student is clearly better"),
                       ("no", "No: the plain solver is as good or better")),
    prompt=lambda s: f"At NFE {s.get('nfe', s.get('sfd_nfe', 3))}, does the SFD student beat the plain "
                     "solver (same NFE, no training) in the shipped reference run?",
    solve=_sfd_beats_answer))


def _sfd_vs_alg1_answer(s: dict) -> Answer:
    runs = _reference_runs(s)
    if not {"sfd", "alg1"} <= set(runs):
        raise ValueError("the shipped reference run needs both an SFD and an Algorithm 1 run at this NFE")
    a, b = runs["sfd"]["metrics"], runs["alg1"]["metrics"]
    z = _apart(a, "latent_fd", b, "latent_fd")          # > 0: Algorithm 1 is worse
    correct = "sfd" if z > 2 else "alg1" if z < -2 else "noise"
    why = (f"SFD (Algorithm 2) {_pm(a, 'latent_fd')} against Algorithm 1 {_pm(b, 'latent_fd')} "
           f"(latent FD, mean ± sd "
           f"over {len(a.get('eval_seeds', [0]))} evaluation seeds): the difference is {abs(z):.1f} combined "
           "standard deviations. ")
    why += {"sfd": "Training the student from its own state (Algorithm 2) clearly pays off here.",
            "alg1": "Here the local Algorithm 1 is clearly better.",
            "noise": "That is within the estimator's noise: at this NFE and budget both students "
            "end up about "
                     "as good, and both are far better than the plain solver — the big win is fine-tuning at "
                     "the sampling timestamps at all."}[correct]
    return Answer(correct, why, _fd_bars(runs, "SFD vs Algorithm 1 (shipped reference run)"))


_kind(Kind(
    "sfd_vs_alg1", "In the shipped reference run, is SFD (Algorithm 2) better than Algorithm 1, or "
    "within noise",
    SFD_PARAMS,
    choices=lambda s: (("sfd", "SFD (Algorithm 2) is clearly better"),
                       ("alg1", "Algorithm 1 is clearly better"),
                       ("noise", "Neither: the difference is within the estimator's noise")),
    prompt=lambda s: f"At NFE {s.get('nfe', s.get('sfd_nfe', 3))}, which student is closer to the "
                     f"data in the "
                     "shipped reference run: SFD (Algorithm 2) or Algorithm 1?",
    solve=_sfd_vs_alg1_answer))


# ---- SFD: the analytical first step ----------------------------------------------------------------
AFS_BANDS = (("negligible", 1e-3), ("noticeable", 0.1))


def _afs_error(lam: float, t: float) -> float:
    """Relative error of the AFS direction d = x/√(1+t²) against the exact direction t x/(λ + t²) of
    N(0, λ) data at time t (SFD.md "Analytical first step")."""
    from opmerge_core.sfd import solvers
    exact_x0 = solvers.gaussian_denoiser(lam)(1.0, t)
    afs_x0 = solvers.afs_denoised(1.0, t)
    return abs((1.0 - afs_x0) / (1.0 - exact_x0) - 1.0)


def _afs_answer(s: dict) -> Answer:
    lam, t = float(s.get("lam_data", 1.0)), float(s.get("t", 80.0))
    err = _afs_error(lam, t)
    correct = next((k for k, bound in AFS_BANDS if err < bound), "large")
    ts = [0.05 * 1.2 ** i for i in range(60) if 0.05 * 1.2 ** i <= 80] + [80.0]
    fig = go.Figure(go.Scatter(x=ts, y=[_afs_error(lam, x) for x in ts], mode="lines",
                               name=f"λ = {lam:g}", line=dict(color="#0072B2", width=3)))
    fig.add_trace(go.Scatter(x=[t], y=[max(err, 1e-16)], mode="markers", name=f"t = {t:g}",
                             marker=dict(size=14, color="#D55E00")))
    fig.update_xaxes(title="time t (noise level)", type="log")
    fig.update_yaxes(title="relative error of the AFS direction", type="log")
    fig.update_layout(title=f"AFS vs the exact direction, data variance λ = {lam:g}", height=420)
    why = (f"For N(0, λ) data the exact direction at time t is t·x/(λ + t²); AFS uses x/√(1 + t²). "
           f"At t = {t:g} "
           f"and λ = {lam:g} they differ by **{err:.2g}** (relative): "
           + {"negligible": "the network call it saves would have computed almost exactly this. At such a "
                            "noise level the noise swamps data of moderate variance, so the "
                            "denoiser's answer "
                            "hardly depends on the data: one NFE saved for free.",
              "noticeable": "small, but visible in the first step.",
              "large": "far from exact: this is why AFS is used only on the first step, at t_max = 80, "
                       "where the noise swamps the data."}[correct])
    return Answer(correct, why, fig)


_kind(Kind(
    "afs_error", "How far the analytical first step is from the exact direction (parameters lam_data, t)",
    {"lam_data": number(0.01, 100.0), "t": number(0.01, 80.0)},
    choices=lambda s: (("negligible", "Negligible (below 0.1%)"), ("noticeable", "Noticeable (0.1% to 10%)"),
                       ("large", "Large (above 10%)")),
    prompt=lambda s: f"The analytical first step replaces the network at t = {s.get('t', 80.0):g} by "
                     f"d = x/√(1+t²). For data of variance λ = {s.get('lam_data', 1.0):g}, how far "
                     f"is that from "
                     "the exact direction?",
    solve=_afs_answer))


# ---- mixtures: does the plain solver find the modes -------------------------------------------------
MODES_SAMPLES = 3000


def _modes_state(s: dict) -> tuple[str, int, str, bool]:
    return (str(s.get("mixture", s.get("mix_preset", "ring8"))), int(s.get("nfe", s.get("mix_nfe", 2))),
            str(s.get("solver", s.get("mix_solver", "dpmpp3m"))), bool(s.get("afs", s.get("mix_afs", False))))


def _solver_modes_answer(s: dict) -> Answer:
    import numpy as np

    from opmerge_core.figures.sfd import densities
    from opmerge_core.sfd import mixtures, solvers
    from opmerge_core.sfd.sampling import solver_grid
    preset, nfe, solver, afs = _modes_state(s)
    g = mixtures.preset(preset)
    x = solvers.DEFAULT_T_MAX * np.random.default_rng(0).standard_normal((MODES_SAMPLES, g.dim))
    plain = solvers.solve(g.denoise, x, solver_grid(nfe, solver, afs), solver, afs=afs)
    teacher = solvers.solve(g.denoise, x, solvers.teacher_grid(nfe + 1 + int(afs), 3), solver)
    near_plain, _ = mixtures.mode_coverage(g, plain)
    near_teacher, _ = mixtures.mode_coverage(g, teacher)
    yes = near_plain >= 0.8 * near_teacher
    why = (f"With the exact mixture denoiser ({mixtures.PRESET_LABELS[preset]}), {near_plain:.0%} "
           f"of the plain "
           f"solver's samples at NFE {nfe} land within 3 standard deviations of a mode, against "
           f"{near_teacher:.0%} for the teacher on its fine grid. "
           + ("The plain solver already finds the modes here: there is little for a student to recover."
              if yes else "A few large steps of a nonlinear teacher cut the corners between the modes: the "
              "samples smear into a blur. That is what the distilled students are trained to fix."))
    fig = densities({"teacher": teacher, "solver": plain})
    return Answer("yes" if yes else "no", why, fig)


_kind(Kind(
    "solver_modes", "Does the plain solver at this NFE land on the mixture's modes (exact denoiser, "
    "no training)",
    {"mixture": url_params.MIXTURE, "nfe": integer(1, 5), "solver": url_params.SOLVER, "afs": flag},
    choices=lambda s: (("yes", "Yes: most samples land on a mode"),
                       ("no", "No: many samples fall between the modes")),
    prompt=lambda s: f"Without any training, does the plain solver at NFE {_modes_state(s)[1]} put "
                     f"its samples "
                     "on the mixture's modes as the teacher does?",
    solve=_solver_modes_answer))

