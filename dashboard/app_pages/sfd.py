"""SFD (SFD.md): distil a few-step student from a teacher, Algorithm 2 vs Algorithm 1 vs
SFD-v, against the plain solver at the same NFE.

Training runs on the compute backend (``opmerge_core.backend.compute``), never in the script thread, leased
to this browser session (closing the tab cancels it); every run is recorded in the run store, from
which the "quality vs fine-tuning seconds" plot (the paper's teaser on our latents) and the decoded
faces side by side are built. All computation is in ``opmerge_core.sfd.lab``; this page only
submits, follows the job in its job panel (``jobs.py``), caches and draws.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opmerge_core.backend import compute
from opmerge_core.cli import sfd as sfd_cli
from opmerge_core.figures.sfd import METHOD_LABELS, loss_curve, quality_vs_seconds
from opmerge_core.latent import latents
from opmerge_core.sfd import history, mixtures, solvers
from opmerge_core.sfd import lab as sfd_lab
from opmerge_core.sfd.distill import (
    ALGORITHM_LABELS,
    ALGORITHMS,
    NFE_MAX,
    NFE_MIN,
    SFD_LR,
    SFDV_NFE,
    DistillConfig,
)
from opmerge_core.sfd.metrics import FD_LABEL
from opmerge_core.sfd.teachers import TEACHER_LABELS, TEACHERS
from opmerge_dashboard import faces as face_view
from opmerge_dashboard import reference_view, untrusted
from opmerge_dashboard.backend import shared_result
from opmerge_dashboard.jobs import job_panel, run_store, start
from opmerge_dashboard.output import figure, show_cli
from opmerge_dashboard.params import BOUND, default, index
from opmerge_dashboard.url_params import SFD_BUDGETS, SFD_DEFAULT_BUDGET, SFD_MIXTURE_BUDGET

FACE_ORDER = ("teacher", "solver", "alg1", "sfd", "sfd-v")


@st.cache_data(max_entries=4, ttl=30, show_spinner=False)
def teachers(folder: str) -> dict[str, str | None]:
    return sfd_lab.available_teachers(folder)


def submit(teacher: str, preset: str, cfg: DistillConfig, folder: str) -> None:
    params = sfd_lab.run_params(teacher, cfg, preset, "auto")     # the full config: AFS runs are found
    start("sfd_job", sfd_lab.RUN_KIND, sfd_lab.job, teacher, cfg, preset, folder, params=params,
          finalize=sfd_lab.record)


def pm(out: dict, key: str) -> str:
    """'mean ± sd' of a metric (runs recorded before the sd existed: the mean alone)."""
    sd = out.get(f"{key}_sd")
    return f"{out[key]:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def show_run(job: compute.Job) -> None:
    """A finished run: the student's latent FD next to the plain solver's, the teacher's and the floor."""
    out = job.result["metrics"]
    st.success(f"Run {job.id} done: fine-tuning {out['finetune_seconds']:.1f} s, "
               f"{out['trajectories']:,} trajectories.")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("student latent FD", pm(out, "latent_fd"),
              delta=f"{out['latent_fd'] - out['latent_fd_solver']:+.3g} vs solver", delta_color="inverse")
    c2.metric(f"plain solver, NFE {out.get('nfe_solver', job.params['nfe'])}",
              pm(out, "latent_fd_solver"))
    c3.metric(f"teacher, {out['teacher_nfe']} NFE", pm(out, "latent_fd_teacher"))
    c4.metric("floor (exact samples)", pm(out, "latent_fd_floor"),
              help="What a perfect generator scores with this many samples against this reference: "
                   "differences well inside the floor's spread are estimator noise.")
    st.caption(f"Mean ± sd over {len(out.get('eval_seeds', [0]))} evaluation seeds of {out['n_eval']:,} "
               f"samples, against {out.get('fd_reference', 'the reference')}.")
    if out.get("by_nfe"):
        table = pd.DataFrame([{"NFE": int(k), "student latent FD": v["latent_fd"],
                               "student sd": v.get("latent_fd_sd"),
                               "plain solver latent FD": v["latent_fd_solver"],
                               "plain solver NFE used": v.get("nfe_solver")}
                              for k, v in out["by_nfe"].items()])
        st.caption("SFD-v: one student, every NFE it serves")
        st.dataframe(table, hide_index=True, width="stretch")
    if out.get("loss_curve"):
        figure(loss_curve(out["loss_curve"]), "sfd_loss", key="fig_sfd_loss")
    st.caption(FD_LABEL)


st.title("SFD: Simple and Fast Distillation")
st.caption("A student copied from the teacher learns to follow the teacher's trajectory in a few Euler "
           "steps: the teacher solves on a fine grid (M extra steps per student step), the student takes "
           "one step per segment, is corrected there, and continues from its own state (Algorithm 2). "
           "Only the student's sampling timestamps are ever trained (SFD.md).")

folder = str(latents.assets_dir())
available = teachers(folder)
names = list(TEACHERS)
# Once per session, before the widget exists: when the default teacher is missing (no assets) and the
# URL names none, start from the first teacher that is there.
if not st.session_state.get("_sfd_teacher_checked"):
    st.session_state["_sfd_teacher_checked"] = True
    if "sfd_teacher" not in st.query_params and available.get(st.session_state.get("sfd_teacher")):
        st.session_state["sfd_teacher"] = next((n for n in names if available[n] is None), "mixture-2d")


