"""One SFD experiment end to end (SFD.md "The project's scaled-down SFD"): load a teacher, distil a
student, evaluate it against the plain solver at the same NFE and the teacher at many steps (``job``),
and what a finished run records in the run store (``record``; the run life cycle is store/runs.py).
Used by ``opmerge sfd train``, bench/bench_sfd.py and the dashboard's SFD page; finished runs are read
back by ``history``, the Mixtures page's experiment is ``mixture_demo``.

Metrics (all on the same starting noise): ``latent_fd`` (student), ``latent_fd_solver`` (the plain
solver with the teacher at the same NFE; ``nfe_solver`` is the NFE it really used), ``latent_fd_teacher``
(the teacher with DPM-Solver++(3M) at :data:`TEACHER_REF_NFE` steps: the quality the student tries to
reach), each a Fréchet distance between Gaussian fits in latent space (``FD_LABEL``: not image FID)
against the held-out latents (never trained on), the mean over :data:`EVAL_SEEDS` with its sd in
``*_sd``, and ``latent_fd_floor`` (± ``latent_fd_floor_sd``): what exact samples score, the level below
which differences are estimator noise. For 2-D mixtures also sliced W2 against exact samples. SFD-v is
evaluated at every NFE it serves.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from opmerge_core.basics.device import pick_device, torch_threads
from opmerge_core.basics.progress import CancelFlag, Progress
from opmerge_core.basics.validation import check_int
from opmerge_core.sfd import mixtures
from opmerge_core.sfd.distill import SFDV_NFE, DistillConfig, distill
from opmerge_core.sfd.metrics import FD_LABEL, fd_floor, latent_fd, mean_sd
from opmerge_core.sfd.sampling import noise, sample_solver, sample_student, solver_nfe
from opmerge_core.sfd.teachers import TEACHERS, Teacher, load_teacher

RUN_KIND = "sfd"
TEACHER_REF_NFE = 32
N_EVAL = 4000                # evaluation samples (FD of 128-D fits needs n >> d)
N_EVAL_MAX = 100_000
EVAL_SEED = 1234             # the evaluation noise differs from any training noise (training seeds < 2^31)
EVAL_SEEDS = (EVAL_SEED, EVAL_SEED + 1, EVAL_SEED + 2)   # every latent FD: mean ± sd over these
KEEP_SAMPLES = 64            # student / solver samples kept as a run artifact (for decoded faces)


def evaluate(teacher: Teacher, student: torch.nn.Module, cfg: DistillConfig,
             n_eval: int = N_EVAL, device: str | torch.device = "cpu",
             seeds: tuple[int, ...] = EVAL_SEEDS) -> tuple[dict, dict]:
    """Metrics and kept samples for a trained student (see the module docstring): every latent FD is the
    mean over the evaluation ``seeds`` (its sd in ``*_sd``), next to its floor (``latent_fd_floor``:
    what exact samples score, ``fd_floor``). Each same-NFE baseline records the NFE it really used."""
    n_eval = check_int(n_eval, "evaluation samples", lo=16, hi=N_EVAL_MAX)
    ref = (teacher.ref_mean, teacher.ref_cov)
    kw = dict(t_min=cfg.t_min, t_max=cfg.t_max)
    lof = cfg.lower_order_final
    nfes = SFDV_NFE if cfg.algorithm == "sfd-v" else (cfg.nfe,)
    scores: dict[str, list[float]] = {}
    kept: dict[str, np.ndarray] = {}

    def score(samples: torch.Tensor, key: str, exact: np.ndarray | None) -> None:
        scores.setdefault(key, []).append(latent_fd(samples, *ref))
        if exact is not None:
            w2_key = key.replace("latent_fd", "sliced_w2")
            scores.setdefault(w2_key, []).append(mixtures.sliced_w2(samples.cpu().numpy(), exact))

    for k, seed in enumerate(seeds):
        x = noise(n_eval, teacher.model.dim, seed, device, cfg.t_max)
        exact = teacher.mixture.sample(n_eval, seed) if teacher.mixture is not None else None
        for nfe in nfes:
            student_x = sample_student(student, x, cfg.steps_for(nfe), cfg.afs,
                                           conditioned_on_n=cfg.algorithm == "sfd-v", **kw)
            solver_x = sample_solver(teacher.model, x, nfe, cfg.solver, cfg.afs, lower_order_final=lof,
                                         **kw)
            score(student_x, f"{nfe}:latent_fd", exact)
            score(solver_x, f"{nfe}:latent_fd_solver", exact)
            if k == 0 and nfe == cfg.nfe:
                kept = {"student": student_x[:KEEP_SAMPLES].cpu().numpy(),
                        "solver": solver_x[:KEEP_SAMPLES].cpu().numpy()}
        teacher_x = sample_solver(teacher.model, x, TEACHER_REF_NFE, "dpmpp3m", lower_order_final=lof,
                                      **kw)
        score(teacher_x, "latent_fd_teacher", exact)
        if k == 0:
            kept["teacher"] = teacher_x[:KEEP_SAMPLES].cpu().numpy()
    summary = _mean_sd(scores)
    by_nfe = {nfe: {key.split(":", 1)[1]: v for key, v in summary.items() if key.startswith(f"{nfe}:")}
              for nfe in nfes}
    for nfe, row in by_nfe.items():
        row["nfe_student"] = nfe
        row["nfe_solver"] = solver_nfe(nfe, cfg.solver, cfg.afs, **kw)
    floor, floor_sd = fd_floor(*ref, n_eval, teacher.ref_n, seeds)
    metrics: dict = {"fd_label": FD_LABEL, "n_eval": n_eval, "eval_seeds": list(seeds),
                     **by_nfe[cfg.nfe], "latent_fd_floor": floor, "latent_fd_floor_sd": floor_sd,
                     "fd_reference": teacher.meta.get("reference", "exact mixture moments"),
                     "fd_reference_n": teacher.ref_n,
                     **{k: v for k, v in summary.items() if ":" not in k},
                     "teacher_nfe": TEACHER_REF_NFE, "lower_order_final": lof}
    if cfg.algorithm == "sfd-v":
        metrics["by_nfe"] = {str(k): v for k, v in by_nfe.items()}
    return metrics, kept


def _mean_sd(scores: dict[str, list[float]]) -> dict[str, float]:
    """key -> mean and key_sd -> sd over the evaluation seeds (``latent_fd:3`` style keys kept)."""
    out: dict[str, float] = {}
    for key, values in scores.items():
        out[key], out[f"{key}_sd"] = mean_sd(values)
    return out


def job(teacher_name: str, cfg: DistillConfig, preset: str = "ring8", assets: str | None = None,
        device: str = "auto", n_eval: int = N_EVAL, threads: int | None = 1, *,
        progress: Progress | None = None, cancel: CancelFlag | None = None) -> dict:
    """The job function of an SFD run (``opmerge sfd train``, the dashboard's SFD page): distil and
    evaluate on ``threads`` torch CPU threads (restored afterwards; None leaves them alone), with
    ``progress(done, total, {"loss": …})`` over trajectories; ``Cancelled`` if ``cancel`` is set.
    Returns the metrics, the kept samples and the student's weights (``record`` writes them)."""
    with torch_threads(threads):
        teacher = load_teacher(teacher_name, assets, preset)
        result = distill(teacher.model, cfg, device=device, progress=progress, cancel=cancel)
        metrics, kept = evaluate(teacher, result.student, cfg, n_eval, pick_device(device))
    metrics.update({"finetune_seconds": result.seconds, "trajectories": result.trajectories,
                    "final_loss": result.losses[-1] if result.losses else None,
                    "teacher_label": teacher.label, "loss_curve": _thin(result.losses)})
    student = {"state_dict": {k: v.cpu() for k, v in result.student.state_dict().items()},
               "config": result.student.config()}
    return {"metrics": metrics, "kept": kept, "student": student}


def run_params(teacher_name: str, cfg: DistillConfig, preset: str, device: str) -> dict:
    """The parameters an SFD run is recorded with."""
    return {"teacher": teacher_name, "preset": preset if teacher_name == "mixture-2d" else None,
            **asdict(cfg), "device": str(device)}


def record(out: dict, folder: Path) -> dict:
    """The ``finalize`` step of an SFD run (runs.py): the student's weights and samples into its run
    directory; returns the metrics and artifact paths."""
    torch.save(out["student"], folder / "student.pt")
    np.savez(folder / "samples.npz", **out["kept"])
    return {"metrics": out["metrics"],
            "artifacts": {"student": str(folder / "student.pt"), "samples": str(folder / "samples.npz")}}


def available_teachers(assets: str | None = None) -> dict[str, str | None]:
    """Each teacher name → None if it can be loaded, else the one-line reason (e.g. missing weights)."""
    out: dict[str, str | None] = {}
    for name in TEACHERS:
        try:
            load_teacher(name, assets)
            out[name] = None
        except ValueError as exc:
            out[name] = str(exc)
    return out


def _thin(values: list[float], keep: int = 200) -> list[float]:
    """At most ``keep`` evenly spaced points of a loss curve (for plots)."""
    if len(values) <= keep:
        return [float(v) for v in values]
    idx = np.linspace(0, len(values) - 1, keep).round().astype(int)
    return [float(values[i]) for i in idx]
