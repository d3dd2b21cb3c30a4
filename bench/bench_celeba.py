"""Benchmark: the CelebA latent lab at its defaults (target: default settings in <= 30 s on this CPU).

Prints the time of each stage of ``opmerge celeba compare`` for T in {32, 64} on the shipped assets
(or $OPMERGE_ASSETS): the per-direction DP, the shared Pareto DP, sampling + decoding, and the grid;
then each stage's share of the total.

    .venv/bin/python bench/bench_celeba.py
"""

from __future__ import annotations

import time

import torch

from opmerge_core.latent import celeba
from opmerge_core.latent.latents import load_assets
from opmerge_core.theory import planner
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shared_plan import shared_plan


def timed(stages: dict[str, float], name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    stages[name] = time.perf_counter() - t0
    return out


def bench(T: int, model, stats) -> None:
    setting, stages = Setting(T), {}
    timed(stages, "per-direction DP", lambda: planner.optimal(setting, stats.eigvals))
    timed(stages, "shared DP", lambda: shared_plan(setting, stats.eigvals))
    comp = timed(stages, "compare (both DPs)", lambda: celeba.compare(setting, stats.eigvals))
    faces = timed(stages, "sample+decode",
                  lambda: celeba.decode_faces(model, celeba.sample_latents(stats, comp, 8, 0)))
    timed(stages, "grid", lambda: celeba.face_grid(faces))
    total = stages["compare (both DPs)"] + stages["sample+decode"] + stages["grid"]
    print(f"T = {T}: celeba compare total {total:.2f} s | "
          + " | ".join(f"{n} {v:.2f} s ({v / total:.0%})" for n, v in stages.items()))


def main() -> None:
    torch.set_num_threads(1)
    model, stats = load_assets()
    print(f"d = {stats.d} latent directions, λ in [{stats.eigvals.min():.3g}, {stats.eigvals.max():.3g}]")
    for T in (32, 64):
        bench(T, model, stats)

if __name__ == "__main__":
    main()
