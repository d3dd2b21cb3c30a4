"""CelebA latents: merge strategies per eigen-direction of real VAE latents, decoded to faces (THEORY §6).

T, S, schedule, init and surrogate come from the shared, URL-bound sidebar controls. The comparison
(``opmerge_core.latent.celeba``) and the trainer run on the compute backend; this page draws and exports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from opmerge_core.backend import compute
from opmerge_core.cli import celeba as celeba_cli
from opmerge_core.figures.celeba import latent_spectrum, w2_split_bars
from opmerge_core.latent import celeba, latents
from opmerge_core.theory.planner import REGIME_LABELS
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shared_plan import SHARED_T_MAX
from opmerge_dashboard import faces as face_view
from opmerge_dashboard import reference_view
from opmerge_dashboard.backend import backend, shared_result
from opmerge_dashboard.jobs import job_panel, start
from opmerge_dashboard.output import csv_download, figure, show_cli
from opmerge_dashboard.params import BOUND, default, params
from opmerge_dashboard.url_params import FACES_MAX, FACES_MIN, FACES_SEED_MAX, GAIN_MAX, GAIN_MIN, GAIN_STEP

TRAIN_STEPS = 200


# ---- cached core calls --------------------------------------------------------------------------
@st.cache_resource(max_entries=2, show_spinner="Loading the VAE and the latent statistics …")
def load(folder: str):
    return latents.load_assets(folder)


def comparison(setting: Setting, folder: str) -> celeba.Comparison | None:
    """Every method on every latent direction (the compute backend; None while it computes)."""
    _, stats = load(folder)
    return shared_result(celeba.compare, setting, stats.eigvals, setting.T <= SHARED_T_MAX,
                         label=f"Planning all {stats.eigvals.size} latent directions at T = {setting.T} "
                               "(shared plan included)")


# ---- trainer runs on the compute backend (never in the script thread) --------------------------
KIND = "celeba_train"


def start_training(setting: Setting, folder: str) -> None:
    comp = comparison(setting, folder)
    if comp is None:
        return
    params = {"T": setting.T, "S": setting.S, "schedule": setting.schedule, "init": setting.init,
              "surrogate": setting.surrogate, "steps": TRAIN_STEPS, "d": int(comp.lam.size)}
    start("celeba_job", KIND, celeba.train_job, comp, TRAIN_STEPS, params=params)
    st.session_state["celeba_job_key"] = setting


def show_trained(job: compute.Job) -> None:
    """A finished trainer run: its time and every strategy's trained W2 next to the theory."""
    seconds = (job.finished or 0) - (job.started or 0)
    st.success(f"Trained every strategy in {seconds:.1f} s (run {job.id}; SGD, S_eff = 2·lr·steps = S).")
    theory = job.result["theory"]
    rows = [{"method": celeba.METHOD_LABELS[m], "W2 (theory)": theory[m]["w2"],
             **{f"{k} (trained)": v for k, v in w.items()}} for m, w in job.result["w2"].items()]
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, width="stretch", key="celeba_trained_table")
    csv_download(table, "celeba_w2_trained")


def trained_run(setting: Setting) -> compute.Job | None:
    """The finished trainer run of this session for these settings, or None."""
    job = backend().get(st.session_state.get("celeba_job", -1))
    ok = (job is not None and job.status == compute.Status.DONE
          and st.session_state.get("celeba_job_key") == setting)
    return job if ok and isinstance(job.result, dict) and "operators" in job.result else None


# ---- the page -----------------------------------------------------------------------------------
st.title("CelebA latents")
st.caption("Real faces: 17,476 CelebA images encoded by an MSSIM-VAE into 128-dim latents. The latent "
           "covariance Σ = U Λ Uᵀ splits into independent eigen-directions (THEORY §1), each with its own "
           "λ_i — so each direction has its own optimal merge plan.")

p = params()
folder = str(latents.assets_dir())
try:
    _, stats = load(folder)          # the VAE too: a broken asset is reported here, before any job
except ValueError as exc:
    st.error(str(exc))
    st.stop()

c1, c2, c3 = st.columns(3)
n = c1.slider("faces per row", FACES_MIN, FACES_MAX, default("celeba_samples"), key="celeba_samples", **BOUND)
seed = int(c2.number_input("seed of z_T", 0, FACES_SEED_MAX, default("celeba_seed"), step=1,
                           key="celeba_seed", **BOUND))
gain = float(c3.slider("difference amplification", GAIN_MIN, GAIN_MAX, default("celeba_gain"), step=GAIN_STEP,
                       key="celeba_gain", **BOUND))
