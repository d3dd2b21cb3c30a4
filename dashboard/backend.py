"""The compute backend (``opmerge_core.backend.compute``) from the dashboard: heavy results with a
progress placeholder while they compute, the server's warm-up and this session's job lease."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import uuid

import streamlit as st

from opmerge_core.backend import compute
from opmerge_core.theory import dp
from opmerge_dashboard import untrusted
from opmerge_dashboard.params import ERROR

WAIT_S = float(os.environ.get("OPMERGE_WAIT_S", "0.3"))   # wait this long before showing a placeholder
# every worker of the embedded cluster runs its DPs in the compiled kernels, loaded as it starts
WORKER_SETUP = functools.partial(dp.load_kernels, warm=True)


def backend() -> compute.Backend:
    """The process-wide compute backend (a Dask cluster): every session's heavy work goes there."""
    return compute.default_backend(WORKER_SETUP)


def shared_result(fn, *args, label: str):
    """``fn(*args)`` computed on the backend: the result, or None while it computes — then a progress
    placeholder is shown and the page reruns by itself when the result is ready. Identical requests
    of all sessions share one computation; results are cached for everyone."""
    try:
        job = backend().cached(fn, *args)
    except ValueError as exc:                     # e.g. an unreachable scheduler
        st.error(f"{label}: {untrusted.text(exc)}", icon=ERROR)
        return None
    if not job.done:
        job.wait(WAIT_S)
    if job.status == compute.Status.DONE:
        return job.result
    if job.done:
        st.error(f"{label} failed: {untrusted.text(job.error)}", icon=ERROR)
        return None
    _pending(job.id, label)
    return None


@st.fragment(run_every=0.5)
def _pending(job_id: str, label: str) -> None:
    job = backend().get(job_id)
    if job is None or job.done:
        st.rerun()
    where = (f"queued (position {job.queue_position})" if job.status == compute.Status.QUEUED else
             f"computing on the cluster, {job.elapsed:.0f} s")
    st.progress(min(max(job.progress, 0.0), 1.0), text=f":material/hourglass_top: {label} — {where} …")


@functools.cache                    # once per process (a dict lookup on every rerun)
def warm_up() -> threading.Thread:
    """Once per server process: start the compute backend in the background, so the cluster is up
    by the time the first heavy request arrives, load the compiled DP kernels (the in-process DPs of
    every rerun use them) and import torch (the CelebA and SFD pages decode faces with the VAE), so no
    student's rerun waits behind those imports."""
    def start() -> None:
        dp.load_kernels(warm=True)
        backend()
        import opmerge_core.latent.latents  # noqa: F401  torch: importing it later holds the GIL a long while

    thread = threading.Thread(target=start, name="opmerge-warm-up", daemon=True)
    thread.start()
    return thread


def session_owner() -> str:
    """One id per browser session: its jobs are leased to it and cancelled when it goes away."""
    return st.session_state.setdefault("job_owner", uuid.uuid4().hex)


def keep_jobs_alive() -> None:
    """Renew this session's job lease from every page (closing the tab stops the renewals). Only a
    session that has started jobs has a lease: the others skip the fragment (elements cost server
    CPU on every rerun)."""
    if "job_owner" in st.session_state:
        _renew_lease()


@st.fragment(run_every=30)
def _renew_lease() -> None:
    backend().touch(session_owner())


def prefetch(*calls: tuple) -> None:
    """Submit heavy ``(fn, *args)`` calls to the backend without waiting, so a page's heavy results
    compute side by side on the workers while the page waits for the first of them."""
    with contextlib.suppress(ValueError):          # an unreachable scheduler: ``shared_result`` says so
        for fn, *args in calls:
            backend().cached(fn, *args)
