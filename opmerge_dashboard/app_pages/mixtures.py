"""Mixtures (issue 6; THEORY §7): SFD on 2-D Gaussian mixtures, where the teacher is nonlinear.

Trajectories of the teacher (solid) and of the students (dashed, markers at their timestamps),
the final densities side by side, and how the error of merging m teacher steps into one operator
grows with m. All numbers come from ``opmerge_core.sfd_lab.mixture_demo`` and
``opmerge_core.mixtures.merge_errors``; this page only caches and draws.
"""

from __future__ import annotations

import shlex

import pandas as pd
import streamlit as st

from opmerge_dashboard import common
from opmerge_dashboard.figures.sfd import METHOD_LABELS, densities, merge_error, trajectories
from opmerge_core import mixtures, sfd_lab, solvers

BUDGETS = (1024, 2048, 4096, 8192, 16384)


@st.cache_data(max_entries=16, show_spinner="Training two tiny students (SFD and Algorithm 1) …")
def demo(preset: str, nfe: int, solver: str, M: int, afs: bool, budget: int, seed: int) -> dict:
    return sfd_lab.mixture_demo(preset, nfe, solver, M, afs, budget, seed=seed)


@st.cache_data(max_entries=16, show_spinner=False)
def merge_rows(preset: str) -> list[dict]:
    return mixtures.merge_errors(mixtures.preset(preset), T=16, ms=(1, 2, 4, 8, 16), n=1500)


def cli_command(preset: str, nfe: int, solver: str, M: int, afs: bool, budget: int, seed: int) -> str:
    args = ["opmerge", "sfd", "train", "--teacher", "mixture-2d", "--preset", preset, "--nfe", str(nfe),
            "--solver", solver, "--M", str(M), "--budget", str(budget), "--lr", "1e-3", "--seed", str(seed)]
    return " ".join(shlex.quote(a) for a in args + (["--afs"] if afs else []))


st.title("Gaussian mixtures: distilling a nonlinear teacher")
st.caption("For Gaussian data every teacher step is linear and merging steps is exact in form (THEORY §1–2). "
           "A mixture's denoiser E[x0 | x_t] is nonlinear (posterior responsibilities), so a one-step "
           "student cannot reproduce several teacher steps exactly — the open question of THEORY §7. "
           "Here the teacher is the mixture's exact denoiser; students are trained by SFD (SFD.md).")

c1, c2, c3, c4 = st.columns(4)
preset = c1.selectbox("mixture", list(mixtures.PRESETS), key="mix_preset",
                      format_func=lambda k: mixtures.PRESET_LABELS[k])
nfe = int(c2.slider("student NFE", 1, 5, 2, key="mix_nfe"))
solver = c3.selectbox("teacher solver", solvers.SOLVERS, index=solvers.SOLVERS.index("dpmpp3m"),
                      key="mix_solver", format_func=lambda k: solvers.SOLVER_LABELS[k])
M = int(c4.slider("M (extra teacher steps per student step)", 0, 8, 3, key="mix_M"))
c5, c6, c7 = st.columns(3)
afs = c5.toggle("analytical first step (AFS)", value=False, key="mix_afs",
                help="First step d = x/√(1+t²) with no network call: saves one NFE (SFD.md).")
budget = int(c6.select_slider("budget (trajectories)", BUDGETS, value=4096, key="mix_budget"))
seed = int(c7.number_input("seed", 0, 10_000, 0, step=1, key="mix_seed"))
if afs and nfe == 1:
    st.caption("NFE 1 with AFS: the first step is analytical, the second is the only network call.")

try:
    out = demo(preset, nfe, solver, M, afs, budget, seed)
except ValueError as exc:
    st.warning(str(exc))
    st.stop()

st.caption(f"Student grid: {out['n']} timestamps (NFE {nfe}); teacher grid: {len(out['fine_grid'])} "
           f"timestamps ({M + 1} teacher steps per student step, student times included exactly).")
common.figure(trajectories(out["paths"]), "mixture_trajectories")
st.caption("States are shown in VP scale x_t/√(1+t²) so pure noise (t = 80) and data fit one plot. "
           "Plain solver and students start from the same noise as the teacher.")

common.figure(densities(out["finals"]), "mixture_densities")
table = pd.DataFrame(out["metrics"])
table.insert(1, "label", table["method"].map(METHOD_LABELS))
number = st.column_config.NumberColumn
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"sliced_w2": number("sliced W2 vs exact", format="%.4f"),
                            "fd": number("FD of Gaussian fits", format="%.4f"),
                            "finetune_seconds": number("fine-tuning s", format="%.1f")})
common.csv_download(table, "mixture_metrics")
st.caption("\"data\" compares two independent exact sample sets: the Monte-Carlo floor of the sliced W2.")

st.subheader("Merging m teacher steps into one operator (THEORY §7)")
rows = merge_rows(preset)
common.figure(merge_error(rows), "mixture_merge_error", pd.DataFrame(rows))
st.caption("Teacher: 16 Euler steps with the exact denoiser. For each block of m steps: the residual of "
           "the best affine map (what a linear student can reach; exactly 0 for the one-Gaussian preset) "
           "and the error of the untrained one-step jump. Both grow with m.")
common.show_cli(cli_command(preset, nfe, solver, M, afs, budget, seed))
