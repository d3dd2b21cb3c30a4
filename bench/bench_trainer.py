"""Benchmark: the batched trainer (THEORY §6) on this CPU.

Target: sequential BOOT at T = 64 on d = 128 coordinates — 63 merges, 200 SGD steps each,
batch 256 — in ≤ 5 s. Prints that time (best of 3) with 1 thread and with torch's default threads,
then how the time scales with T (merges ∝ T, waves ∝ T for BOOT) and with d (work per step ∝ d),
and all five named strategies + the DP plan trained together.

    .venv/bin/python bench/bench_trainer.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from opmerge_core.theory import plans
from opmerge_core.theory.setting import Setting
from opmerge_core.training import trainer
from opmerge_core.training.config import TrainConfig

CONFIG = TrainConfig(steps=200, lr=0.05, batch=256, device="cpu")
CPU: list[float] = []   # process CPU seconds of each run (less sensitive to other load than wall time)


def timed(T: int, d: int, named: dict | None = None, repeats: int = 3,
          config: TrainConfig = CONFIG) -> tuple[float, int]:
    lam = np.geomspace(0.1, 10.0, d)
    named = named or {"boot": plans.boot(T)}
    best, n = float("inf"), 0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = trainer.train(Setting(T=T), lam, named, config)
        best = min(best, time.perf_counter() - t0)
        n = len(result.records)
        CPU.append(time.process_time() - c0)
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer sizes, one repeat")
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    timed(4, 8, repeats=1)  # warm-up (torch lazy init)

    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        CPU.clear()
        t, n = timed(64, 128, repeats=reps)
        verdict = "OK" if t <= 5.0 else "OVER"
        print(f"BOOT T=64 d=128 ({n} merges × 200 steps, batch 256), {threads} thread(s): "
              f"{t:.2f} s wall (best of {reps}; CPU {min(CPU):.2f} s)  [target ≤ 5 s: {verdict}]  "
              f"{n * 200 / t:,.0f} merge-steps/s")
    torch.set_num_threads(1)

    base, _ = timed(64, 128, repeats=reps)
    print(f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall times include "
          "other processes)")
    print("\nscaling with T (BOOT, d = 128, 1 thread):")
    for T in ([16, 64] if args.quick else [16, 32, 64, 128]):
        t, n = timed(T, 128, repeats=reps)
        print(f"  T = {T:>4}: {t:6.2f} s  ({n:>3} merges)  ratio to T=64: {t / base:5.2f}")
    print("scaling with d (BOOT, T = 64, 1 thread):")
    for d in ([32, 128, 512] if args.quick else [8, 32, 128, 512, 1024]):
        t, _ = timed(64, d, repeats=reps)
        print(f"  d = {d:>4}: {t:6.2f} s  ratio to d=128: {t / base:5.2f}")

    named = plans.named_plans(64)
    t, n = timed(64, 128, named | {"dp": plans.boot(64)}, repeats=1)
    print(f"\nall named strategies + dp, T = 64, d = 128: {n} distinct merges in {t:.2f} s")
    t, n = timed(16, 32, {"boot": plans.boot(16)}, repeats=1,
                 config=TrainConfig(steps=200, lr=0.05, batch=256, device="cpu", student="mlp"))
    print(f"MLP student (hidden 16), BOOT T = 16, d = 32: {n} merges in {t:.2f} s")


if __name__ == "__main__":
    main()