c4, c5 = st.columns([3, 4])
scale = face_view.tile_control("celeba_tile", c4)
columns = face_view.column_control(n, "celeba_columns", c5)
if p.T > SHARED_T_MAX:
    st.info(f"T = {p.T} > {SHARED_T_MAX}: the shared DP plan is skipped (its Pareto DP is bounded to "
            f"T ≤ {SHARED_T_MAX}); everything else is shown.")

comp = comparison(p.setting, folder)
if comp is None:
    st.stop()                 # its placeholder reruns the page when the plans are ready
lam = comp.lam
m1, m2, m3, m4 = st.columns(4)
m1.metric("latent directions", f"{lam.size}")
m2.metric("fraction of λ below 1", f"{comp.frac_below_1:.0%}")
m3.metric("λ range", f"{lam.min():.3g} … {lam.max():.3g}")
counts = {r: comp.regimes.count(r) for r in ("boot", "hybrid", "mixed", "vanilla") if r in comp.regimes}
m4.metric("optimal regimes", " · ".join(f"{REGIME_LABELS[r]} {k}" for r, k in counts.items()))

spectrum = pd.DataFrame({"index": np.arange(1, lam.size + 1), "lam": lam, "regime": comp.regimes})
figure(latent_spectrum(lam, comp.regimes, p.T), "celeba_spectrum", spectrum)

st.subheader("Faces: teacher, exact flow map, every strategy — and their differences from the teacher")
st.caption("Each column is one z_T ~ N(0, diag(r_T²)) in the eigenbasis, mapped by each method's "
           "one-step operator, rotated back (U), mean added, decoded. Lower rows: method − teacher, "
           "×gain, grey = equal.")
done = trained_run(p.setting)
if done is not None:
    st.caption(f"With trainer run {done.id}: below each strategy's theory row, its **trained** students "
               "(the operators SGD actually reached), from the same z_T.")
png = shared_result(celeba.face_grid_png, latents.assets_stamp(folder), comp.operators_only(), n, seed, gain,
                    columns, scale, done.result["operators"] if done else None, label="Decoding the faces")
if png is not None:
    st.image(png, width="content", output_format="PNG")
    st.download_button("PNG: face grid", png, file_name="opmerge_celeba_grid.png", mime="image/png",
                       key="png_celeba_grid", on_click="ignore", icon="⬇️")

st.subheader("W2 error per method (theory)")
table = pd.DataFrame(comp.table())
COLUMNS = {"label": "method", "w2": "W2 (all)", "w2_low": "W2 (λ < 1)", "w2_high": "W2 (λ ≥ 1)"}
st.dataframe(table.drop(columns="method").rename(columns=COLUMNS), hide_index=True, width="stretch",
             key="celeba_w2_table")
csv_download(table, "celeba_w2")
figure(w2_split_bars(table), "celeba_w2_bars")
notes = []
if not comp.dp_exact:
    notes.append("some per-direction DP plans lie in the mixed band (best known, not proven optimal)")
if not comp.shared_exact:
    notes.append("the shared plan's Pareto fronts were pruned heuristically (not proven optimal)")
if notes:
    st.caption("Note: " + "; ".join(notes) + ".")

st.subheader("Check with the trainer")
st.caption(f"Trains every merge of every strategy with SGD ({TRAIN_STEPS} steps, lr = S / (2·steps)) on "
           "the compute backend (queued if others are training); at T = 64 about a minute on this CPU.")
st.button("Train every strategy", key="celeba_train", on_click=start_training, args=(p.setting, folder),
          disabled=p.model.S <= 0)
if st.session_state.get("celeba_job_key") == p.setting:
    job_panel("celeba_job", what="Trainer run", key="celeba", show_result=show_trained)
else:
    st.caption("No trainer run for these settings yet: press **Train every strategy**.")
    reference_view.celeba_trained(p.setting, folder, celeba.METHOD_LABELS)   # the shipped run

st.subheader("What to notice")
st.markdown(
    "- Most latent directions have **λ < 1**: alone, they want **sequential BOOT**; the few large-λ "
    "directions want **vanilla**. No single named strategy is right for all of them.\n"
    "- **DP per direction** is the lower bound; the **shared DP plan** is the best single plan and beats "
    "every named strategy.\n"
    "- The teacher itself shrinks the signal (P ≤ r_0/r_T, THEORY §1): compare its row with the exact flow "
    "map. The difference rows show *where* in the face each strategy's error lands.")
show_cli(celeba_cli.to_argv(celeba_cli.CompareSpec(p.setting, n, seed, gain)))
