"""The job panel of every page that runs a job on the compute backend (Train, CelebA, SFD, Mixtures).

One fragment polls the job twice a second and shows where it is: queued (its position), running
(progress, the latest loss, a live loss curve, Cancel), failed, cancelled or done. When it is done the
page's ``show_result`` draws the result in the panel and/or, with ``rerun_when_done``, the whole page
reruns once so that the page body can draw it. Polling also renews this session's job lease.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from opmerge_core.infra import compute
from opmerge_dashboard.backend import backend, session_owner
from opmerge_dashboard.figures.train import live_loss
from opmerge_dashboard.output import plotly_config
from opmerge_dashboard.params import WARN

POLL_S = 0.5
_DRAWN = "_jobs_drawn"      # ids of finished jobs whose page has rerun once to draw them


def _detail(info: dict) -> str:
    """What a running job reports besides its progress (wave, student, loss)."""
    parts = [f"wave {info['wave']}/{info['waves']}" if "wave" in info else "",
             f"{info['student']} student" if "student" in info else "",
             f"loss {info['loss']:.4g}" if "loss" in info else ""]
    return "".join(f" · {p}" for p in parts if p)


def _running(job: compute.Job, what: str, key: str) -> None:
    st.progress(min(job.progress, 1.0), text=f"{what} (run {job.id}): {100 * job.progress:.0f}%"
                + _detail(job.info))
    st.button("Cancel", key=f"{key}_cancel_{job.id}", on_click=job.cancel, icon=":material/stop:")
    if len(job.losses) >= 2:
        st.plotly_chart(live_loss(job.losses), key=f"{key}_live_{job.id}",
                        config=plotly_config(f"{key}_live_loss"))


@st.fragment(run_every=POLL_S)
def job_panel(job_id: int | None, *, what: str, key: str,
              show_result: Callable[[compute.Job], None] | None = None,
              rerun_when_done: bool = False) -> None:
    """The status of job ``job_id`` (nothing if there is none). ``what`` names it in the messages
    ("Training", "Trainer run"); ``key`` prefixes its widget keys (``{key}_cancel_{id}``)."""
    job = backend().get(job_id) if job_id is not None else None
    if job is None:
        return
    backend().touch(session_owner())
    if job.status == "queued":
        st.info(f"{what} (run {job.id}) is queued: position {job.queue_position} — runs start in order, "
                f"{backend().n_workers} at a time.")
    elif job.status == "running":
        _running(job, what, key)
    elif job.status == "failed":
        st.warning(f"{what} (run {job.id}) failed: {job.error}", icon=WARN)
    elif job.status == "cancelled":
        st.info(f"{what} (run {job.id}) was cancelled.")
    else:
        if show_result is None:
            st.success(f"{what} (run {job.id}) done.")
        else:
            show_result(job)
        drawn = st.session_state.setdefault(_DRAWN, set())
        if rerun_when_done and job.id not in drawn:
            drawn.add(job.id)
            st.rerun()
