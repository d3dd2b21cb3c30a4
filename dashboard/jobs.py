"""The job panel of every page that runs a job on the compute backend (Train, CelebA, SFD, Mixtures).

``start`` submits a run of this browser session (leased to it) and keeps its id in the session; a run
the backend refuses (this session has its share of runs already, the queue is full, the run store is
damaged) is one message where its panel would be, saying what to do. ``run_store`` is
the store for a page that lists runs, or one plain message saying which path is wrong and what to do.

While a job is queued or running, a fragment polls it twice a second and shows where it is (its
queue position; progress, the latest loss, a live loss curve, Cancel) and renews this session's job
lease. When it finishes, the whole page reruns once and draws it without polling: failed, cancelled,
or done (the page's ``show_result``, or the page body itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from opmerge_core.backend import compute
from opmerge_core.figures.train import live_loss
from opmerge_core.store.runstore import RunStore, StoreError
from opmerge_dashboard import untrusted
from opmerge_dashboard.backend import backend, session_owner
from opmerge_dashboard.output import plotly_config
from opmerge_dashboard.params import ERROR, WARN

POLL_S = 0.5
_DRAWN = "_jobs_drawn"      # finished jobs whose page has rerun once to draw them
_REFUSED = "_refused_"      # + a job's state key: why its last submission was refused


def start(state_key: str, kind: str, fn: Callable, *args: Any, **options: Any) -> compute.Job | None:
    """Submit the run ``fn(*args, progress=, cancel=)`` for this session (``Backend.submit`` options
    pass through) and keep its id in ``st.session_state[state_key]``; None if the backend refused it —
    then ``job_panel(state_key, …)`` says why instead of drawing a job."""
    # the room's teacher sees and may cancel it (imported here: room_view imports this module)
    from opmerge_dashboard import room_view

    try:
        job = backend().submit(kind, fn, *args, owner=session_owner(), lease=True,
                               group=room_view.job_group(), **options)
    except ValueError as exc:           # JobRefused, StoreError: why and what to do, in one line
        st.session_state[_REFUSED + state_key] = str(exc)
        return None
    st.session_state.pop(_REFUSED + state_key, None)
    st.session_state[state_key] = job.id
    return job


@st.fragment(run_every=2 * POLL_S)
def room_runs(group: str) -> None:
    """A room's teacher: the room's runs waiting for or on the cluster, from every server process
    (the run store's record), each with Cancel, and Cancel all (students are told in their own job
    panel: "cancelled"). A run of another process is cancelled by it within a second or so."""
    try:
        active = backend().group_runs(group)
    except StoreError as exc:
        st.caption(f"The room's runs cannot be listed: {untrusted.text(exc)}")
        return
    if not active:
        st.caption("No run of this room is queued or running.")
        return
    for run in active:
        where = (f"queued, position {run['position']}" if run["position"] is not None
                 else f"{run['status']}, {100 * run['progress']:.0f}%")
        text, stop = st.columns([4, 1], vertical_alignment="center")
        text.markdown(f"Run {run['id']} · {untrusted.text(run['kind'])} · {where}"
                      + (" · cancelling" if run["cancel_requested"] else ""))
        stop.button("Cancel", key=f"room_cancel_{run['id']}", on_click=backend().cancel_run,
                    args=(run["id"],), disabled=bool(run["cancel_requested"]))
    st.button("Cancel all the room's runs", key="room_cancel_all", icon=":material/stop:",
              on_click=backend().cancel_group, args=(group,))


def run_store() -> RunStore | None:
    """The run store, or None after one error naming the path and what to do (a damaged, read-only or
    full ``OPMERGE_HOME``): the page shows what it can without it."""
    try:
        return backend().store
    except StoreError as exc:
        st.error(f"Runs cannot be started or listed here — {untrusted.text(exc, limit=500)}", icon=ERROR)
        return None


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


def job_panel(state_key: str, *, what: str, key: str,
              show_result: Callable[[compute.Job], None] | None = None) -> None:
    """The status of this session's job ``st.session_state[state_key]`` (started by ``start``; nothing
    if there is none), after the reason its last submission was refused, if it was. ``what`` names it
    in the messages ("Training", "Trainer run"); ``key`` prefixes its widget keys
    (``{key}_cancel_{id}``). Only a queued or running job is polled; a finished one is drawn by the
    page's own run."""
    refused = st.session_state.pop(_REFUSED + state_key, None)      # said once, after the click
    if refused:
        st.warning(f"{what} not started: {untrusted.text(refused, limit=500)}", icon=WARN)
    job_id = st.session_state.get(state_key)
    job = backend().get(job_id) if job_id is not None else None
    if job is None:
        return
    if job.done:
        _finished(job, what, show_result)
    else:
        _active(job.id, what, key, show_result)


def _finished(job: compute.Job, what: str, show_result: Callable[[compute.Job], None] | None) -> None:
    if job.status == compute.Status.FAILED:
        st.warning(f"{what} (run {job.id}) failed: {untrusted.text(job.error)}", icon=WARN)
    elif job.status == compute.Status.CANCELLED:
        st.info(f"{what} (run {job.id}) was cancelled.")
    elif show_result is None:
        st.success(f"{what} (run {job.id}) done.")
    else:
        show_result(job)


@st.fragment(run_every=POLL_S)
def _active(job_id: int, what: str, key: str, show_result: Callable[[compute.Job], None] | None) -> None:
    """A queued or running job, polled. Once it has finished it is drawn here and the whole page
    reruns (once per job) to draw the rest of its result, after which nothing polls it."""
    job = backend().get(job_id)
    if job is None:
        return
    if job.done:
        _finished(job, what, show_result)
        drawn = st.session_state.setdefault(_DRAWN, set())
        if job.id not in drawn:
            drawn.add(job.id)
            st.rerun()
        return
    backend().touch(session_owner())
    if job.status == compute.Status.QUEUED:
        position = job.queue_position
        where = f"position {position} in the line" if position else "its worker is starting it"
        st.info(f"{what} (run {job.id}) is queued: {where} — runs start in turn, one session after "
                f"another, {backend().run_slots} at a time.")
    else:
        _running(job, what, key)
