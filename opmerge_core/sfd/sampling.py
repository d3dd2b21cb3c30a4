"""Sampling with the SFD lab's networks (SFD.md "Parameterisation and schedule", "Analytical first
step (AFS)"): the starting noise, the student's Euler sampler on its n-timestamp grid, and the plain
solver with the teacher at (about) the same NFE — the baseline every student is compared with. Every
sampler goes through :func:`opmerge_core.sfd.solvers.solve` with a
:class:`~opmerge_core.sfd.solvers.Denoiser`."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from opmerge_core.basics.validation import check_int
from opmerge_core.sfd import solvers
from opmerge_core.sfd.networks import conditioned
from opmerge_core.sfd.solvers import DEFAULT_T_MAX, DEFAULT_T_MIN

N_SAMPLES_MAX = 1_000_000
Samples = torch.Tensor | tuple[torch.Tensor, torch.Tensor]   # final states, or (final, trajectory)


def noise(n_samples: int, dim: int, seed: int = 0, device: str | torch.device = "cpu",
          t_max: float = DEFAULT_T_MAX) -> torch.Tensor:
    """``t_max · N(0, I)`` starting points, reproducible across devices (drawn on the CPU)."""
    n_samples = check_int(n_samples, "number of samples", hi=N_SAMPLES_MAX)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return (t_max * torch.randn(n_samples, dim, generator=gen)).to(device)


@torch.no_grad()
def sample_student(student: nn.Module, x: torch.Tensor, n: int, afs: bool, conditioned_on_n: bool = False,
                   t_min: float = DEFAULT_T_MIN, t_max: float = DEFAULT_T_MAX,
                   return_trajectory: bool = False) -> Samples:
    """The student's Euler sampler on the n-timestamp grid (NFE = n − 1 − afs); SFD-v students are
    conditioned on ``n`` (``conditioned_on_n``)."""
    grid = solvers.time_grid(n, t_min, t_max)
    return solvers.solve(conditioned(student, n if conditioned_on_n else None), x, grid, "euler", afs=afs,
                         return_trajectory=return_trajectory)


def solver_grid(nfe: int, solver: str = "dpmpp3m", afs: bool = False, t_min: float = DEFAULT_T_MIN,
                t_max: float = DEFAULT_T_MAX) -> np.ndarray:
    """The grid of the plain solver at a requested NFE: NFE + 1 (+1 with AFS) timestamps; Heun uses two
    calls per step, so ⌈(NFE + AFS)/2⌉ + 1 timestamps — at an odd NFE it really uses one more call
    (:func:`solver_nfe` gives the count really used)."""
    steps = math.ceil((nfe + int(afs)) / 2) if solver == "heun" else nfe + int(afs)
    return solvers.time_grid(steps + 1, t_min, t_max)


def solver_nfe(nfe: int, solver: str = "dpmpp3m", afs: bool = False, t_min: float = DEFAULT_T_MIN,
               t_max: float = DEFAULT_T_MAX) -> int:
    """The NFE :func:`sample_solver` really uses when asked for ``nfe`` (Heun: even counts only)."""
    return solvers.nfe(solver, solver_grid(nfe, solver, afs, t_min, t_max), afs)


@torch.no_grad()
def sample_solver(teacher: nn.Module, x: torch.Tensor, nfe: int, solver: str = "dpmpp3m", afs: bool = False,
                  t_min: float = DEFAULT_T_MIN, t_max: float = DEFAULT_T_MAX,
                  return_trajectory: bool = False, lower_order_final: str = "sfd") -> Samples:
    """A plain solver with the teacher at (about) a given NFE on :func:`solver_grid`."""
    grid = solver_grid(nfe, solver, afs, t_min, t_max)
    return solvers.solve(conditioned(teacher, None), x, grid, solver, afs=afs,
                         return_trajectory=return_trajectory, lower_order_final=lower_order_final)
