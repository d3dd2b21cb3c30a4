"""Benchmark: the "Theory vs practice" runs (THEORY §8) through the compute backend, as the page runs them.

    .venv/bin/python bench/bench_practice.py [--teachers latent-mlp,mixture-2d,gaussian]
        [--students linear,mlp] [--in-process]

Targets (issue 19): the default latent run (T = 16, 3 seeds, every plan) in <= 300 s on this 2-core CPU,
the 2-D and Gaussian runs in <= 60 s, through the compute backend (a Dask worker, one torch thread),
for both students (the page's default is linear).
The machine is shared, so every line also reports the load average and a baseline measured in the same
run: the seconds of 64 denoiser calls of the latent teacher on 4096 latents (one torch thread) — the
run's time in units of that baseline is comparable between a busy and an idle machine. ``--in-process``
also runs each spec directly (no backend) to show the backend's overhead.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time

import torch

from opmerge_core.backend import compute
from opmerge_core.practice import experiment
from opmerge_core.practice.spec import TEACHERS, PracticeSpec
from opmerge_core.sfd.teachers import load_teacher

TARGETS = {"latent-mlp": 300.0, "mixture-2d": 60.0, "gaussian": 60.0}


def baseline_seconds() -> float:
    """64 latent-teacher denoiser calls on 4096 latents, one torch thread (the run's unit of work)."""
    net = load_teacher("latent-mlp").model
    x = torch.randn(4096, net.dim, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            t0 = time.perf_counter()
            for k in range(64):
                net(x, 0.1 + k / 8)
            return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teachers", default=",".join(TEACHERS))
    ap.add_argument("--students", default="linear,mlp")
    ap.add_argument("--in-process", action="store_true")
    args = ap.parse_args()
    base = baseline_seconds()
    print(f"baseline: 64 denoiser calls on 4096 latents = {base:.2f} s (load {load()}); "
          f"cores {os.cpu_count()}")
    backend = compute.Backend()
    try:
        for teacher, student in itertools.product(args.teachers.split(","), args.students.split(",")):
            spec = PracticeSpec(teacher=teacher, student=student)
            t0 = time.perf_counter()
            before = load()
            job = backend.submit(experiment.KIND, experiment.run, spec, 1, params=spec.as_dict())
            job.wait()
            wall = time.perf_counter() - t0
            if job.status != "done":
                print(f"{teacher}: {job.status} {job.error}")
                continue
            verdict = "OK" if wall <= TARGETS[teacher] else "ABOVE TARGET"
            print(f"{teacher:<11} {student:<6}: {wall:6.1f} s through the backend "
                  f"({wall / base:.1f} baselines; target {TARGETS[teacher]:.0f} s: {verdict}); "
                  f"load {before} → {load()}; run's own clock {job.result['seconds']['total']:.1f} s")
            if args.in_process:
                cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
                t0 = time.perf_counter()
                experiment.run(spec, 1)
                print(f"{'':<11} in process: {time.perf_counter() - t0:6.1f} s wall, "
                      f"{resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0:.1f} s CPU")
    finally:
        backend.shutdown()
    print(f"baseline again: {baseline_seconds():.2f} s (load {load()})")


if __name__ == "__main__":
    main()
