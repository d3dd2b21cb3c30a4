"""Spectrum: many eigen-directions share one merge plan (THEORY §1, §4 last bullet)."""

import numpy as np
import pandas as pd
import streamlit as st

from opmerge_core import figures
from opmerge_core.cli import theory as theory_cli
from opmerge_core.theory import plans
from opmerge_core.theory.setting import total_w2
from opmerge_core.theory.shared_plan import SHARED_T_MAX
from opmerge_dashboard import plan_views as views
from opmerge_dashboard import untrusted
from opmerge_dashboard.output import command, figure, show_cli
from opmerge_dashboard.params import BOUND, ERROR, WARN, default, params
from opmerge_dashboard.spectrum_upload import SPECTRUM_VALUES_MAX, parse_spectrum
from opmerge_dashboard.url_params import (
    EXPONENT_MAX,
    EXPONENT_MIN,
    EXPONENT_STEP,
    HIGH_LAM_MAX,
    HIGH_LAM_MIN,
    HIGH_LAM_STEP,
    SPECTRUM_D_MAX,
    SPECTRUM_D_MIN,
    SPECTRUM_SOURCES,
)

p = params()
st.title("A whole spectrum, one plan")
st.caption("Data x₀ ~ N(0, Σ): in the eigenbasis each direction i is its own 1-D problem with λ = λ_i, "
           "but a real student is trained once for all of them.")

c1, c2, c3 = st.columns([2, 1, 1])
source = c1.segmented_control("Spectrum", list(SPECTRUM_SOURCES), default=default("sp_source"),
                              format_func=SPECTRUM_SOURCES.get, key="sp_source", **BOUND)
d = c2.slider("directions d", SPECTRUM_D_MIN, SPECTRUM_D_MAX, default("sp_d"), key="sp_d", **BOUND)
lams = None
if source == "upload":
    up = st.file_uploader("Eigenvalues: .csv/.txt (numbers) or .npy (1-D float array), ≤ 1 MB and "
                          f"≤ {SPECTRUM_VALUES_MAX} values", type=["csv", "txt", "npy"],
                          key="sp_upload")
    if up is not None:
        try:
            lams = parse_spectrum(up.name, up.getvalue())
            st.success(f"Loaded {lams.size} eigenvalues from {untrusted.text(up.name)}.")
        except ValueError as exc:
            st.error(f"Cannot use {untrusted.text(up.name)}: {untrusted.text(exc)}. Showing the power-law "
                     "preset instead.", icon=ERROR)
    if lams is None:
        source = "power-law"
if lams is None:
    i = np.arange(1, d + 1)
    if source == "two-level":
        hi = c3.number_input("high λ", HIGH_LAM_MIN, HIGH_LAM_MAX, default("sp_hi"), step=HIGH_LAM_STEP,
                             key="sp_hi", **BOUND)
        lams = np.where(i <= d // 2, hi, 0.2)
    elif source == "flat":
        lams = np.full(d, p.lam)
        c3.caption(f"all λ_i = λ = {p.lam:g} (sidebar)")
    else:
        a = c3.number_input("exponent a in λ_i = 10·i^(−a)", EXPONENT_MIN, EXPONENT_MAX, default("sp_a"),
                            step=EXPONENT_STEP, key="sp_a", **BOUND)
        lams = 10.0 * i ** -a
lams = np.asarray(lams, dtype=float)
setting = p.setting

# ---- per direction: what each direction wants on its own -----------------------------------------
thresholds = views.thresholds(p.setting)
directions = views.per_direction(p.setting, lams)
if thresholds is None or directions is None:
    st.stop()                 # the placeholders above rerun the page when the results are ready
lam_B, lam_V = thresholds
regimes = np.asarray(directions[0], dtype=object)
per_dir = directions[1]

left, right = st.columns([3, 2])
with left:
    spec_df = pd.DataFrame({"i": np.arange(1, lams.size + 1), "lam": lams, "regime": regimes})
    figure(figures.spectrum_regimes(lams, regimes), "spectrum_regimes", spec_df)
with right:
    st.markdown("#### What to notice")
    st.markdown(f"Directions with λ_i ≤ λ_B(T) = {lam_B:.4g} want **sequential BOOT**, those with "
                f"λ_i ≥ λ_V = {lam_V:.4g} want **vanilla**, the few in between a hybrid. A trained "
                "network applies one plan to all of them, so the plan has to compromise.")
    st.latex(r"\min_{\text{plan}}\ \sum_i r_{T,i}^2\,(S_i-P_i)^2")

# ---- one shared plan ----------------------------------------------------------------------------
SHARED_BUDGET_S = 60.0   # of worker time on the compute backend (the page stays interactive meanwhile)
estimate = 0.6 * (p.T / 64) ** 3 * (lams.size / 128)  # measured (beam DP): T = 64, d = 128 ~0.6 s
named = plans.named_plans(p.T)
rows = [{"plan": plans.STRATEGY_LABELS[n], "W2": total_w2(setting.w2(pl.evaluate(setting, lams), lams))}
        for n, pl in named.items()]
oracle = float(np.sqrt(sum(w**2 * (lams == x).sum() for x, w in per_dir.items())))
rows.append({"plan": "per-direction optimum (lower bound)", "W2": oracle})
shared = None
if p.T > SHARED_T_MAX or estimate > SHARED_BUDGET_S:
    st.info(f"The shared-plan DP would take about {estimate:.0f} s at T = {p.T} with "
            f"{lams.size} directions; it runs when that estimate is ≤ {SHARED_BUDGET_S:g} s (lower T or d). "
            "The named strategies are compared below.")
else:
    shared = views.shared(p.setting, tuple(lams))
    if shared is not None:
        rows.append({"plan": "shared DP plan", "W2": shared.w2})
table = pd.DataFrame(rows)
left, right = st.columns([3, 2])
with left:
    figure(figures.strategy_bars(table["plan"], table["W2"], "shared DP plan"), "spectrum_w2", table)
with right:
    if shared is not None:
        if shared.exact:
            st.success("Shared plan: **exact** (proven optimal).")
        else:
            st.warning(f"Shared plan: **not proven optimal** — {shared.method} DP, at most "
                       f"{shared.gap:.3g} ({shared.gap / max(shared.lower_bound, 1e-300):.1%}) above the "
                       "per-direction lower bound, and never worse than the named strategies.",
                       icon=WARN)
        st.markdown("Shared plan:")
        st.code(shared.plan.text if len(shared.plan.text) <= 400 else shared.plan.text[:400] + " …",
                language=None, wrap_lines=True)
    st.markdown("The per-direction optimum is not achievable with one plan: it is the floor that "
                "shows how much sharing costs.")
    argv = theory_cli.to_argv(theory_cli.PlanCommand(p.setting, tuple(lams), shared=True))
    if lams.size > 16:        # the λ column of this page's CSV download, as a comma list
        argv[argv.index("--lam") + 1] = "LAMS"
    show_cli(command(argv).replace(
        "LAMS", '"$(cut -d, -f2 opmerge_spectrum_regimes.csv | tail -n +2 | paste -sd,)"'),
        "Per-direction optimal plans, the strategies and the shared plan with the CLI")
