"""Theory vs practice (THEORY §8): merge plans trained on a (nonlinear) teacher, judged direction by
direction against the closed form.

Every control is bound to the URL (keys prefixed ``tp_``, e.g.
``/practice?tp_teacher=mixture-2d&tp_T=16&tp_student=mlp``; checked by ``url_params.OWN["practice"]``,
also for lessons). The run itself (``opmerge_core.practice.experiment.run``) goes to the compute
backend, followed in the job panel (progress, Cancel); until a run of this session with these settings
has finished, the shipped reference run of the chosen teacher fills the page (labelled as such). This
page only submits, picks what to show and draws (``figures.practice``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from opmerge_core.backend import compute
from opmerge_core.cli import practice as practice_cli
from opmerge_core.figures import practice as fig
from opmerge_core.latent import latents
from opmerge_core.practice import experiment, reference
from opmerge_core.practice.spec import (
    PLAN_CHOICES,
    PLAN_LABELS,
    STUDENT_LABELS,
    STUDENTS,
    TEACHER_LABELS,
    TEACHERS,
    PracticeSpec,
    agreement_is_a_count,
)
from opmerge_core.sfd import mixtures
from opmerge_dashboard import faces as face_view
from opmerge_dashboard import untrusted
from opmerge_dashboard.backend import backend, shared_result
from opmerge_dashboard.jobs import job_panel, run_store, start
from opmerge_dashboard.output import csv_download, figure, show_cli
from opmerge_dashboard.params import BOUND, WARN, default
from opmerge_dashboard.url_params import PRACTICE_BUDGETS, PRACTICE_SEEDS, PRACTICE_T

FACE_GAIN = 5.0


@st.cache_data(max_entries=4, ttl=300, show_spinner=False)
def shipped(folder: str) -> tuple[reference.Reference | None, str | None]:
    try:
        return reference.load(folder), None
    except ValueError as exc:
        return None, str(exc)


def submit(spec: PracticeSpec) -> None:
    """Start the run on the compute backend; a run of this session still going for other settings is
    cancelled first (only the newest is shown). Refused: ``job_panel`` says why, in one line."""
    old = backend().get(st.session_state.pop("tp_job", -1))
    if old is not None and not old.done:
        old.cancel()
    start("tp_job", experiment.KIND, experiment.run, spec, 1, params=spec.as_dict(),
          finalize=experiment.record)
    st.session_state["tp_job_spec"] = spec


def finished(job: compute.Job) -> None:
    st.success(f"Run {job.id} done in {job.elapsed:.0f} s: yours is shown below.")


def controls() -> tuple[PracticeSpec | None, DeltaGenerator]:
    """The page's controls, every one bound to the URL (``url_params.OWN["practice"]`` checks the URL and
    seeds them before they exist; ``default`` is the registry's). Options are the plain codes: a bound
    widget writes its option's text into the URL, so there is no format_func (URLs stay readable); the
    descriptions are in the help texts. Returns the spec and the place beside the Run button (for what
    is shown: the reference run or yours)."""
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    teacher = c1.selectbox("teacher", TEACHERS, index=TEACHERS.index(default("tp_teacher")), key="tp_teacher",
                           **BOUND,
                           help=" · ".join(f"{k}: {v}" for k, v in TEACHER_LABELS.items()))
    presets = list(mixtures.PRESETS)
    preset = c2.selectbox("2-D mixture", presets, index=presets.index(default("tp_preset")), key="tp_preset",
                          **BOUND,
                          disabled=teacher != "mixture-2d",
                          help=" · ".join(f"{k}: {v}" for k, v in mixtures.PRESET_LABELS.items())
                          + " — two-blobs has one eigenvalue below 1 and one above.")
    T = c3.select_slider("T (teacher steps)", PRACTICE_T, value=default("tp_T"), key="tp_T", **BOUND)
    student = c4.segmented_control("students", STUDENTS, default=default("tp_student"), key="tp_student",
                                   **BOUND,
                                   help=" · ".join(f"{k}: {v}" for k, v in STUDENT_LABELS.items()))
    c5, c6, c7 = st.columns([7, 2, 2], vertical_alignment="bottom")       # every plan's chip visible
    chosen = c5.multiselect("plans", PLAN_CHOICES, default=default("tp_plans"), key="tp_plans", **BOUND,
                            help=" · ".join(f"{k}: {v}" for k, v in PLAN_LABELS.items())
                            + " — dp: each direction's own optimal plan for linear students, the shared "
                              "optimal plan for MLP students (THEORY §4).")
    seeds = c6.select_slider("seeds", PRACTICE_SEEDS, value=default("tp_seeds"), key="tp_seeds", **BOUND,
                             help="Training seeds 0 … n − 1, each with its own evaluation z_T: every number "
                                  "is mean ± sd over them.")
    budget = c7.select_slider("S per merge", PRACTICE_BUDGETS, value=default("tp_S"), key="tp_S",
                              **BOUND,
                              help="The theory's shrinkage budget S = 2·lr·steps of every merge: plain SGD, "
                                   "200 steps, lr = S/400, the same for every merge (THEORY §2, §6).")
    try:
        spec = PracticeSpec(teacher=teacher, T=int(T), plans=tuple(chosen), student=student or "linear",
                            seeds=tuple(range(int(seeds))), budget=float(budget), preset=preset)
    except ValueError as exc:
        spec = None
        st.warning(untrusted.text(exc), icon=WARN)
    store = run_store()     # None: one message saying which path is wrong and what to do
    shown, c8 = st.columns([6, 1], vertical_alignment="center")
    c8.button("Run", key="tp_run", type="primary", icon=":material/play_arrow:",
              disabled=spec is None or store is None,
              on_click=submit, args=(spec,), width="stretch",
              help="Train every plan's students and judge them, on the compute backend: the default latent "
                   "run takes a few minutes on a 2-core CPU, the 2-D and Gaussian runs under one.")
    return spec, shown


def current_run(spec: PracticeSpec | None) -> dict | None:
    """This session's finished run for ``spec``, else None. Its job panel (progress, Cancel; or why it
    was refused) shows while it runs, even if the controls have moved on since."""
    job = backend().get(st.session_state.get("tp_job", -1))
    same = spec is not None and st.session_state.get("tp_job_spec") == spec
    if same or (job is not None and not job.done):
        job_panel("tp_job", what="Experiment", key="tp", show_result=finished)
    if not same or job is None or job.status != compute.Status.DONE or not isinstance(job.result, dict):
        return None
    return job.result


def verdict(result: dict) -> None:
    """The headline, four numbers, then where the theory fails (bullets)."""
    parts = result.get("verdict_parts") or [result["verdict"]]
    st.markdown(f"**Verdict.** {parts[0]}")
    ag = result.get("agreement")
    metrics: list[tuple[str, str, str]] = []          # (label, value, help), left to right
    if ag and ag.get("value") is not None:
        how = ("BOOT vs vanilla: among the directions where the measured difference is significant (paired "
               "t-test over seeds, 5%), {} where the better plan is the one the theory predicts.")
        if agreement_is_a_count(ag["directions"]):
            metrics.append(("agreement", f"{ag['agree']} of {ag['resolved']}", how.format("the number")))
        else:
            lo, hi = ag["ci"]
            metrics += [("agreement", f"{ag['value']:.0%}", how.format("the share")),
                        ("95% CI", f"{lo:.0%} – {hi:.0%}", "Percentile bootstrap over the seeds.")]
        metrics.append(("resolved", f"{ag['resolved']} of {ag['directions']}",
                        f"Directions with a significant measured difference; {ag['ties']} where the theory "
                        "predicts no difference are not counted."))
    metrics.append(("run time", f"{result['seconds']['total']:.0f} s",
                    f"On {result['device']}, {len(result['spec']['seeds'])} seeds, every plan."))
    for column, (label, value, help_) in zip(st.columns(4), metrics, strict=False):
        column.metric(label, value, help=help_)
    if len(parts) > 1:
        st.markdown("\n".join(f"- {p}" for p in parts[1:]))


def note(notice: str, how: str | None = None) -> None:
    """What to notice beside a figure (from the run's numbers), then how to read it."""
    st.markdown(notice)
    if how:
        st.caption(how)


def faces(result: dict, samples: dict, folder: str) -> None:
    if not (latents.assets_dir(folder) / latents.VAE_FILE).is_file():
        st.info("Faces need the VAE assets (assets/vae_celeba64_fp16.pt is missing).")
        return
    rows = {"teacher": samples["teacher"], **{p: samples[p] for p in result["w2"] if p in samples}}
    labels = {"teacher": f"teacher, {result['teacher']['teacher_nfe']} steps",
              **{p: fig.plan_label(result, p) for p in result["w2"]}}
    scale = face_view.tile_control("tp_tile")
    png = shared_result(experiment.faces_png, latents.assets_stamp(folder), rows, labels, scale, FACE_GAIN,
                label="Decoding the faces")
    if png is not None:
        st.image(png, output_format="PNG", width="content")
        note(fig.notice_faces(result, FACE_GAIN),
             "One column per z_T (seed 0's), the same in every row; each plan's row is its one-step student, "
             "decoded by the VAE; below, each plan minus the teacher.")


def draw(result: dict, samples: dict, folder: str) -> None:
    verdict(result)
    st.subheader("Direction by direction")
    figure(fig.w2_vs_lambda(result), "practice_w2_per_direction",
           lambda: pd.DataFrame(experiment.per_direction_rows(result)))
    note(fig.notice_w2(result),
         "Each point is one eigen-direction of the data: the 1-D W2 between the one-step student's samples "
         "and the teacher's (T steps from the same z_T), projected on that direction; error bars ± sd over "
         "seeds. Lines: the closed form r_T |S − P| of THEORY §4 at the same budget S.")
    diff = fig.boot_minus_vanilla(result)
    if diff is not None:
        figure(diff, "practice_boot_minus_vanilla")
        note(fig.notice_boot_vanilla(result))
    st.subheader("Quality vs compute")
    table = fig.compute_table(result)
    st.dataframe(table, hide_index=True, width="stretch", key="tp_compute_table",   # the plan stays in view
                 column_config={"plan": st.column_config.TextColumn(pinned=True)})   # when it scrolls
    csv_download(lambda: pd.DataFrame.from_dict(result["metrics"], orient="index").rename_axis("plan")
                 .reset_index(), "practice_quality_vs_compute")
    figure(fig.quality_vs_compute(result), "practice_quality_vs_compute_plot")
    note(fig.notice_compute(result),
         f"Per seed, as if the plan were trained alone; rounds: students that must train one after another. "
         f"FD: Fréchet distance of Gaussian fits against {result['teacher']['fd_reference']}; floor: what "
         "exact samples score.")
    if result["teacher"]["name"] == "latent-mlp":
        st.subheader("Decoded faces, every plan from the same z_T")
        faces(result, samples, folder)
    elif result["teacher"]["name"] == "mixture-2d" and "teacher" in samples:
        st.subheader("Densities, every plan from the same z_T")
        figure(fig.density_grid(result, samples), "practice_densities")
        note(fig.notice_densities(result))
    st.subheader("Why: the operators and the merges")
    figure(fig.gains(result), "practice_gains")
    note(fig.notice_gains(result),
         "Per direction, the least-squares gain of each one-step map z_T → z_0 against the closed form's "
         "operator (THEORY §2–§3); for the teacher, against the composite P (THEORY §1, eq. 8).")
    with st.expander("Every merge: how nonlinear its target is, how much of it the student learned"):
        st.dataframe(fig.merges_table(result), hide_index=True, width="stretch", key="tp_merges")
        st.caption("Nonlinear share: the part of the target a per-direction linear map cannot explain "
                   "(THEORY §7). ρ: the fraction of the way from A(0) to the target the student went, "
                   "measured vs 1 − exp(−S E[u_s²]) (THEORY §2); medians over directions.")


st.title("Theory vs practice")
st.caption("Does the linear-Gaussian theory pick the winning merge plan when the teacher is nonlinear? Every "
           "merge is one student with the same budget S; the one-step students are judged in every "
           "eigen-direction of the data (THEORY §8).")

folder = str(latents.assets_dir())
spec, beside_run = controls()
result = current_run(spec)
samples = result.get("samples", {}) if result else {}
if result is None and spec is not None:
    ref, problem = shipped(folder)
    if problem:
        st.caption(f"The shipped reference run could not be read: {untrusted.text(problem)}")
    shown = ref.run_for(spec.teacher, spec.student) if ref else None
    if shown is not None:
        ref_spec = shown["spec"]
        same = PracticeSpec.from_dict(ref_spec) == spec
        beside_run.info(f"**{ref.label}**, " + ("these settings" if same else
                f"T = {ref_spec['T']}, plans {', '.join(ref_spec['plans'])}, {ref_spec['student']} students, "
                f"{len(ref_spec['seeds'])} seeds, S = {ref_spec['budget']:g}")
                + f" (rebuilt by `{ref.command}`). **Run** trains yours.", icon=":material/bookmark:")
        result = shown
        samples = ref.samples.get(f"{spec.teacher}/{shown['spec']['student']}", {})
    else:
        beside_run.caption("No run with these settings yet: press **Run**.")
if result is not None:
    draw(result, samples, folder)
if spec is not None:
    show_cli(practice_cli.to_argv(spec))
