"""Phase transition (home page): which merge plan is optimal, and where it flips (THEORY §4–§5)."""

import numpy as np
import streamlit as st

from opmerge_core import figures
from opmerge_core.cli import theory as theory_cli
from opmerge_dashboard import plan_views as views
from opmerge_dashboard import predict
from opmerge_dashboard.backend import prefetch
from opmerge_dashboard.output import csv_download, figure, show_command
from opmerge_dashboard.params import WARN, params

p = params()
st.title("The phase transition of operator merging")
prefetch(*views.home_calls(p.setting, p.lam))     # every heavy result of the page, side by side
best = views.optimal(p.setting, p.lam)
thresholds = views.thresholds(p.setting)
lam_B, lam_V = thresholds if thresholds is not None else (float("nan"), float("nan"))
if not predict.gate(p, best, lam_B, lam_V):   # ?predict=1: the answer waits for a prediction
    st.stop()

MEANING = {
    "boot": "every student starts at the noise end and adds one more teacher step (left-deep chain): "
            "each merge shrinks, and below λ ≈ 1 shrinking is what brings the student closest to P.",
    "vanilla": "one student is trained once on all T teacher steps at the same time: above λ_V every "
               "plan undershoots P, so the plan with the largest value (the least shrinkage) wins.",
    "hybrid": "a mixture: chains of BOOT-like merges inside a flatter tree. Between λ_B(T) and λ_V the "
              "optimum moves from BOOT towards vanilla as λ grows.",
    "mixed": "some plans overshoot P and some undershoot it; the optimum is the plan whose value lands "
             "closest to P (a thin band just above λ = 1).",
}

# The static explanation is one element (text and formulas): every element costs server CPU on every
# rerun of every student.
WHAT_TO_NOTICE = r"""#### What to notice

Below λ = 1 the blue **BOOT** curve coincides with the dashed DP optimum; above λ_V the vermillion
**vanilla** curve does. In between, the optimum is a hybrid that no named strategy matches.

$$
A^*_t=\frac{\alpha_{t-1}\alpha_t\lambda+\sigma_{t-1}\sigma_t}{\alpha_t^2\lambda+\sigma_t^2},\quad
P=\prod_{t=1}^{T}A^*_t
$$

A merge with shrinkage ρ acts like f(x) = 1 − ρ + ρx, and

$$
f(xy)-f(x)f(y)=\rho(1-\rho)(1-x)(1-y)
$$

Merging one step at a time gives a **smaller** one-step operator than merging everything at once.
When every plan overshoots P (λ ≤ 1) smaller is better → BOOT; when every plan undershoots (large λ)
larger is better → vanilla.

$$
W_2=r_T\,|S-P|
$$

$$
\lambda_B(T)\approx 1+\tfrac{1.6}{T},\qquad \lambda_V=1+\tfrac{1}{\alpha_1}
$$
"""

PENDING = "…"
c1, c2, c3, c4 = st.columns([2.2, 1, 1, 1])
c1.metric("Optimal plan", best.label if best else PENDING,
          help="Regime of the DP-optimal plan at the current λ, T, S.")
c2.metric("W2 of the optimum", f"{best.w2:.4g}" if best else PENDING)
c3.metric("λ_B(T): BOOT optimal up to", PENDING if thresholds is None else
          f"{lam_B:.4g}" if np.isfinite(lam_B) else "∞")
c4.metric("λ_V: vanilla optimal from", PENDING if thresholds is None else f"{lam_V:.4g}")
if best is not None and not best.exact:
    st.warning("At this λ the optimum lies in the **mixed band** and T is too large for the exact "
               "set search: the plan shown is the best of the extreme and named plans, **not proven "
               "optimal**.", icon=WARN)

# ---- the optimal plan ---------------------------------------------------------------------------
def plan_section(best) -> None:
    """The optimal plan: its tree, its bracket text and every named strategy's W2 next to it."""
    left, right = st.columns([4, 3])
    with left:
        spec, tree_df = views.plan_view(p.setting, p.lam, best.plan.text,
                                         f"Optimal plan at λ = {p.lam:g}, T = {p.T}")
        figure(spec, "optimal_plan_tree", tree_df)
    with right:
        st.markdown(f"**{best.label}** — {MEANING[best.regime]}\n\n"
                    f":small[:gray[{best.plan.n_merges} students, {best.plan.depth} generations. One-step "
                    f"value {best.value:.5f} vs target {best.P:.5f}; min/max over all plans "
                    f"{best.lo:.5f} / {best.hi:.5f}.]]\n\n"
                    "Bracket notation (leaves are teacher steps T…1, brackets are trained students):")
        text = best.plan.text
        st.code(text if len(text) <= 600 else text[:600] + " …", language=None, wrap_lines=True)
        table = views.strategies_table(p.setting, p.lam, best.label, best.value, best.w2)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.5g") for c in
                                    ("value", "W2", "gap to DP")})
        csv_download(table.to_pandas, "strategies_w2")
        show_command(theory_cli.to_argv, theory_cli.PlanCommand, p.setting, (p.lam,))


if best is not None:
    plan_section(best)

# ---- curves and phase diagram -------------------------------------------------------------------
left, right = st.columns([3, 2])
with left:
    df = views.curves(p.setting)
    if df is not None and thresholds is not None:
        figure(figures.add_lam_line(views.curves_spec(p.setting, df, lam_B, lam_V), p.lam),
               "strategy_curves", df)
        if n := views.not_proven(("curves", p.setting), df):
            st.warning(f"{n} λ values of the dashed DP curve lie in the mixed band: there the DP value "
                       "is the best known, **not proven optimal**.", icon=WARN)
with right:
    st.markdown(WHAT_TO_NOTICE)
    show_command(theory_cli.to_argv, theory_cli.SweepCommand, (p.T,), views.CURVE_GRID, p.model)

left, right = st.columns([3, 2])
with left:
    phase = views.phase(p.model)
    if phase is not None:
        ph, th = phase
        columns = ["T", "lam", "regime", "exact", "plan", "w2_dp", "lam_B", "lam_V"]
        figure(figures.add_phase_point(views.phase_spec(p.model, ph, th), p.lam, p.T),
               "phase_diagram", lambda: ph.merge(th, on="T")[columns])
with right:
    st.markdown("#### Reading the phase diagram\n\n"
                "Blue: sequential BOOT is exactly optimal; vermillion: vanilla. The solid line "
                "λ_B(T) hugs λ = 1 as T grows; the dashed line λ_V = 1 + 1/α₁ tends to 2. The star "
                "is the current setting. Change **S** in the sidebar: the thresholds do not move.")
    if phase is not None and (n := views.not_proven(("phase", p.model), phase[0])):
        st.warning(f"{n} cells lie in the mixed band at large T: their plan is the best known, **not "
                   "proven optimal**.", icon=WARN)
    show_command(theory_cli.to_argv, theory_cli.SweepCommand, views.PHASE_TS, views.PHASE_GRID, p.model)
