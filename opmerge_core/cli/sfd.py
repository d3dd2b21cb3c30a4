"""`opmerge solve` (solvers on Gaussian data, closed forms) and `opmerge sfd train` (SFD.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from opmerge_core.basics.validation import check_choice, check_int, check_lam
from opmerge_core.cli import argv
from opmerge_core.sfd import solvers

if TYPE_CHECKING:
    from opmerge_core.sfd.distill import DistillConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="run a sampler on Gaussian data N(0, λ) with the exact denoiser")
    p.add_argument("--solver", default="dpmpp3m", help=f"one of {', '.join(solvers.SOLVERS)}")
    p.add_argument("--lam", default="0.5", help="data variance λ > 0 (default 0.5)")
    p.add_argument("--num-steps", default="6",
                   help=f"number of timestamps n of the ρ = 7 grid, 2..{solvers.N_MAX} (default 6)")
    p.add_argument("--afs", action="store_true", help="analytical first step (saves one NFE)")
    _add_lower_order_final(p)
    p.add_argument("--t-min", default=str(solvers.DEFAULT_T_MIN), help="last grid time (default 0.006)")
    p.add_argument("--t-max", default=str(solvers.DEFAULT_T_MAX), help="first grid time (default 80)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_solve)
    _register_sfd(sub)


def run_solve(args: argparse.Namespace) -> int:
    """x = t_max ε → last grid time; every solver is linear here, so one coordinate ε = 1 suffices."""
    solver = check_choice(args.solver, solvers.SOLVERS, "solver")
    lam = _one_lam(args.lam)
    n = check_int(args.num_steps, "--num-steps", lo=2, hi=solvers.N_MAX)
    grid = solvers.time_grid(n, args.t_min, args.t_max)
    t_max, t_min = float(grid[0]), float(grid[-1])
    counter = solvers.CountingDenoiser(solvers.gaussian_denoiser(lam))
    eps = np.ones(1)
    lof = check_choice(args.lower_order_final, solvers.LOWER_ORDER_FINAL, "--lower-order-final rule")
    x = solvers.solve(counter, t_max * eps, grid, solver, afs=args.afs, lower_order_final=lof)
    exact_map = float(solvers.gaussian_exact_factor(lam, t_max, t_min))
    out = {"solver": solver, "lam": lam, "num_steps": n, "afs": bool(args.afs), "t_max": t_max,
           "t_min": t_min, "grid": grid.tolist(), "nfe": counter.nfe, "lower_order_final": lof,
           "factor": float(x[0] / eps[0]),          # final state / ε
           "exact": t_max * exact_map,              # the exact flow's final state / ε
           "exact_map": exact_map,                  # √((λ + t_min²)/(λ + t_max²)), the map t_max → t_min
           "ratio": float(x[0] / eps[0]) / (t_max * exact_map)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{solvers.SOLVER_LABELS[solver]}{' + AFS' if args.afs else ''} on N(0, {lam:g}), "
              f"{n} timestamps {t_max:g} → {t_min:g}, NFE = {out['nfe']}")
        print(f"  factor (final / ε) = {out['factor']:.6g}   exact = {out['exact']:.6g}   "
              f"ratio = {out['ratio']:.6f}")
    return 0


def _add_lower_order_final(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lower-order-final", default="sfd", metavar="{sfd,dpm-solver,none}",
                   help="DPM-Solver++ final-step orders: sfd (SFD's official sampler, lowered for every "
                        "step count; default), dpm-solver (lowered only below 10 steps) or none")


def _one_lam(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--lam must be one number (a variance > 0), got {text!r}") from None
    return float(check_lam(value, name="--lam")[0])


def _register_sfd(sub: argparse._SubParsersAction) -> None:
    from opmerge_core.sfd import distill, teachers
    from opmerge_core.sfd.mixtures import PRESETS

    p = sub.add_parser("sfd", help="Simple and Fast Distillation: train a few-step student (SFD.md)")
    sfd_sub = p.add_subparsers(dest="sfd_command", required=True, parser_class=type(p))
    t = sfd_sub.add_parser("train", help="distil a student and compare it with the plain solver")
    t.add_argument("--teacher", default="latent-mlp", help=f"one of {', '.join(teachers.TEACHERS)}")
    t.add_argument("--preset", default="ring8", help=f"2-D mixture for mixture-2d: {', '.join(PRESETS)}")
    t.add_argument("--nfe", default="3", help="student NFE, 1..5 (SFD-v: 2..5, the NFE reported)")
    t.add_argument("--algorithm", default="sfd", help=f"one of {', '.join(distill.ALGORITHMS)}")
    t.add_argument("--budget", default=None,
                   help=f"trajectories (default {distill.DEFAULT_BUDGET} for latents, "
                        f"{distill.MIXTURE_BUDGET} for 2-D)")
    t.add_argument("--solver", default="dpmpp3m", help="teacher solver (and the plain-solver baseline)")
    t.add_argument("--M", default="3", help="intermediate teacher steps per student step (K = M+1)")
    t.add_argument("--afs", action="store_true", help="analytical first step (saves one NFE)")
    _add_lower_order_final(t)
    t.add_argument("--lr", default=str(distill.SFD_LR), help="Adam learning rate (×0.1 at half budget)")
    t.add_argument("--batch", default=str(distill.SFD_BATCH), help="trajectories per iteration")
    t.add_argument("--seed", default="0")
    t.add_argument("--n-eval", default="4000", help="evaluation samples (16..100000)")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--threads", default="1", help="torch CPU threads (default 1: small MLPs are faster)")
    t.add_argument("--assets", default=None, help="assets folder (default $OPMERGE_ASSETS or assets/)")
    t.add_argument("--no-store", action="store_true", help="do not record the run in the run store")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=run_sfd_train)

    m = sfd_sub.add_parser("teacher", help="train the latent MLP teacher and fit the latent GMM (assets)")
    m.add_argument("--latents", required=True, help="per-image latents (n, d) .npy (outside the repo)")
    m.add_argument("--assets", default=None, help="output folder (default $OPMERGE_ASSETS or assets/)")
    m.add_argument("--steps", default="3000", help="DSM training steps (default 3000)")
    m.add_argument("--batch", default="512")
    m.add_argument("--width", default="256")
    m.add_argument("--blocks", default="3")
    m.add_argument("--gmm-k", default="32", help="components of the diagonal GMM fit (default 32)")
    m.add_argument("--held-out", default="4000",
                   help="latents held out by the fixed split (seed 0): FD reference (default 4000)")
    m.add_argument("--device", default="auto")
    m.add_argument("--threads", default="1", help="torch CPU threads")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=run_sfd_teacher)


@dataclass(frozen=True)
class SfdTrainSpec:
    """What ``opmerge sfd train`` distils: a teacher (``preset``: the 2-D mixture of ``mixture-2d``)
    and the distillation config, on the default time range (SFD.md)."""

    teacher: str
    preset: str
    config: DistillConfig

    def __post_init__(self) -> None:
        from opmerge_core.sfd.mixtures import PRESETS
        from opmerge_core.sfd.teachers import TEACHERS

        check_choice(self.teacher, TEACHERS, "teacher")
        check_choice(self.preset, PRESETS, "preset")
        if (self.config.t_min, self.config.t_max) != (solvers.DEFAULT_T_MIN, solvers.DEFAULT_T_MAX):
            raise ValueError("opmerge sfd train samples on t in "
                             f"[{solvers.DEFAULT_T_MIN}, {solvers.DEFAULT_T_MAX}]")


def default_budget(teacher: str) -> int:
    """Trajectories when ``--budget`` is not given: fewer for the 2-D mixtures."""
    from opmerge_core.sfd import distill

    return distill.MIXTURE_BUDGET if teacher == "mixture-2d" else distill.DEFAULT_BUDGET


def spec_from(args: argparse.Namespace) -> SfdTrainSpec:
    from opmerge_core.sfd import distill, networks

    budget = args.budget or default_budget(args.teacher)
    cfg = distill.DistillConfig(nfe=check_int(args.nfe, "--nfe", lo=0, hi=99), algorithm=args.algorithm,
                                solver=args.solver, M=check_int(args.M, "--M", lo=-1, hi=10**6),
                                afs=args.afs, budget=check_int(budget, "--budget", lo=0, hi=10**9),
                                batch=check_int(args.batch, "--batch", hi=networks.BATCH_MAX),
                                lower_order_final=args.lower_order_final,
                                lr=float(_number(args.lr, "--lr")),
                                seed=check_int(args.seed, "--seed", lo=0, hi=2**31 - 1))
    return SfdTrainSpec(args.teacher, args.preset, cfg)


def to_argv(spec: SfdTrainSpec) -> list[str]:
    """``opmerge sfd train``'s argv for ``spec`` (without ``opmerge``), defaults left out."""
    cfg = spec.config
    values = {"teacher": spec.teacher, "preset": spec.preset, "nfe": cfg.nfe, "algorithm": cfg.algorithm,
              "budget": None if cfg.budget == default_budget(spec.teacher) else cfg.budget,
              "solver": cfg.solver, "M": cfg.M, "afs": cfg.afs, "lower_order_final": cfg.lower_order_final,
              "lr": cfg.lr, "batch": cfg.batch, "seed": cfg.seed}
    return argv.build("sfd", ("sfd", "train"), values)


