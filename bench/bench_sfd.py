"""Benchmark: NFE-3 SFD on the CelebA latents with the default budget vs the plain
DPM-Solver++(3M) at NFE 3. Prints fine-tuning seconds and latent FD (not image FID) of both.

    .venv/bin/python bench/bench_sfd.py [--teacher latent-mlp] [--budget N] [--algorithms sfd,alg1]
        [--seeds 0,1,2] [--lower-order-final sfd|dpm-solver]

Needs assets/sfd_latent_teacher.pt (see assets/README.md); one torch thread. Requirement: the default
budget finishes in <= 180 s on this CPU with a latent FD clearly below the plain solver's.
"""

from __future__ import annotations

import argparse

from opmerge_core.sfd import distill, metrics
from opmerge_core.sfd import lab as sfd_lab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="latent-mlp")
    ap.add_argument("--nfe", type=int, default=3)
    ap.add_argument("--budget", type=int, default=distill.DEFAULT_BUDGET)
    ap.add_argument("--algorithms", default="sfd")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds: FD mean ± sd over them")
    ap.add_argument("--afs", action="store_true")
    ap.add_argument("--lower-order-final", default="sfd")
    ap.add_argument("--assets", default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"teacher {args.teacher}, NFE {args.nfe}, budget {args.budget} trajectories, AFS {args.afs}, "
          f"training seeds {seeds}; {metrics.FD_LABEL}; each run's FD is itself the mean over "
          f"{len(sfd_lab.EVAL_SEEDS)} evaluation seeds against the held-out latents")
    print(f"{'method':<10} {'fine-tune s':>12} {'latent FD':>17} {'plain (NFE)':>22} {'teacher 32 NFE':>17} "
          f"{'floor':>17}")
    for algorithm in args.algorithms.split(","):
        runs = []
        for seed in seeds:
            cfg = distill.DistillConfig(nfe=args.nfe, algorithm=algorithm, budget=args.budget,
                                        afs=args.afs, seed=seed, lower_order_final=args.lower_order_final)
            runs.append(sfd_lab.job(args.teacher, cfg, assets=args.assets, device="cpu")["metrics"])
        first = runs[0]

        def pm(key: str, over_seeds: bool = True, runs: list = runs, first: dict = first) -> str:
            mean, sd = (metrics.mean_sd(r[key] for r in runs) if over_seeds
                        else (first[key], first[key + "_sd"]))
            return f"{mean:.3f} ± {sd:.3f}"

        seconds = metrics.mean_sd(r["finetune_seconds"] for r in runs)[0]
        print(f"{algorithm:<10} {seconds:>12.1f} {pm('latent_fd'):>17} "
              f"{pm('latent_fd_solver', False) + ' (' + str(first['nfe_solver']) + ')':>22} "
              f"{pm('latent_fd_teacher', False):>17} {pm('latent_fd_floor', False):>17}")
        for nfe in first.get("by_nfe", {}):       # SFD-v: one model, every NFE it serves
            fd = metrics.mean_sd(r["by_nfe"][nfe]["latent_fd"] for r in runs)
            row = first["by_nfe"][nfe]
            print(f"  NFE {nfe}: latent FD {fd[0]:.3f} ± {fd[1]:.3f}  plain {row['latent_fd_solver']:.3f} "
                  f"(NFE {row['nfe_solver']})")
        if seconds > 180:
            print("  WARNING: above the 3-minute target")
    print("plain solver, teacher and floor: mean ± sd over the evaluation seeds (they do not depend on the "
          "training seed); students: mean ± sd over the training seeds")


if __name__ == "__main__":
    main()
