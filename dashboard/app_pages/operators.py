"""Operators: the teacher step A*_t, its geometry (projection then rescaling), and the
teacher composite vs the exact flow map (THEORY §1, eq. 7–8, Prop. 3.2)."""

import numpy as np
import pandas as pd
import streamlit as st

from opmerge_core import figures
from opmerge_core.theory import operators
from opmerge_dashboard.output import figure
from opmerge_dashboard.params import model_choices_text, params

p = params()
setting = p.setting
lam = np.array([p.lam])
geo = operators.geometry(setting.alpha, setting.sigma, lam)
A, proj, resc = geo.A_star[:, 0], geo.projection[:, 0], geo.rescale[:, 0]

st.title("Teacher operators")
st.caption(model_choices_text(p))

steps = pd.DataFrame({"t": np.arange(1, p.T + 1), "alpha_t": setting.alpha[1:], "sigma_t": setting.sigma[1:],
                      "A_star": A, "projection": proj, "rescale": resc})
left, right = st.columns([3, 2])
with left:
    figure(figures.operators_per_step(A, proj, resc), "operators_per_step", steps)
with right:
    st.markdown("#### What to notice")
    st.latex(r"A^*_t=\frac{\langle v_{t-1},v_t\rangle}{\|v_t\|^2}"
             r"=\underbrace{\cos(\theta_t-\theta_{t-1})}_{\text{projection}}\cdot"
             r"\underbrace{\frac{r_{t-1}}{r_t}}_{\text{rescaling}}")
    st.markdown("Each DDIM step is a **projection** (≤ 1) followed by a **rescaling**. The exact "
                "probability-flow step is the rescaling alone, so every teacher step loses a factor "
                "cos Δθ_t. With λ < 1 the rescaling is < 1 near the noise end; with λ > 1 it is > 1 "
                "near the data end (A*_1 ≥ 1 exactly when λ ≥ λ_V).")

v = geo.v[:, 0, :]
left, right = st.columns([3, 2])
with left:
    geo_df = pd.DataFrame({"t": np.arange(p.T + 1), "alpha_sqrt_lam": v[:, 0], "sigma": v[:, 1],
                           "r": geo.r[:, 0], "theta": geo.theta[:, 0]})
    figure(figures.geometry_animation(v, A, resc), "geometry", geo_df)
with right:
    st.markdown("#### Scrub through the steps")
    st.markdown("Press **▶ play** or drag the step slider under the figure (it runs in your browser, "
                "no recomputation). For step t the teacher projects v_{t−1} (green) onto the line of "
                "v_t (black): it lands at **A*_t v_t** (blue dot). The exact flow map keeps the length "
                "‖v_{t−1}‖ = r_{t−1} (vermillion cross). The gap between them is the teacher's "
                "shrinkage in that step.")
    st.latex(r"v_t=(\alpha_t\sqrt{\lambda},\ \sigma_t),\qquad r_t=\|v_t\|")
    st.latex(r"\theta_t=\operatorname{atan2}(\sigma_t,\ \alpha_t\sqrt\lambda)")
    if p.T > 64:
        st.caption(f"T = {p.T}: the animation shows 64 evenly spaced steps.")

left, right = st.columns([3, 2])
with left:
    t = np.arange(p.T, -1, -1)
    comp = pd.DataFrame({"t": t, "teacher": np.concatenate([[1.0], np.cumprod(A[::-1])]),
                         "exact": geo.r[::-1, 0] / geo.r[-1, 0]})
    figure(figures.composite_vs_exact(A, geo.r[:, 0]), "composite_vs_exact", comp)
with right:
    P, exact = float(setting.P(lam)[0]), float(setting.exact(lam)[0])
    st.markdown("#### The teacher itself shrinks")
    st.latex(r"P=\prod_t A^*_t=\frac{r_0}{r_T}\prod_t\cos\Delta\theta_t\ \le\ \frac{r_0}{r_T}")
    st.metric("P / (r₀/r_T)", f"{P / exact:.4f}",
              help="Product of the cosines: the teacher's total shrinkage.")
    st.markdown(f"Here P = {P:.5f} and r₀/r_T = {exact:.5f}. The surrogate the students are measured "
                f"against is **{p.model.surrogate}** (a model choice, see About). More steps T → Δθ_t → 0 "
                "and the teacher approaches the exact map.")
