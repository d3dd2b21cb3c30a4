"""The Mixtures page's experiment (SFD.md on 2-D mixtures): ``MixtureSpec`` and its job
``train_mixture_demo`` — SFD and Algorithm 1 students distilled from an exact 2-D mixture teacher,
with trajectories, samples and mode coverage next to the plain solver and the teacher."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from opmerge_core.basics.device import torch_threads
from opmerge_core.basics.progress import CancelFlag, Progress, report
from opmerge_core.basics.validation import check_int
from opmerge_core.sfd import mixtures, solvers
from opmerge_core.sfd.distill import DistillConfig, distill
from opmerge_core.sfd.lab import EVAL_SEED
from opmerge_core.sfd.metrics import latent_fd
from opmerge_core.sfd.networks import conditioned
from opmerge_core.sfd.sampling import noise, sample_solver, sample_student, solver_grid, solver_nfe
from opmerge_core.sfd.teachers import load_teacher

MIXTURE_PAGE_BUDGET = 32_768    # trajectories per student on the Mixtures page (see MixtureSpec)


@dataclass(frozen=True)
class MixtureSpec:
    """One Mixtures-page experiment (picklable: plain fields only). Two students (SFD and Algorithm 1)
    are distilled from the exact mixture teacher with ``budget`` trajectories each."""

    preset: str = "ring8"
    nfe: int = 2
    solver: str = "dpmpp3m"
    M: int = 3
    afs: bool = False
    budget: int = MIXTURE_PAGE_BUDGET
    lr: float = 3e-3
    seed: int = 0
    n_paths: int = 12
    n_samples: int = 3000
    lower_order_final: str = "sfd"

    def __post_init__(self) -> None:
        check_int(self.n_paths, "trajectories shown", hi=200)
        check_int(self.n_samples, "samples", lo=100, hi=20_000)
        mixtures.preset(self.preset)
        self.configs()                                  # every student's config is valid too

    def configs(self) -> dict[str, DistillConfig]:
        """The distillation config of each student."""
        return {alg: DistillConfig(nfe=self.nfe, algorithm=alg, solver=self.solver, M=self.M,
                                   afs=self.afs, budget=self.budget, lr=self.lr, seed=self.seed,
                                   lower_order_final=self.lower_order_final)
                for alg in ("sfd", "alg1")}


def train_mixture_demo(spec: MixtureSpec, progress: Progress | None = None,
                       cancel: CancelFlag | None = None) -> dict:
    """Everything the Mixtures page draws, for one 2-D mixture (the job-runner protocol
    ``fn(spec, progress=None, cancel=None)``): trajectories (teacher on its fine grid, plain solver, SFD
    and Algorithm 1 students on theirs), final samples of each plus exact data, and per method the sliced
    W2 and FD against exact samples and the mode coverage (``mixtures.mode_coverage``).

    ``progress(done, total, info)``: trajectories trained over both students, ``info`` = {"student",
    "loss"}. ``cancel``: any object with ``is_set()``; when set, training stops and
    :class:`~opmerge_core.basics.progress.Cancelled` is raised. Runs on one torch thread."""
    configs = spec.configs()
    with torch_threads(1):
        return _mixture_demo(spec, configs, progress, cancel)


def _mixture_demo(spec: MixtureSpec, configs: dict[str, DistillConfig], progress: Progress | None,
                  cancel: CancelFlag | None) -> dict:
    teacher = load_teacher("mixture-2d", preset=spec.preset)
    total = sum(c.iterations * c.batch for c in configs.values())
    students, offset = {}, 0
    for alg, cfg in configs.items():
        def part(done: int, _total: int, info: dict, alg=alg, offset=offset) -> None:
            report(progress, offset + done, total, student=alg, **info)

        students[alg] = distill(teacher.model, cfg, device="cpu", progress=part, cancel=cancel)
        offset += cfg.iterations * cfg.batch
    cfg, lof, n_paths = configs["sfd"], spec.lower_order_final, spec.n_paths
    x = noise(spec.n_samples, 2, spec.seed + EVAL_SEED)
    fine = solvers.teacher_grid(cfg.n, spec.M)
    with torch.no_grad():
        _, t_traj = solvers.solve(conditioned(teacher.model, None), x, fine, spec.solver,
                                      return_trajectory=True, lower_order_final=lof)
        s_final, s_traj = sample_solver(teacher.model, x, spec.nfe, spec.solver, spec.afs,
                                            return_trajectory=True, lower_order_final=lof)
    paths = {"teacher": (fine, t_traj[:, :n_paths].numpy()),
             "solver": (solver_grid(spec.nfe, spec.solver, spec.afs), s_traj[:, :n_paths].numpy())}
    finals = {"data": teacher.mixture.sample(spec.n_samples, spec.seed + 1), "teacher": t_traj[-1].numpy(),
              "solver": s_final.numpy()}
    grid = solvers.time_grid(cfg.n)
    for alg, result in students.items():
        final, traj = sample_student(result.student, x, cfg.n, spec.afs, return_trajectory=True)
        paths[alg] = (grid, traj[:, :n_paths].numpy())
        finals[alg] = final.numpy()
    exact = teacher.mixture.sample(spec.n_samples, spec.seed + 2)
    nfes = {"teacher": len(fine) - 1, "solver": solver_nfe(spec.nfe, spec.solver, spec.afs),
            "sfd": spec.nfe, "alg1": spec.nfe}
    metrics = []
    for k, v in finals.items():
        near, hit = mixtures.mode_coverage(teacher.mixture, v)
        metrics.append({"method": k, "nfe": nfes.get(k), "sliced_w2": mixtures.sliced_w2(v, exact),
                        "fd": latent_fd(v, teacher.ref_mean, teacher.ref_cov), "near_modes": near,
                        "modes_hit": hit,
                        "finetune_seconds": students[k].seconds if k in students else 0.0})
    return {"paths": paths, "finals": finals, "metrics": metrics, "n": cfg.n, "fine_grid": fine,
            "label": teacher.label, "K": teacher.mixture.K, "spec": asdict(spec)}