def _teacher_changed() -> None:
    """Each teacher has its own sensible budget (the 2-D mixtures need far fewer trajectories)."""
    mixture = st.session_state.get("sfd_teacher") == "mixture-2d"
    st.session_state["sfd_budget"] = SFD_MIXTURE_BUDGET if mixture else SFD_DEFAULT_BUDGET


c1, c2 = st.columns([2, 1])
teacher = c1.selectbox("teacher", names, key="sfd_teacher", format_func=lambda k: TEACHER_LABELS[k],
                       on_change=_teacher_changed, **BOUND)
preset = c2.selectbox("2-D mixture", list(mixtures.PRESETS), key="sfd_preset",
                      format_func=lambda k: mixtures.PRESET_LABELS[k], disabled=teacher != "mixture-2d",
                      **BOUND)
if available[teacher] is not None:
    st.warning(f"Teacher `{teacher}` is not available: {available[teacher]}")

c1, c2, c3 = st.columns(3)
algorithm = c1.selectbox("algorithm", ALGORITHMS, key="sfd_algorithm",
                         format_func=lambda k: ALGORITHM_LABELS[k], **BOUND)
nfe = int(c2.slider("student NFE", NFE_MIN, NFE_MAX, default("sfd_nfe"), key="sfd_nfe",
                    help="SFD-v serves NFE 2–5 with one model; this is the NFE reported.", **BOUND))
solver = c3.selectbox("teacher solver (and plain-solver baseline)", solvers.SOLVERS,
                      index(solvers.SOLVERS, "sfd_solver"), key="sfd_solver",
                      format_func=lambda k: solvers.SOLVER_LABELS[k], **BOUND)
c4, c5, c6 = st.columns(3)
M = int(c4.slider("M (extra teacher steps per student step)", 0, 8, default("sfd_M"), key="sfd_M", **BOUND))
afs = c5.toggle("analytical first step (AFS)", key="sfd_afs",
                help="First step d = x/√(1+t²), no network call: NFE = n − 2 instead of n − 1.", **BOUND)
budget = int(c6.select_slider("budget (trajectories)", SFD_BUDGETS, default("sfd_budget"), key="sfd_budget",
                              **BOUND))
lr = 1e-3 if teacher == "mixture-2d" else SFD_LR
try:
    cfg = DistillConfig(nfe=nfe, algorithm=algorithm, solver=solver, M=M, afs=afs, budget=budget, lr=lr)
    st.caption(f"Student grid: {cfg.n} timestamps {solvers.time_grid(cfg.n).round(4).tolist()}; teacher "
               f"grid: {(M + 1) * (cfg.n - 1) + 1} timestamps. "
               + ("SFD-v trains n ∈ {" + ", ".join(str(cfg.steps_for(k)) for k in SFDV_NFE)
                  + "} and is evaluated at every NFE 2–5." if algorithm == "sfd-v" else ""))
except ValueError as exc:
    st.warning(untrusted.text(exc))
    cfg = None
store = run_store()     # None: one message saying which path is wrong and what to do
st.button("Train student", key="sfd_train", type="primary",
          disabled=available[teacher] is not None or cfg is None or store is None,
          on_click=submit, args=(teacher, preset, cfg, folder))
job_panel("sfd_job", what="Run", key="sfd", show_result=show_run)
if st.session_state.get("sfd_job") is None:
    st.caption("No run started in this session yet: press **Train student**.")
    reference_view.sfd_run(folder, teacher)      # meanwhile: the shipped reference run

st.subheader("Quality vs fine-tuning time")
if store is not None:
    store.recover()                  # runs of processes that died since (e.g. a killed CLI run)
rows = pd.DataFrame(history.runs_table(store, teacher) if store is not None else [])
if rows.empty:
    rows = reference_view.sfd_quality_rows(folder, teacher)
if rows.empty:
    st.caption("No finished runs for this teacher in the run store yet.")
else:
    figure(quality_vs_seconds(rows, FD_LABEL), "sfd_quality_vs_seconds", rows)
    st.caption("One point per stored run (plain solvers at 0 s). The paper's teaser plots FID against "
               "GPU hours; here: latent FD (not image FID) against CPU seconds.")

if teacher.startswith("latent") and available[teacher] is None:
    st.subheader(f"Decoded faces at NFE {nfe}")
    samples = history.latest_samples(store, teacher, nfe, afs) if store is not None else None
    from_reference = not samples
    samples = samples or reference_view.sfd_samples(folder, teacher, nfe, afs)
    scale = face_view.tile_control("sfd_tile")
    if not (latents.assets_dir(folder) / latents.VAE_FILE).is_file():
        st.info(f"Faces need the VAE assets: {latents.assets_dir(folder) / latents.VAE_FILE} is missing.")
    else:
        if samples:
            rows = {k: samples[k] for k in FACE_ORDER if k in samples}
            labels = {**METHOD_LABELS, "teacher": f"teacher, {sfd_lab.TEACHER_REF_NFE} NFE"}
            png = shared_result(latents.rows_png, latents.assets_stamp(folder), rows, labels, scale,
                                label="Decoding the faces")
            if png is not None:
                st.image(png, output_format="PNG", width="content")
            source = ("the shipped reference run (train a student to see yours)." if from_reference else
                      "the newest finished run of that algorithm with this teacher, NFE and AFS setting.")
            st.caption(f"Same starting noise in every row; each student row is {source}")
        else:
            st.caption("Train a student with these settings to see its faces next to the teacher's.")

if cfg is not None:
    show_cli(sfd_cli.to_argv(sfd_cli.SfdTrainSpec(teacher, preset, cfg)))
