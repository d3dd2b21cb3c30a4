"""Simple and Fast Distillation (SFD.md "Training"): Algorithm 2 ("sfd", the student continues from its
own state), the local Algorithm 1 ("alg1", every segment starts from the teacher's state) and SFD-v
("sfd-v", one student conditioned on the step count n). Budgets count trajectories (batch × iterations).

The teacher is any network of :mod:`opmerge_core.sfd.networks` (``net(x, t, n=None)``); the student is a
copy of it (SFD.md "student ← copy of teacher weights"). The teacher's trajectory comes from
:func:`opmerge_core.sfd.solvers.solve` on the fine grid ``solvers.teacher_grid(n, M)`` (K = M + 1 teacher
steps per student step); the student takes one Euler step per segment (SFD.md eq. 4).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from opmerge_core.basics.device import pick_device
from opmerge_core.basics.progress import CancelFlag, Progress, check_cancel, report
from opmerge_core.basics.validation import check_choice, check_int, check_positive
from opmerge_core.sfd import solvers
from opmerge_core.sfd.networks import BATCH_MAX, conditioned
from opmerge_core.sfd.solvers import DEFAULT_T_MAX, DEFAULT_T_MIN, Denoiser

ALGORITHM_LABELS = {
    "sfd": "SFD (Algorithm 2: student continues from its own state)",
    "alg1": "Algorithm 1 (local: every segment starts from the teacher's state)",
    "sfd-v": "SFD-v (one student, step count n as conditioning)",
}
ALGORITHMS = tuple(ALGORITHM_LABELS)
NFE_MIN, NFE_MAX = 1, 5            # student NFE range (SFD.md: NFE 1–5 on CPU)
SFDV_NFE = (2, 3, 4, 5)            # SFD-v serves these NFEs (n ∈ {4, 5, 6, 7} with AFS)
BUDGET_MAX = 10_000_000            # trajectories
SFD_LR = 2e-3                      # Adam lr of the student (SFD.md: 5e-5 for big U-Nets; tuned for our MLPs)
SFD_BATCH = 128
DEFAULT_BUDGET = 80_000            # trajectories: NFE-3 SFD on the latents in < 3 min on 1 CPU thread
MIXTURE_BUDGET = 8_192             # enough for the 2-D mixtures (about a second)


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run (bad values → ValueError). ``nfe``: student NFE (for SFD-v: the NFE
    evaluated by default)."""

    nfe: int = 3
    algorithm: str = "sfd"
    solver: str = "dpmpp3m"          # the teacher's solver on the fine grid
    M: int = 3                       # intermediate teacher steps per student step (K = M + 1)
    afs: bool = False
    budget: int = DEFAULT_BUDGET     # trajectories
    batch: int = SFD_BATCH
    lr: float = SFD_LR
    seed: int = 0
    t_min: float = DEFAULT_T_MIN
    t_max: float = DEFAULT_T_MAX
    lower_order_final: str = "sfd"   # DPM-Solver++ final-step orders (solvers.dpmpp_orders): SFD's rule

    def __post_init__(self) -> None:
        check_choice(self.algorithm, ALGORITHMS, "algorithm")
        check_choice(self.solver, solvers.SOLVERS, "solver")
        check_choice(self.lower_order_final, solvers.LOWER_ORDER_FINAL, "lower-order-final rule")
        allowed = SFDV_NFE if self.algorithm == "sfd-v" else range(NFE_MIN, NFE_MAX + 1)
        lo, hi = min(allowed), max(allowed)
        check_int(self.nfe, f"NFE for {self.algorithm}{' with AFS' if self.afs else ''}", lo=lo, hi=hi)
        check_int(self.M, "M (intermediate teacher steps)", lo=0, hi=solvers.M_MAX)
        check_int(self.budget, "budget (trajectories)", hi=BUDGET_MAX)
        check_int(self.batch, "batch", hi=BATCH_MAX)
        check_positive(self.lr, "lr", hi=1.0)
        solvers.check_times(self.t_min, self.t_max)

    def steps_for(self, nfe: int) -> int:
        """n = number of timestamps: NFE + 1, or NFE + 2 with AFS (SFD.md)."""
        return nfe + 1 + int(self.afs)

    @property
    def n(self) -> int:
        return self.steps_for(self.nfe)

    @property
    def iterations(self) -> int:
        return math.ceil(self.budget / self.batch)


@dataclass(frozen=True)
class DistillResult:
    student: nn.Module
    config: DistillConfig
    losses: list[float]              # mean segment loss per iteration
    seconds: float
    trajectories: int


def check_steps(n: int, M: int, fine_grid: np.ndarray) -> None:
    """The fine grid must hold (M+1)(n−1)+1 timestamps (M/n consistency)."""
    if fine_grid.size != (M + 1) * (n - 1) + 1:
        raise ValueError(f"teacher grid has {fine_grid.size} timestamps but n = {n}, M = {M} need "
                         f"(M+1)(n-1)+1 = {(M + 1) * (n - 1) + 1}")


