"""Train: real students for merge plans, trained live, next to the theory (THEORY §2, §6).

Training runs on the compute backend (``opmerge_core.backend.compute``: a Dask cluster), never in the
script thread; every run is recorded in the run store. The page only builds a ``TrainSpec``, submits
it, follows the job in its job panel (``jobs.py``) and draws. Jobs are leased to this browser session:
when the tab is closed the polling stops and the backend cancels them (``compute.LEASE_S``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from opmerge_core.backend.compute import Status
from opmerge_core.cli import train as train_cli
from opmerge_core.figures import train as figs
from opmerge_core.theory import plans
from opmerge_core.training import train_spec, trainer
from opmerge_dashboard import untrusted
from opmerge_dashboard.backend import backend
from opmerge_dashboard.jobs import job_panel, run_store, start
from opmerge_dashboard.output import csv_download, figure, show_cli
from opmerge_dashboard.params import BOUND, PLAN_URL_MAX, WARN, default, params
from opmerge_dashboard.url_params import (
    INPUTS,
    SEED_MAX,
    TRAIN_BATCHES,
    TRAIN_D_MAX,
    TRAIN_D_MIN,
    TRAIN_LRS,
    TRAIN_OPTIMIZERS,
    TRAIN_SPECTRA,
    TRAIN_STEPS,
    TRAIN_STRATEGIES,
    TRAIN_STUDENTS,
    TRAIN_T,
    train_label,
)

SWEEP_FACTORS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)   # budget sweep: × the chosen steps
WORK_WARN = 3e9           # merge-steps × batch × d above which the page warns about the wait


def submit(spec: train_spec.TrainSpec) -> None:
    start("tr_job", train_spec.KIND, train_spec.run, spec, params=spec.as_dict(),
          finalize=train_spec.record)


def submit_sweep(spec: train_spec.TrainSpec) -> None:
    steps = sorted({max(1, round(f * spec.steps)) for f in SWEEP_FACTORS})
    start("tr_sweep_job", train_spec.SWEEP_KIND, train_spec.budget_sweep_job, spec, steps,
          params={**spec.as_dict(), "sweep_steps": steps})


# ---- page ---------------------------------------------------------------------------------------
p = params()
st.title("Train real students")
st.caption("Every merge of a plan becomes a real student — a diagonal linear operator (or a tiny MLP) "
           "trained with SGD or Adam on sampled z_s against the product of its children. Plain SGD with "
           "learning rate η for n steps realises the budget **S_eff = 2ηn** and must land on THEORY §2's "
           "closed form within Monte-Carlo error; Adam and the MLP show where it stops holding. The "
           "shared S does not apply here (S_eff replaces it); λ, schedule, init and surrogate do.")

c1, c2, c3 = st.columns([2, 2, 1])
strategies = c1.multiselect("strategies", TRAIN_STRATEGIES, default=default("tr_strategies"),
                            format_func=train_label, key="tr_strategies", **BOUND)
plan_text = c2.text_input("typed plan (optional, trained as 'custom')", key="tr_plan",
                          placeholder="e.g. [[4 3] 2 1]", max_chars=PLAN_URL_MAX, **BOUND)
T = c3.select_slider("T", TRAIN_T, value=default("tr_T"), key="tr_T", **BOUND)

c1, c2, c3 = st.columns([2, 1, 1])
spectrum = c1.segmented_control("λ", list(TRAIN_SPECTRA), default=default("tr_spectrum"), key="tr_spectrum",
                                format_func=TRAIN_SPECTRA.get, **BOUND) or default("tr_spectrum")
if spectrum in ("power-law", "two-level"):
    d = int(c2.slider("directions d", TRAIN_D_MIN, TRAIN_D_MAX, default("tr_d"), key="tr_d", **BOUND))
if spectrum == "power-law":
    lam = 10.0 * np.arange(1, d + 1) ** -1.0
    c3.caption("λ_i = 10 / i")
elif spectrum == "two-level":
    lam = np.where(np.arange(d) < d // 2, 5.0, 0.2)
    c3.caption("half λ = 5, half λ = 0.2")
else:
    lam = np.array([p.lam])
    c2.caption(f"λ = {p.lam:g} (sidebar)")

c1, c2, c3, c4 = st.columns(4)
steps = int(c1.select_slider("steps per merge", TRAIN_STEPS, value=default("tr_steps"), key="tr_steps",
                             **BOUND))
lr = float(c2.select_slider("learning rate η", TRAIN_LRS, value=default("tr_lr"), key="tr_lr", **BOUND))
batch = int(c3.select_slider("batch", TRAIN_BATCHES, value=default("tr_batch"), key="tr_batch", **BOUND))
seed = int(c4.number_input("seed", 0, SEED_MAX, default("tr_seed"), key="tr_seed", **BOUND))
c1, c2, c3 = st.columns(3)
optimizer = c1.segmented_control("optimiser", TRAIN_OPTIMIZERS, default=default("tr_opt"), key="tr_opt",
                                 **BOUND) or default("tr_opt")
student = c2.segmented_control("student", TRAIN_STUDENTS, default=default("tr_student"), key="tr_student",
                               **BOUND) or default("tr_student")
inputs = c3.segmented_control("inputs", INPUTS, default=default("tr_inputs"), key="tr_inputs",
                              help="forward: z_s ~ N(0, r_s²) (THEORY §2 default); boot: z_T pushed "
                                   "through the current model (earlier students) to s.",
                              **BOUND) or default("tr_inputs")

spec, problem = None, None
try:
    spec = train_spec.TrainSpec(T=T, lam=tuple(lam), strategies=tuple(strategies),
                                plan=plan_text.strip() or None, schedule=p.model.schedule,
                                init=p.model.init, surrogate=p.model.surrogate, steps=steps, lr=lr,
                                batch=batch, optimizer=optimizer, seed=seed, inputs=inputs, student=student)
    if spec.plan and plans.parse(spec.plan).T != T:
        raise ValueError(f"the typed plan is for T = {plans.parse(spec.plan).T} but T = {T}")
    named = spec.plans()
except ValueError as exc:
    problem = str(exc)
    st.warning(f"Cannot train: {untrusted.text(problem)}", icon=WARN)

if spec is not None and problem is None:
    r2_max = float(np.max(spec.setting().r2(np.asarray(spec.lam))))
    n_merges = trainer.distinct_merges(named, inputs)
    work = n_merges * steps * batch * len(spec.lam) * (spec.hidden if student == "mlp" else 1)
    st.caption(f"S_eff = 2 · {lr:g} · {steps} = **{spec.S_eff:g}** · {n_merges} students to train "
               f"(identical subtrees of different plans are trained once) · "
               f"d = {len(spec.lam)}")
    if optimizer == "sgd" and lr * r2_max >= 1:
        st.warning(f"η · max r_s² = {lr * r2_max:.3g} ≥ 1: plain SGD will diverge (the run will stop "
                   "and be marked failed with the reason). Lower the learning rate to stay stable.",
                   icon=WARN)
    if work > WORK_WARN:
        st.warning("This is a large run (several minutes on a shared CPU); it queues behind others.",
                   icon=WARN)

store = run_store()     # None: one message saying which path is wrong and what to do
c1, c2 = st.columns([1, 3])
c1.button("Start training", key="tr_start", type="primary", disabled=problem is not None or store is None,
          on_click=submit, args=(spec,), icon=":material/play_arrow:")
c2.button("Budget sweep (shrinkage vs steps)", key="tr_sweep", disabled=problem is not None or store is None,
          on_click=submit_sweep, args=(spec,),
          help="Trains the same plans at " + ", ".join(f"{f:g}×" for f in SWEEP_FACTORS)
               + " the steps (same η) to show the trained operator following the closed form in S.")
job_panel("tr_job", what="Training", key="tr")
job_panel("tr_sweep_job", what="Budget sweep", key="tr")
if "tr_job" not in st.session_state and "tr_sweep_job" not in st.session_state:
    st.caption("No run started in this session yet: press **Start training**.")

# ---- results of this session's last training ----------------------------------------------------
job = backend().get(st.session_state.get("tr_job", -1))
if job is not None and job.status == Status.DONE and job.result is not None:
    result: trainer.TrainResult = job.result
    st.header(f"Results of run {job.id}")
    c1, c2, c3 = st.columns(3)
    c1.metric("S_eff = 2ηn", f"{result.S_eff:g}")
    c2.metric("students trained", f"{len(result.records)}")
    c3.metric("seconds", f"{result.seconds:.2f}", help=f"on {result.device}")
    w2 = result.w2_table()
    left, right = st.columns([3, 2])
    with left:
        figure(figs.w2_bars(w2), "train_w2", w2)
    with right:
        st.markdown("#### What to notice")
        st.markdown("With SGD the trained W2 sits on the theory bar: the closed form of THEORY §2 is "
                    "what training does. Switch to **Adam** or the **MLP** student and the bars part — "
                    "the closed form assumes gradient flow on a linear student.")
        st.dataframe(w2, hide_index=True)

    c1, c2 = st.columns(2)
    view = c1.selectbox("merges of", list(result.plans), key="tr_view",
                        format_func=train_label)
    j = 0
    if result.lam.size > 1:
        j = int(c2.selectbox("coordinate", range(result.lam.size), key="tr_coord",
                             format_func=lambda i: f"λ_{i + 1} = {result.lam[i]:.4g}"))
    records = result.merges(view)
    if not records:
        st.caption("T = 1: no merge to train.")
    else:
        per_merge = result.merge_table(view, j)
        left, right = st.columns(2)
        with left:
            figure(figs.merge_operators(per_merge, view, float(result.lam[j])),
                          f"train_merges_{view}", per_merge)
        with right:
            curves = {f"z_{r.span[1]}→z_{r.span[0]}": (r.loss_steps, r.loss) for r in records}
            figure(figs.merge_losses(curves), f"train_losses_{view}")
        if result.config.optimizer == "sgd" and result.config.student == "linear":
            z = (per_merge["learned"] - per_merge["closed_form"]).abs() / per_merge["mc_std"]
            st.caption(f"Trained − closed form, in units of the predicted Monte-Carlo error (from batch "
                       f"and steps): median {z.median():.2f}, max {z.max():.2f}.")
elif job is not None and job.status == Status.DONE:
    st.caption("The result of this run is no longer in memory; see the runs table below.")

# ---- shrinkage vs training budget --------------------------------------------------------------
sweep_job = backend().get(st.session_state.get("tr_sweep_job", -1))
if sweep_job is not None and sweep_job.status == Status.DONE and sweep_job.result is not None:
    st.header("Shrinkage vs training budget")
    sweep_spec: train_spec.TrainSpec = sweep_job.result["spec"]
    sweep = pd.DataFrame(sweep_job.result["rows"])
    S_grid = np.geomspace(sweep["S_eff"].min() / 2, sweep["S_eff"].max() * 2, 60)
    curve = pd.DataFrame(train_spec.theory_curve(sweep_spec, S_grid))
    lams = sorted(sweep["lam"].unique())
    lam_j = lams[0] if len(lams) == 1 else st.selectbox("λ", lams, key="tr_sweep_lam",
                                                        format_func=lambda x: f"{x:.4g}")
    target = float(sweep_spec.setting().target(np.array([lam_j]))[0])
    left, right = st.columns([3, 2])
    with left:
        figure(figs.budget_curve(sweep, curve, target, lam_j), "train_budget", sweep)
    with right:
        st.markdown("#### What to notice")
        st.markdown("Each marker is a full training run with n steps at the same η; it sits on the "
                    "closed-form curve at S = 2ηn. A larger budget pulls every plan towards the target "
                    "P; which plan is best does not depend on S (THEORY §5: the thresholds are "
                    "S-free).")

# ---- the run store ------------------------------------------------------------------------------
st.header("Runs")
if store is not None:
    store.recover()                  # runs of processes that died since (e.g. a killed CLI training)
rows = store.list(kind=train_spec.KIND, limit=200) if store is not None else []
if store is None:
    st.caption("The run store is not available (see above).")
elif not rows:
    st.caption("No training runs in the run store yet.")
else:
    table = pd.DataFrame([{"id": r["id"], "created": r["created"], "status": r["status"],
                           "progress": r["progress"], "T": r["params"].get("T"),
                           "lam": ",".join(f"{x:g}" for x in r["params"].get("lam", [])),
                           "strategies": ",".join(r["params"].get("strategies", [])),
                           "optimizer": r["params"].get("optimizer"), "steps": r["params"].get("steps"),
                           "lr": r["params"].get("lr"), "batch": r["params"].get("batch"),
                           "S_eff": r["metrics"].get("S_eff"), "seconds": r["metrics"].get("seconds"),
                           **{f"W2 {k}": v for k, v in r["metrics"].get("w2_empirical", {}).items()},
                           **{f"W2 theory {k}": v for k, v in r["metrics"].get("w2_theory", {}).items()},
                           "error": r["error"] or ""} for r in rows])
    st.dataframe(table, hide_index=True)
    csv_download(table, "train_runs")
    st.caption("Compare two runs on the command line: `opmerge runs compare ID ID`.")

if spec is not None and problem is None:
    show_cli(train_cli.to_argv(spec))
