"""About: the model, its choices (assumptions), references, and the CLI for this state."""

import contextlib

import streamlit as st

from opmerge_core.cli import theory as theory_cli
from opmerge_core.theory.schedules import SCHEDULE_LABELS
from opmerge_core.theory.setting import SURROGATE_LABELS
from opmerge_core.theory.shrinkage import INIT_LABELS
from opmerge_dashboard import plan_views as views
from opmerge_dashboard.output import command
from opmerge_dashboard.params import params

p = params()
st.title("About this lab")
st.markdown("""
**The model** (THEORY.md). Data x₀ ~ N(0, Λ) per eigen-direction, z_t = α_t x₀ + σ_t ε. The teacher is
DDIM with the optimal (linear) denoiser, so every step is a number A*_t. A *merge* trains one student
to replace a run of consecutive operators; with a finite training budget it learns only a fraction
ρ_s = 1 − exp(−S r_s²) of its target. A *plan* is the tree of merges; the dynamic program finds the
plan whose one-step operator is closest (in W2) to the surrogate target.
""")
st.subheader("Model choices in use — these are assumptions")
st.table({
    "choice": ["noise schedule", "student initialisation", "surrogate target", "inputs of a merge",
               "shrinkage budget S = κτ", "uniform block size K"],
    "active": [SCHEDULE_LABELS[p.model.schedule], INIT_LABELS[p.model.init],
               SURROGATE_LABELS[p.model.surrogate], "forward marginals z_s ~ N(0, r_s²) (fixed)",
               f"{p.model.S:g}", f"{p.model.uniform_K}"],
    "default": [SCHEDULE_LABELS["trig"], INIT_LABELS["teacher"], SURROGATE_LABELS["teacher"],
                "forward marginals", "1", "4"],
})
st.markdown("Only the paper's Section 3 formulas are known verbatim; the student model, the DP and "
            "the strategy set are a reconstruction that reproduces every published claim. With init "
            "`zero` or `coarse`, vanilla wins for every λ — try it in the sidebar.")

st.subheader("References")
st.markdown("""
- Gao & Li. *Toward Theoretical Insights into Diffusion Trajectory Distillation via Operator Merging.*
  [arXiv:2505.16024](https://arxiv.org/abs/2505.16024)
- SFD — Zhou, Chen, Wang, Chen, Lyu. *Simple and Fast Distillation of Diffusion Models.* NeurIPS 2024.
  [arXiv:2409.19681](https://arxiv.org/abs/2409.19681)
- BOOT — Gu et al., *BOOT: Data-free Distillation of Denoising Diffusion Models with Bootstrapping.*
  [arXiv:2306.05544](https://arxiv.org/abs/2306.05544)
- Progressive Distillation — Salimans & Ho. *Progressive Distillation for Fast Sampling of Diffusion
  Models.* [arXiv:2202.00512](https://arxiv.org/abs/2202.00512)
""")

st.subheader("Reproduce every number of the current state")
plan_text = st.session_state.get("plan") or ""
specs = [(theory_cli.PlanCommand(p.setting, (p.lam,)), "Phase transition: optimal plan, strategies, W2"),
         (theory_cli.SweepCommand((p.T,), views.CURVE_GRID, p.model), "strategy curves"),
         (theory_cli.SweepCommand(views.PHASE_TS, views.PHASE_GRID, p.model), "phase diagram")]
if plan_text.strip():
    with contextlib.suppress(ValueError):      # a plan typed for another T is not this state's
        specs.append((theory_cli.EvalCommand(plan_text, p.setting, (p.lam,)), "playground plan"))
lines = [f"{command(theory_cli.to_argv(spec))}   # {what}" for spec, what in specs]
st.code("\n".join(lines), language="bash")
st.caption("Add `--json` for machine-readable output or `--out file.csv` to a sweep. "
           "This page's URL reproduces the dashboard state.")