def parse(args: list[str]) -> SfdTrainSpec:
    """The spec of an ``opmerge sfd train`` argv (``to_argv``'s inverse)."""
    return spec_from(argv.parse_args("sfd", args))


def run_sfd_train(args: argparse.Namespace) -> int:
    from opmerge_core.sfd import distill, metrics
    from opmerge_core.sfd import lab as sfd_lab

    cfg = spec_from(args).config
    threads = check_int(args.threads, "--threads", hi=256)
    n_eval = check_int(args.n_eval, "--n-eval", lo=16, hi=sfd_lab.N_EVAL_MAX)
    job_args = (args.teacher, cfg, args.preset, args.assets, args.device, n_eval, threads)
    shown = [-1]

    def progress(done: int, total: int, info: dict) -> None:     # every 10% on stderr
        tenth = 10 * done // total
        if tenth > shown[0] and not args.json:
            shown[0] = tenth
            print(f"  {done:>9,}/{total:,} trajectories  loss {info['loss']:.4g}", file=sys.stderr,
                  flush=True)

    if args.no_store:
        run_id, result = None, sfd_lab.job(*job_args, progress=progress)
    else:
        from opmerge_core.store import runs
        from opmerge_core.store.runstore import RunStore

        with RunStore() as store:
            run_id, result = runs.execute(store, sfd_lab.RUN_KIND, sfd_lab.job, *job_args,
                                          params=sfd_lab.run_params(args.teacher, cfg, args.preset,
                                                                    args.device),
                                          finalize=sfd_lab.record, progress=progress)
    out = {**result["metrics"], "run_id": run_id}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{distill.ALGORITHM_LABELS[cfg.algorithm]}; teacher {args.teacher}, NFE {cfg.nfe}, "
              f"{cfg.solver} teacher on M = {cfg.M}, AFS {'on' if cfg.afs else 'off'}")
        print(f"  fine-tuning {out['finetune_seconds']:.1f} s, {out['trajectories']} trajectories; "
              f"run id {out['run_id']}")
        print(f"  {metrics.FD_LABEL}:")
        print(f"  (mean ± sd over {len(out['eval_seeds'])} evaluation seeds, {out['n_eval']} samples each, "
              f"against {out['fd_reference']}; floor = what exact samples score)")
        print(f"    student {_pm(out, 'latent_fd')}   plain {cfg.solver} at NFE {out['nfe_solver']}: "
              f"{_pm(out, 'latent_fd_solver')}   teacher at {out['teacher_nfe']} NFE: "
              f"{_pm(out, 'latent_fd_teacher')}   floor {_pm(out, 'latent_fd_floor')}")
        if "sliced_w2" in out:
            print(f"  sliced W2: student {out['sliced_w2']:.4f}   plain {out['sliced_w2_solver']:.4f}   "
                  f"teacher {out['sliced_w2_teacher']:.4f}")
    return 0


def _pm(out: dict, key: str) -> str:
    return f"{out[key]:.4f} ± {out[key + '_sd']:.4f}"


def _threads(text: str) -> None:
    import torch
    torch.set_num_threads(check_int(text, "--threads", hi=256))


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def run_sfd_teacher(args: argparse.Namespace) -> int:
    from opmerge_core.sfd import assets as sfd_assets

    _threads(args.threads)
    out = sfd_assets.build(args.latents, args.assets, steps=check_int(args.steps, "--steps", hi=10**6),
                           batch=check_int(args.batch, "--batch", hi=4096),
                           width=check_int(args.width, "--width", lo=4, hi=2048),
                           blocks=check_int(args.blocks, "--blocks", hi=16),
                           gmm_k=check_int(args.gmm_k, "--gmm-k", hi=512),
                           n_held_out=check_int(args.held_out, "--held-out", lo=2, hi=10**6),
                           device=args.device)
    print(json.dumps(out, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0
