"""The shipped reference runs (``opmerge_core.sfd.reference``) on the SFD page and in the CelebA trainer
check, shown until the user has a run of their own — so a talk starts with a picture, not a wait.

Always labelled as the reference run, with the command that regenerates it. Metrics are shown as the
CLI wrote them: keys a newer CLI adds appear, keys an older one lacked are simply not shown.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opmerge_core.sfd import reference
from opmerge_core.theory.setting import Setting
from opmerge_dashboard import untrusted
from opmerge_dashboard.output import figure

FD_PREFIX = "latent_fd"


LOADERS = {"sfd": reference.load_sfd, "celeba": reference.load_celeba}


@st.cache_data(max_entries=8, ttl=300, show_spinner=False)
def _load(kind: str, folder: str):
    """(reference or None, problem or None) for ``kind`` in LOADERS."""
    try:
        return LOADERS[kind](folder), None
    except ValueError as exc:
        return None, str(exc)


def _sfd(folder: str) -> tuple[reference.SFDReference | None, str | None]:
    return _load("sfd", folder)


def _celeba(folder: str) -> tuple[reference.CelebAReference | None, str | None]:
    return _load("celeba", folder)


def _label(ref, what: str) -> None:
    st.info(f"**{ref.label}** — {what}. Regenerate with `{ref.command}`.", icon=":material/bookmark:")


def _problem(message: str | None) -> None:
    if message:
        st.caption(f"The shipped reference run could not be read: {untrusted.text(message)}")


def _matching_runs(ref: reference.SFDReference, teacher: str) -> list[dict]:
    return [r for r in ref.runs if r.get("params", {}).get("teacher") == teacher]


def sfd_run(folder: str, teacher: str) -> None:
    """Summary of the reference runs for this teacher: latent FD of every run and its baselines
    (every ``latent_fd*`` key present), then the loss curve of the first."""
    ref, problem = _sfd(folder)
    _problem(problem)
    runs = _matching_runs(ref, teacher) if ref else []
    if not runs:
        return
    _label(ref, "what a finished run shows; press **Train student** for your own")
    rows = []
    for r in runs:
        p, m = r.get("params", {}), reference.scalars(r["metrics"])
        rows.append({"algorithm": p.get("algorithm"), "NFE": p.get("nfe"), "budget": p.get("budget"),
                     "fine-tuning s": m.get("finetune_seconds"),
                     **{k: v for k, v in m.items() if k.startswith(FD_PREFIX)}})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="sfd_reference_table")
    st.caption("latent_fd: the student; latent_fd_solver: the plain solver at the same NFE; "
               "latent_fd_teacher: the teacher at many steps (other latent_fd_* columns as the CLI reports "
               "them). " + runs[0]["command"])
    curve = runs[0]["metrics"].get("loss_curve")
    if isinstance(curve, list) and len(curve) >= 2:
        from opmerge_core.figures.sfd import loss_curve
        figure(loss_curve([float(v) for v in curve]), "sfd_reference_loss",
                      key="fig_sfd_reference_loss")


def sfd_quality_rows(folder: str, teacher: str) -> pd.DataFrame:
    """Rows of the quality-vs-seconds plot from the reference runs (labelled), or an empty frame."""
    ref, _ = _sfd(folder)
    rows = pd.DataFrame(reference.sfd_rows(ref, teacher) if ref else [])
    if not rows.empty:
        _label(ref, "no run of yours is finished yet, so the plot shows the shipped runs")
    return rows


def sfd_samples(folder: str, teacher: str, nfe: int, afs: bool) -> dict:
    """Reference latents (teacher, solver, each algorithm) when the reference matches the settings."""
    ref, _ = _sfd(folder)
    runs = [r for r in _matching_runs(ref, teacher) if r["params"].get("nfe") == nfe
            and bool(r["params"].get("afs")) == afs] if ref else []
    if not runs or not ref.samples:
        return {}
    _label(ref, "faces of the shipped runs; yours replace them when a run with these settings finishes")
    return dict(ref.samples)


def celeba_trained(setting: Setting, folder: str, labels: dict[str, str]) -> None:
    """The reference trainer check when its setting is the current one."""
    ref, problem = _celeba(folder)
    _problem(problem)
    if ref is None:
        return
    s = ref.setting
    shipped = (s.get("T"), s.get("S"), s.get("schedule"), s.get("init"), s.get("surrogate"))
    if shipped != (setting.T, setting.S, setting.schedule, setting.init, setting.surrogate):
        st.caption(f"A shipped reference run exists for T = {s.get('T')}, S = {s.get('S')} "
                   f"({s.get('schedule')}, init {s.get('init')}, surrogate {s.get('surrogate')}).")
        return
    _label(ref, "every strategy trained at exactly these settings; press **Train every strategy** "
                "for your own")
    rows = reference.celeba_rows(ref, labels)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="celeba_reference_table")
