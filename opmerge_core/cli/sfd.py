"""`opmerge solve` (solvers on Gaussian data, closed forms) and `opmerge sfd train` (SFD.md)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from opmerge_core import solvers
from opmerge_core.validation import check_choice, check_lam, check_T


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="run a sampler on Gaussian data N(0, λ) with the exact denoiser")
    p.add_argument("--solver", default="dpmpp3m", help=f"one of {', '.join(solvers.SOLVERS)}")
    p.add_argument("--lam", default="0.5", help="data variance λ > 0 (default 0.5)")
    p.add_argument("--num-steps", default="6",
                   help=f"number of timestamps n of the ρ = 7 grid, 2..{solvers.N_MAX} (default 6)")
    p.add_argument("--afs", action="store_true", help="analytical first step (saves one NFE)")
    p.add_argument("--t-min", default=str(solvers.T_MIN), help="last grid time (default 0.006)")
    p.add_argument("--t-max", default=str(solvers.T_MAX), help="first grid time (default 80)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_solve)
    _register_sfd(sub)


def run_solve(args: argparse.Namespace) -> int:
    """x = t_max ε → last grid time; every solver is linear here, so one coordinate ε = 1 suffices."""
    solver = check_choice(args.solver, solvers.SOLVERS, "solver")
    lam = _one_lam(args.lam)
    n = check_T(args.num_steps, lo=2, hi=solvers.N_MAX, name="--num-steps")
    grid = solvers.time_grid(n, args.t_min, args.t_max)
    t_max, t_min = float(grid[0]), float(grid[-1])
    counter = solvers.CountingDenoiser(solvers.gaussian_denoiser(lam))
    eps = np.ones(1)
    x = solvers.solve(counter, t_max * eps, grid, solver, afs=args.afs)
    exact_map = float(solvers.gaussian_exact_factor(lam, t_max, t_min))
    out = {"solver": solver, "lam": lam, "num_steps": n, "afs": bool(args.afs), "t_max": t_max,
           "t_min": t_min, "grid": grid.tolist(), "nfe": counter.nfe,
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


def _one_lam(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--lam must be one number (a variance > 0), got {text!r}") from None
    return float(check_lam(value, name="--lam")[0])


def _register_sfd(sub: argparse._SubParsersAction) -> None:
    """`opmerge sfd train` is added in step 4 (SFD distillation)."""