@torch.no_grad()
def teacher_states(teacher: Denoiser, x: torch.Tensor, n: int, M: int, solver: str,
                   t_min: float = DEFAULT_T_MIN, t_max: float = DEFAULT_T_MAX,
                   lower_order_final: str = "sfd") -> torch.Tensor:
    """The teacher's trajectory on the fine grid, kept at the student times: (n, B, d), [0] = x.
    ``lower_order_final``: DPM-Solver++'s final-step order rule (default SFD's, SFD.md "Teacher solvers")."""
    fine = solvers.teacher_grid(n, M, t_min, t_max)
    check_steps(n, M, fine)
    _, traj = solvers.solve(teacher, x, fine, solver, return_trajectory=True,
                            lower_order_final=lower_order_final)
    return traj[:: M + 1]


def student_step(student: nn.Module, x: torch.Tensor, t: float, s: float, n: int | None,
                 afs: bool) -> torch.Tensor:
    """One Euler step of the student t → s (SFD.md eq. 4); AFS: ``d = x/√(1+t²)``, no network call."""
    denoised = solvers.afs_denoised(x, t) if afs else student(x, t, n)
    return x + (s - t) * ((x - denoised) / t)


def sfd_iteration(student: nn.Module, states: torch.Tensor, grid: np.ndarray, algorithm: str, afs: bool,
                  opt: torch.optim.Optimizer,
                  n_cond: int | None = None) -> tuple[list[float], list[torch.Tensor]]:
    """One batch of SFD.md's pseudo-code. ``states`` (n, B, d): the teacher's states at the student
    times (``states[0]`` = the noise). For every segment i: one Euler step of the student from the
    start state, L1 loss (sum over elements, mean over batch) against ``states[i+1]``, one optimiser
    update (none for the AFS segment). The start state is the student's own detached output of the
    previous segment (Algorithm 2) or the teacher's state (Algorithm 1). Returns (losses, starts)."""
    x, losses, starts = states[0], [], []
    for i in range(len(grid) - 1):
        if algorithm == "alg1":
            x = states[i]
        starts.append(x)
        first_afs = afs and i == 0
        x_next = student_step(student, x, float(grid[i]), float(grid[i + 1]), n_cond, first_afs)
        if not first_afs:
            loss = (x_next - states[i + 1]).abs().sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        x = x_next.detach()
    return losses, starts


def distill(teacher: nn.Module, cfg: DistillConfig, student: nn.Module | None = None,
            device: str = "auto", progress: Progress | None = None,
            cancel: CancelFlag | None = None) -> DistillResult:
    """Train a student by SFD (SFD.md "Training (the paper's Algorithm 2, as the code does it)").

    student ← copy of teacher (unless given); teacher frozen; per iteration fresh noise
    ``t_max · N(0, I)``, the teacher trajectory with ``cfg.solver`` on the fine grid (no grad), then
    :func:`sfd_iteration`. Adam; learning rate × 0.1 once at half the budget. SFD-v draws n per
    iteration from the step counts of :data:`SFDV_NFE` and conditions the student on it.
    ``progress(done_trajectories, total, {"loss": …})`` after every iteration; a set ``cancel`` raises
    :class:`~opmerge_core.basics.progress.Cancelled` between two iterations."""
    dev = pick_device(device)
    teacher = teacher.to(dev).eval().requires_grad_(False)
    student = (copy.deepcopy(teacher) if student is None else student).to(dev).train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    teacher_fn = conditioned(teacher, None)
    ns = [cfg.steps_for(k) for k in SFDV_NFE] if cfg.algorithm == "sfd-v" else [cfg.n]
    grids = {n: solvers.time_grid(n, cfg.t_min, cfg.t_max) for n in ns}
    losses: list[float] = []
    start, total = time.perf_counter(), cfg.iterations
    for it in range(total):
        check_cancel(cancel)
        if it == total // 2:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.1
        n = ns[int(torch.randint(len(ns), (1,), generator=gen))]
        noise = torch.randn(cfg.batch, int(teacher.dim), generator=gen).to(dev)
        states = teacher_states(teacher_fn, cfg.t_max * noise, n, cfg.M, cfg.solver, cfg.t_min, cfg.t_max,
                                cfg.lower_order_final)
        segment_losses, _ = sfd_iteration(student, states, grids[n], cfg.algorithm, cfg.afs, opt,
                                          n if cfg.algorithm == "sfd-v" else None)
        losses.append(float(np.mean(segment_losses)) if segment_losses else 0.0)
        report(progress, (it + 1) * cfg.batch, total * cfg.batch, loss=losses[-1])
    student.eval().requires_grad_(False)
    return DistillResult(student, cfg, losses, time.perf_counter() - start, total * cfg.batch)
