"""Dashboard latency: server-side time from a widget change to the finished rerun, measured with
Streamlit's AppTest (no browser, no network; includes AppTest's own overhead).

    .venv/bin/python bench/bench_dashboard.py [--repeats 5]

Prints: the λ-change rerun of the home page at T = 32, 128, 256, 1024 (every λ new; the T-only
quantities — curves, thresholds — are cached as they are for a user dragging λ), the home page at
T = 1024 and /celeba at T = 64 opened cold on a running server, the phase diagram cold (empty cache)
and cached, and a full rerun after an S change. Targets: λ change ≤ 150 ms at T ≤ 256 and ≤ 300 ms
at T = 1024; home at T = 1024 ≤ 3 s and /celeba ≤ 5 s cold; phase diagram cold ≤ 2 s. Heavy results
come from the compute backend (OPMERGE_WAIT_S is raised so every rerun waits for them).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPMERGE_WAIT_S", "600")     # reruns wait for heavy results (no placeholder)

import argparse
import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from opmerge_core.backend import compute
from opmerge_core.theory import sweep
from opmerge_core.theory.setting import Model
from opmerge_dashboard import plan_views

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def timed_run(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t0
    assert not at.exception, at.exception
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    at = AppTest.from_file(APP, default_timeout=120)
    first = timed_run(at)
    print(f"first load (numba JIT load, phase diagram, curves, thresholds): {first * 1e3:8.0f} ms")

    lam_path = [0.5, 3.0, 0.7, 1.5, 0.3, 5.0, 1.1, 0.2, 2.5, 0.9, 8.0]
    for T in (32, 128, 256, 1024):
        at.slider(key="T").set_value(T)
        warm = timed_run(at)      # T change: curves + thresholds for this T (cold)
        times = []
        for lam in lam_path[: args.repeats + 1]:
            at.select_slider(key="lam").set_value(lam)
            times.append(timed_run(at))
        times = times[1:]         # the first λ after a T change may still warm caches
        print(f"T = {T:4d}: T change (cold curves/thresholds) {warm * 1e3:7.0f} ms | λ change: "
              f"median {statistics.median(times) * 1e3:6.1f} ms, max {max(times) * 1e3:6.1f} ms "
              f"over {len(times)} new λ values (target ≤ {150 if T <= 256 else 300} ms)")

    # pages opened cold on a running server (a new session, a setting nobody computed yet)
    for S, page, T, target in (("2.5", "phase", 1024, 3.0), ("3.5", "celeba", 64, 5.0)):
        fresh = AppTest.from_file(APP, default_timeout=600)
        fresh.query_params.update({"T": str(T), "S": S})
        if page != "phase":              # the home page first, then the page (as a student clicks)
            timed_run(fresh)
            fresh.switch_page(f"app_pages/{page}.py")
        print(f"/{page} at T = {T}, S = {S}, cold: {timed_run(fresh):.2f} s (target ≤ {target:g} s; the "
              "first CelebA visit of a process also imports torch and loads the VAE)")

    # the phase diagram alone: computed here (cold), on the compute backend (cold: a fresh cache),
    # and again from the backend's cache
    args = (plan_views.PHASE_LAMS, plan_views.PHASE_TS, Model())
    t0 = time.perf_counter()
    sweep.phase(*args)
    here = time.perf_counter() - t0
    backend = compute.default_backend()
    backend.cache.clear()
    t0 = time.perf_counter()
    job = backend.cached(sweep.phase, *args)
    job.wait()
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend.cached(sweep.phase, *args)
    cached = time.perf_counter() - t0
    print(f"phase diagram (16 T × 41 λ + λ_B(T)): in-process {here:.2f} s, on the backend cold "
          f"{cold:.2f} s (target ≤ 2 s), cached {cached * 1e3:.1f} ms")

    # and as a whole rerun: a new S makes the phase diagram, curves and thresholds cold
    at2 = AppTest.from_file(APP, default_timeout=120)
    timed_run(at2)
    at2.slider(key="S").set_value(2.5)
    cold_run = timed_run(at2)
    at2.slider(key="S").set_value(1.0)
    timed_run(at2)
    at2.slider(key="S").set_value(2.5)
    cached_run = timed_run(at2)
    print(f"home rerun after an S change: cold {cold_run:.2f} s, "
          f"back to a cached S {cached_run * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
