"""Five concurrent websocket sessions against a real `opmerge dashboard` all finish their reruns
without error, and each session's widget change reaches its own rerun (functional, not timed:
timings live in bench/bench_load.py)."""

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import stclient

SESSIONS = [(0.5, 16), (2.5, 32), (0.1, 16), (8.0, 32), (1.2, 16)]     # (λ, T) per student
MOVES = ["1", "0.3", "5"]                                                # λ values, formatted


def run_async(coro):
    """``asyncio.run`` in a thread of its own: the browser tests' sync Playwright keeps an event loop
    running in the main thread for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def caption(session: stclient.Session) -> str:
    """The sidebar's model-choices line, which states the λ and T the run used."""
    return next(t for t in session.texts if "· T = **" in t)


async def student(url: str, lam: float, T: int) -> list[stclient.Run]:
    session = await stclient.connect(url, "", f"lam={lam:g}&T={T}", timeout=120)
    runs = [session.first]
    try:
        assert f"T = **{T}** · λ = **{lam:g}**" in caption(session)
        for new in MOVES:
            runs.append(await session.rerun({"lam": stclient.select_slider(new)}, timeout=120))
            assert f"T = **{T}** · λ = **{new}**" in caption(session)   # this session's own state
        runs.append(await session.rerun({"T": stclient.slider(T + 1)}, timeout=120))
        assert f"T = **{T + 1}** · λ = **{MOVES[-1]}**" in caption(session)
    finally:
        await session.close()
    return runs


async def classroom(url: str) -> list[list[stclient.Run]]:
    return await asyncio.gather(*(student(url, lam, T) for lam, T in SESSIONS))


@pytest.fixture(scope="module")
def server():
    srv = stclient.DashboardServer([])
    yield srv
    srv.stop()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_five_concurrent_sessions_finish_without_error(server):
    results = run_async(classroom(server.url))
    assert len(results) == len(SESSIONS)
    for runs in results:
        assert len(runs) == 2 + len(MOVES)
        for run in runs:
            assert run.ok, (run.status, run.errors, server.log_tail(8000))
            assert run.deltas > 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_page_is_complete_once_its_placeholders_have_drawn_their_results():
    """A cold page shows placeholders (OPMERGE_WAIT_S=0: at once) whose fragments the browser reruns
    on their timers; the client counts the page complete only when every result is drawn."""
    srv = stclient.DashboardServer([], env={"OPMERGE_WAIT_S": "0"})

    async def cold_page():
        session = await stclient.connect(srv.url, "", "lam=1.5&T=40", timeout=240)
        await session.close()
        return session

    try:
        session = run_async(cold_page())
    finally:
        srv.stop()
    load = session.load
    assert load.ok, load.errors
    assert load.fragment_runs > 0 and load.complete > load.first.elapsed   # placeholders first
    assert not session.pending
    metrics = dict(t.rsplit(": ", 1) for t in session.texts if t.startswith(("λ_B", "λ_V")))
    assert len(metrics) == 2 and "…" not in metrics.values(), metrics      # the results, drawn


def test_a_run_that_does_not_finish_in_time_is_reported_not_raised(server):
    async def impatient():
        session = await stclient.connect(server.url, "", "T=48", timeout=0.001)
        try:
            with pytest.raises(stclient.StreamlitClientError, match="timed out"):
                await session.rerun()
        finally:
            await session.close()
        return session.first

    run = run_async(impatient())
    assert run.status == "TIMEOUT" and not run.ok
    assert "no script_finished" in run.errors[-1]


def test_client_refuses_other_hosts():
    with pytest.raises(ValueError, match="loopback"):
        run_async(stclient.connect("http://example.org:8501"))


def test_pillow_is_whole_before_any_session_draws():
    """The server's warm-up thread imports torch and Pillow while the first sessions serialise their
    figures, and Plotly's JSON encoder reads ``PIL.Image`` from ``sys.modules`` without importing it:
    a half-imported module there failed a student's page. The frame imports it before any page."""
    import subprocess
    code = ("import sys, opmerge_dashboard.frame; m = sys.modules.get('PIL.Image'); "
            "print(m is not None and hasattr(m, 'Image'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
