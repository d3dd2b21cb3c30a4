"""Benchmark (issue 6): NFE-3 SFD on the CelebA latents with the default budget vs the plain
DPM-Solver++(3M) at NFE 3. Prints fine-tuning seconds and latent FD (not image FID) of both.

    .venv/bin/python bench/bench_sfd.py [--teacher latent-mlp] [--budget N] [--algorithms sfd,alg1]

Needs assets/sfd_latent_teacher.pt (see assets/README.md); one torch thread. Requirement: the default
budget finishes in <= 180 s on this CPU with a latent FD clearly below the plain solver's.
"""

from __future__ import annotations

import argparse
import time

from opmerge_core import sfd, sfd_lab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="latent-mlp")
    ap.add_argument("--nfe", type=int, default=3)
    ap.add_argument("--budget", type=int, default=sfd.DEFAULT_BUDGET)
    ap.add_argument("--algorithms", default="sfd")
    ap.add_argument("--afs", action="store_true")
    ap.add_argument("--assets", default=None)
    args = ap.parse_args()
    print(f"teacher {args.teacher}, NFE {args.nfe}, budget {args.budget} trajectories, AFS {args.afs}; "
          f"{sfd.FD_LABEL}")
    print(f"{'method':<28} {'fine-tune s':>12} {'total s':>9} {'latent FD':>10} {'plain 3M FD':>12} "
          f"{'ratio':>7} {'teacher 32 NFE':>15}")
    for algorithm in args.algorithms.split(","):
        cfg = sfd.DistillConfig(nfe=args.nfe, algorithm=algorithm, budget=args.budget, afs=args.afs)
        t0 = time.perf_counter()
        out = sfd_lab.run(args.teacher, cfg, assets=args.assets, device="cpu", store=None, threads=1)
        total = time.perf_counter() - t0
        print(f"{algorithm:<28} {out['finetune_seconds']:>12.1f} {total:>9.1f} {out['latent_fd']:>10.4f} "
              f"{out['latent_fd_solver']:>12.4f} {out['latent_fd_solver'] / out['latent_fd']:>7.2f} "
              f"{out['latent_fd_teacher']:>15.4f}")
        for nfe, row in out.get("by_nfe", {}).items():       # SFD-v: one model, every NFE it serves
            print(f"  NFE {nfe}: latent FD {row['latent_fd']:.4f}  plain {row['latent_fd_solver']:.4f}")
        if out["finetune_seconds"] > 180:
            print("  WARNING: above the 3-minute target")


if __name__ == "__main__":
    main()
