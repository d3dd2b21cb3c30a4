"""Simple and Fast Distillation (SFD.md): teachers, the SFD training loop (Algorithm 2), the local
Algorithm 1, SFD-v (one student for several step counts), and the latent FD metric.

Everything is torch and device-agnostic. A denoiser is any callable ``D(x, t) -> x0_hat`` on a batch
``x`` (B, d) and a time (a float, as the solvers of :mod:`opmerge_core.sfd.solvers` pass it). The networks
here also take an optional step count ``n`` (SFD-v conditioning): ``net(x, t, n=None)``.

Teachers
  - :class:`GMMDenoiser`: the exact denoiser of a Gaussian mixture (mixtures.py) as a torch module whose
    mixture parameters are ``nn.Parameter`` s, plus a residual MLP whose output layer starts at zero.
    The frozen teacher is exact; a student copied from it starts exactly at the teacher (SFD.md
    "student ← copy of teacher weights") and can bend both the mixture and the residual.
  - :class:`MLPDenoiser`: a small MLP with EDM preconditioning (Karras et al. 2022, Table 1):
    ``D(x, σ) = c_skip x + c_out F(c_in x, c_noise)``, ``c_skip = σd²/(σ² + σd²)``,
    ``c_out = σ σd/√(σ² + σd²)``, ``c_in = 1/√(σ² + σd²)``, ``c_noise = ln(σ)/4``, trained by
    denoising score matching with the EDM loss weight ``(σ² + σd²)/(σ σd)²`` and ``ln σ ~ N(−1.2, 1.2²)``
    (:func:`train_teacher`).

Distillation (:func:`distill`, SFD.md "Training"): Algorithm 2 ("sfd"), Algorithm 1 ("alg1") and
SFD-v ("sfd-v"). Budgets count trajectories (batch × iterations).
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from opmerge_core.infra.device import pick_device
from opmerge_core.infra.validation import check_choice, check_int, check_positive
from opmerge_core.latent.latents import assets_dir
from opmerge_core.sfd import mixtures, solvers
from opmerge_core.sfd.mixtures import GaussianMixture

ALGORITHMS = ("sfd", "alg1", "sfd-v")
ALGORITHM_LABELS = {
    "sfd": "SFD (Algorithm 2: student continues from its own state)",
    "alg1": "Algorithm 1 (local: every segment starts from the teacher's state)",
    "sfd-v": "SFD-v (one student, step count n as conditioning)",
}
NFE_MIN, NFE_MAX = 1, 5            # student NFE range (SFD.md: NFE 1–5 on CPU)
SFDV_NFE = (2, 3, 4, 5)            # SFD-v serves these NFEs (n ∈ {4, 5, 6, 7} with AFS)
N_STEPS_MAX = 8                    # largest step count n the step embedding knows (n ≤ 7 used)
BUDGET_MAX = 10_000_000            # trajectories
BATCH_MAX = 4096
WIDTH_MAX, BLOCKS_MAX = 2048, 16
P_MEAN, P_STD = -1.2, 1.2          # EDM log-normal σ sampling for the teacher's DSM loss
SFD_LR = 2e-3                      # Adam lr of the student (SFD.md: 5e-5 for big U-Nets; tuned for our MLPs)
SFD_BATCH = 128
DEFAULT_BUDGET = 80_000            # trajectories: NFE-3 SFD on the latents in < 3 min on 1 CPU thread
MIXTURE_BUDGET = 8_192             # enough for the 2-D mixtures (about a second)


@contextlib.contextmanager
def torch_threads(n: int | None = 1):
    """Run a block with ``n`` torch CPU threads (restored afterwards; None = unchanged). The small MLPs
    here are fastest on one thread, and a second thread contending with other work on a 2-core
    machine can be more than ten times slower."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(check_int(n, "threads", hi=256))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Denoiser(Protocol):
    """``D(x, t) ≈ E[x0 | x_t = x]`` for a batch x (B, d) at time t (float)."""

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor: ...


# ------------------------------------------------------------------------------------ networks

def _sigma_column(t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The time as a (B, 1) column of x's dtype/device."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(-1, 1).expand(x.shape[0], 1)


class FiLMBlock(nn.Module):
    """A residual MLP block whose hidden layer is modulated by the time embedding (scale/shift) and,
    for SFD-v, by a step-count embedding (zero at init, so a fresh student equals its teacher)."""

    def __init__(self, width: int, emb: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.film = nn.Linear(emb, 2 * width)
        self.step_film = nn.Embedding(N_STEPS_MAX + 1, 2 * width)
        nn.init.zeros_(self.step_film.weight)

    def forward(self, h: torch.Tensor, emb: torch.Tensor, n: int | None) -> torch.Tensor:
        mod = self.film(emb)
        if n is not None:
            mod = mod + self.step_film.weight[n]
        scale, shift = mod.chunk(2, dim=-1)
        y = self.fc1(nn.functional.silu(self.norm(h))) * (1 + scale) + shift
        return h + self.fc2(nn.functional.silu(y))


class Backbone(nn.Module):
    """F(c_in x, c_noise, n): input layer, FiLM blocks, output layer."""

    def __init__(self, dim: int, width: int = 256, blocks: int = 3, freqs: int = 8, zero_out: bool = False):
        super().__init__()
        check_int(dim, "dim", hi=4096)
        check_int(width, "width", lo=4, hi=WIDTH_MAX)
        check_int(blocks, "blocks", hi=BLOCKS_MAX)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(freqs, dtype=torch.float32))
        self.time_mlp = nn.Sequential(nn.Linear(2 * freqs, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(FiLMBlock(width, width) for _ in range(blocks))
        self.out = nn.Linear(width, dim)
        if zero_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, n: int | None = None) -> torch.Tensor:
        angles = c_noise * self.freqs
        emb = nn.functional.silu(self.time_mlp(torch.cat([angles.sin(), angles.cos()], dim=-1)))
        h = self.inp(x_in)
        for block in self.blocks:
            h = block(h, emb, n)
        return self.out(nn.functional.silu(h))


class MLPDenoiser(nn.Module):
    """EDM-preconditioned MLP denoiser (Karras et al. 2022, Table 1)."""

    def __init__(self, dim: int, sigma_data: float = 1.0, width: int = 256, blocks: int = 3,
                 data_mean: np.ndarray | None = None):
        super().__init__()
        self.dim, self.width, self.n_blocks = dim, width, blocks
        self.sigma_data = check_positive(sigma_data, "sigma_data", hi=1e4)
        mean = torch.zeros(dim) if data_mean is None else torch.as_tensor(data_mean, dtype=torch.float32)
        self.register_buffer("data_mean", mean.reshape(dim))   # data are centred before the network
        self.net = Backbone(dim, width, blocks)

    def config(self) -> dict:
        return {"kind": "mlp", "dim": self.dim, "sigma_data": self.sigma_data, "width": self.width,
                "blocks": self.n_blocks}

    def forward(self, x: torch.Tensor, t: float | torch.Tensor, n: int | None = None) -> torch.Tensor:
        sigma, sd = _sigma_column(t, x), self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4
        xc = x - self.data_mean
        return self.data_mean + c_skip * xc + c_out * self.net(c_in * xc, c_noise, n)


class GMMDenoiser(nn.Module):
    """The exact mixture denoiser (mixtures.py) with trainable mixture parameters, plus a residual
    ``c_out(σ) F(c_in x, c_noise, n)`` whose output layer starts at zero (so at init it is exact)."""

    def __init__(self, gmm: GaussianMixture, width: int = 128, blocks: int = 2):
        super().__init__()
        self.dim, self.K, self.width, self.n_blocks = gmm.dim, gmm.K, width, blocks
        self.log_weights = nn.Parameter(torch.as_tensor(np.log(gmm.weights), dtype=torch.float32))
        self.means = nn.Parameter(torch.as_tensor(gmm.means, dtype=torch.float32))
        self.log_vars = nn.Parameter(torch.as_tensor(np.log(gmm.variances), dtype=torch.float32))
        cov = gmm.covariance()
        self.sigma_data = float(np.sqrt(np.trace(cov) / gmm.dim))
        self.register_buffer("data_mean", torch.as_tensor(gmm.mean(), dtype=torch.float32))
        with torch.random.fork_rng(devices=[]):   # the same hidden init whatever ran before: reproducible
            torch.manual_seed(0)
            self.residual = Backbone(gmm.dim, width, blocks, zero_out=True)

    def config(self) -> dict:
        return {"kind": "gmm", "dim": self.dim, "K": self.K, "width": self.width, "blocks": self.n_blocks}

    def mixture(self) -> GaussianMixture:
        return GaussianMixture(torch.softmax(self.log_weights, 0).detach().cpu().double().numpy(),
                               self.means.detach().cpu().double().numpy(),
                               self.log_vars.detach().exp().cpu().double().numpy())

    def forward(self, x: torch.Tensor, t: float | torch.Tensor, n: int | None = None) -> torch.Tensor:
        sigma, sd = _sigma_column(t, x), self.sigma_data
        var = self.log_vars.exp()                                      # (K, d)
        v = var[None] + sigma[:, :, None] ** 2                         # (B, K, d)
        diff = x[:, None, :] - self.means[None]
        logp = torch.log_softmax(self.log_weights, 0) - 0.5 * (v.log() + diff**2 / v).sum(-1)
        r = torch.softmax(logp, dim=1)
        exact = torch.einsum("bk,bkd->bd", r, self.means[None] + var[None] / v * diff)
        c_in, c_out = 1 / (sigma**2 + sd**2).sqrt(), sigma * sd / (sigma**2 + sd**2).sqrt()
        return exact + c_out * self.residual(c_in * (x - self.data_mean), sigma.log() / 4, n)


def conditioned(net: nn.Module, n: int | None) -> Denoiser:
    """``net`` as a solver denoiser ``D(x, t)``, with the step count ``n`` fixed (SFD-v)."""
    return lambda x, t: net(x, t, n)


# --------------------------------------------------------------------------------- teacher (DSM)

@dataclass
class TeacherTraining:
    steps: int = 4000
    batch: int = 512
    lr: float = 2e-3
    width: int = 256
    blocks: int = 3
    seed: int = 0


def train_teacher(data: np.ndarray, cfg: TeacherTraining | None = None, device: str = "auto",
                  progress: Callable[[int, int, float], None] | None = None,
                  cancel: threading.Event | None = None) -> MLPDenoiser:
    """Denoising score matching (EDM): ``σ = exp(N(P_mean, P_std²))``, ``n ~ N(0, σ² I)``,
    loss ``(σ² + σd²)/(σ σd)² ‖D(x + n, σ) − x‖²`` averaged; Adam with a cosine-decayed learning rate.
    σ_data is the standard deviation of the centred data (all coordinates pooled)."""
    cfg = cfg or TeacherTraining()
    x = np.asarray(data, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        raise ValueError(f"teacher data must be a finite (n, d) array with n >= 2, got shape {x.shape}")
    steps = check_int(cfg.steps, "teacher steps", hi=10**6)
    batch = check_int(cfg.batch, "batch", hi=BATCH_MAX)
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    mean = x.mean(0)
    sd = float((x - mean).std())
    net = MLPDenoiser(x.shape[1], sd, cfg.width, cfg.blocks, data_mean=mean).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    data_t = torch.as_tensor(x, device=dev)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    for step in range(steps):
        if cancel is not None and cancel.is_set():
            break
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(len(x), (batch,), generator=gen).to(dev)
        x0 = data_t[idx]
        sigma = (torch.randn(batch, 1, generator=gen) * P_STD + P_MEAN).exp().to(dev)
        noise = torch.randn(x0.shape, generator=gen).to(dev) * sigma
        weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
        loss = (weight * (net(x0 + noise, sigma) - x0) ** 2).sum(1).mean() / x.shape[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step + 1, steps, loss.item())
    return net.eval()


# ------------------------------------------------------------------------------------ distillation

@dataclass
class DistillConfig:
    """One distillation run. ``nfe``: student NFE (for SFD-v: the NFE evaluated by default)."""

    nfe: int = 3
    algorithm: str = "sfd"
    solver: str = "dpmpp3m"          # the teacher's solver on the fine grid
    M: int = 3                       # intermediate teacher steps per student step (K = M + 1)
    afs: bool = False
    budget: int = DEFAULT_BUDGET     # trajectories
    batch: int = SFD_BATCH
    lr: float = SFD_LR
    seed: int = 0
    t_min: float = solvers.T_MIN
    t_max: float = solvers.T_MAX
    lower_order_final: str = "sfd"   # DPM-Solver++ final-step orders (solvers.dpmpp_orders): SFD's rule

    def validate(self) -> DistillConfig:
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
        return self

    def steps_for(self, nfe: int) -> int:
        """n = number of timestamps: NFE + 1, or NFE + 2 with AFS (SFD.md)."""
        return nfe + 1 + int(self.afs)

    @property
    def n(self) -> int:
        return self.steps_for(self.nfe)

    @property
    def iterations(self) -> int:
        return math.ceil(self.budget / self.batch)


@dataclass
class DistillResult:
    student: nn.Module
    config: DistillConfig
    losses: list[float] = field(default_factory=list)    # mean segment loss per iteration
    seconds: float = 0.0
    trajectories: int = 0
    cancelled: bool = False


def check_steps(n: int, M: int, fine_grid: np.ndarray) -> None:
    """The fine grid must hold (M+1)(n−1)+1 timestamps (M/n consistency)."""
    if fine_grid.size != (M + 1) * (n - 1) + 1:
        raise ValueError(f"teacher grid has {fine_grid.size} timestamps but n = {n}, M = {M} need "
                         f"(M+1)(n-1)+1 = {(M + 1) * (n - 1) + 1}")


@torch.no_grad()
def teacher_states(teacher: Denoiser, x: torch.Tensor, n: int, M: int, solver: str,
                   t_min: float = solvers.T_MIN, t_max: float = solvers.T_MAX,
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
            device: str = "auto", progress: Callable[[int, int, float], None] | None = None,
            cancel: threading.Event | None = None) -> DistillResult:
    """Train a student by SFD (SFD.md "Training (the paper's Algorithm 2, as the code does it)").

    student ← copy of teacher (unless given); teacher frozen; per iteration fresh noise
    ``t_max · N(0, I)``, the teacher trajectory with ``cfg.solver`` on the fine grid (no grad), then
    :func:`sfd_iteration`. Adam; learning rate × 0.1 once at half the budget. SFD-v draws n per
    iteration from the step counts of :data:`SFDV_NFE` and conditions the student on it.
    ``progress(done_trajectories, total, loss)`` and ``cancel`` are checked every iteration."""
    cfg.validate()
    dev = pick_device(device)
    teacher = teacher.to(dev).eval().requires_grad_(False)
    student = (copy.deepcopy(teacher) if student is None else student).to(dev).train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    teacher_fn = conditioned(teacher, None)
    ns = [cfg.steps_for(k) for k in SFDV_NFE] if cfg.algorithm == "sfd-v" else [cfg.n]
    grids = {n: solvers.time_grid(n, cfg.t_min, cfg.t_max) for n in ns}
    result = DistillResult(student, cfg)
    start, total = time.perf_counter(), cfg.iterations
    for it in range(total):
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        if it == total // 2:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.1
        n = ns[int(torch.randint(len(ns), (1,), generator=gen))]
        noise = torch.randn(cfg.batch, _dim(teacher), generator=gen).to(dev)
        states = teacher_states(teacher_fn, cfg.t_max * noise, n, cfg.M, cfg.solver, cfg.t_min, cfg.t_max,
                                cfg.lower_order_final)
        losses, _ = sfd_iteration(student, states, grids[n], cfg.algorithm, cfg.afs, opt,
                                  n if cfg.algorithm == "sfd-v" else None)
        result.losses.append(float(np.mean(losses)) if losses else 0.0)
        result.trajectories += cfg.batch
        if progress is not None:
            progress(result.trajectories, total * cfg.batch, result.losses[-1])
    result.seconds = time.perf_counter() - start
    student.eval().requires_grad_(False)
    return result


def _dim(net: nn.Module) -> int:
    return int(net.dim)


# ------------------------------------------------------------------------------ teachers on disk

TEACHERS = ("latent-mlp", "latent-gmm", "mixture-2d")
TEACHER_LABELS = {
    "latent-mlp": "MLP denoiser trained on the CelebA VAE latents (assets/sfd_latent_teacher.pt)",
    "latent-gmm": "exact denoiser of a diagonal GMM fitted to the CelebA latents (assets/sfd_latent_gmm.npz)",
    "mixture-2d": "exact denoiser of a 2-D teaching mixture",
}
TEACHER_FILE = "sfd_latent_teacher.pt"
GMM_FILE = "sfd_latent_gmm.npz"
REGENERATE = "opmerge sfd teacher --latents LATENTS.npy --assets assets (see assets/README.md)"


@dataclass
class Teacher:
    """A frozen teacher with the reference Gaussian fit of its data (for the latent FD). For the latent
    teachers the reference is the held-out split (never trained on), fitted from ``ref_n`` latents; for
    the mixtures it is the exact mixture's mean and covariance (``ref_n = None``: no estimation noise)."""

    name: str
    model: nn.Module
    ref_mean: np.ndarray
    ref_cov: np.ndarray
    label: str
    mixture: GaussianMixture | None = None     # exact samples for the sliced W2 (mixtures only)
    ref_n: int | None = None                   # latents behind ref_mean/ref_cov (None: exact moments)
    meta: dict = field(default_factory=dict)   # how the teacher was made (split seed and sizes, ...)


def save_teacher(net: MLPDenoiser, path: str, data: np.ndarray, meta: dict | None = None) -> int:
    """Save weights (state_dict, loadable with ``weights_only=True``), config, and the data's mean and
    covariance (aggregate statistics: the reference of the latent FD). Returns the size in bytes."""
    mu, cov = gaussian_fit(data)
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "config": net.config(), "ref_mean": torch.as_tensor(mu), "ref_cov": torch.as_tensor(cov),
                "meta": meta or {}}, path)
    return Path(path).stat().st_size


def load_mlp_teacher(path: str) -> tuple[MLPDenoiser, np.ndarray, np.ndarray]:
    """The teacher network and its FD reference (mean, covariance); see :func:`load_teacher_file`."""
    net, mu, cov, _ = load_teacher_file(path)
    return net, mu, cov


def load_teacher_file(path: str) -> tuple[MLPDenoiser, np.ndarray, np.ndarray, dict]:
    if not Path(path).is_file():
        raise ValueError(f"missing teacher weights {path}; regenerate them with: {REGENERATE}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        cfg = obj["config"]
        net = MLPDenoiser(int(cfg["dim"]), float(cfg["sigma_data"]), int(cfg["width"]), int(cfg["blocks"]))
        net.load_state_dict(obj["state_dict"])
    except Exception as exc:  # corrupt file, wrong keys or shapes
        raise ValueError(f"teacher weights {path} are unreadable ({type(exc).__name__}); "
                         f"regenerate them with: {REGENERATE}") from None
    meta = {k: v for k, v in dict(obj.get("meta") or {}).items() if isinstance(v, (int, float, str))}
    return net.eval(), obj["ref_mean"].double().numpy(), obj["ref_cov"].double().numpy(), meta


def load_teacher(name: str, assets: str | None = None, preset: str = "ring8") -> Teacher:
    """``latent-mlp`` / ``latent-gmm`` from the assets folder (missing file → ValueError with the
    command that makes it), ``mixture-2d`` from :data:`mixtures.PRESETS`."""
    name = check_choice(name, TEACHERS, "teacher")
    if name == "mixture-2d":
        g = mixtures.preset(preset)
        return Teacher(name, GMMDenoiser(g), g.mean(), g.covariance(),
                       f"{TEACHER_LABELS[name]} ({mixtures.PRESET_LABELS[preset]})", g)
    folder = assets_dir(assets)
    if name == "latent-mlp":
        net, mu, cov, meta = load_teacher_file(str(folder / TEACHER_FILE))
        return Teacher(name, net, mu, cov, TEACHER_LABELS[name], ref_n=_ref_n(meta), meta=meta)
    path = folder / GMM_FILE
    if not path.is_file():
        raise ValueError(f"missing teacher file {path}; regenerate it with: {REGENERATE}")
    try:
        g = mixtures.load_gmm(str(path))
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"teacher file {path} is unreadable ({type(exc).__name__}); "
                         f"regenerate it with: {REGENERATE}") from None
    try:                       # the FD reference is the MLP teacher's held-out split, if it is there
        _, mu, cov, meta = load_teacher_file(str(folder / TEACHER_FILE))
    except ValueError:         # else the mixture's own moments
        mu, cov, meta = g.mean(), g.covariance(), {"reference": "moments of the fitted GMM"}
    return Teacher(name, GMMDenoiser(g), mu, cov, TEACHER_LABELS[name], g, ref_n=_ref_n(meta), meta=meta)


def _ref_n(meta: dict) -> int | None:
    n = meta.get("n_held_out", meta.get("n_latents"))
    return int(n) if n else None


# ------------------------------------------------------------------------------------------ sampling

def noise(n_samples: int, dim: int, seed: int = 0, device: str | torch.device = "cpu",
          t_max: float = solvers.T_MAX) -> torch.Tensor:
    """``t_max · N(0, I)`` starting points, reproducible across devices (drawn on the CPU)."""
    n_samples = check_int(n_samples, "number of samples", hi=1_000_000)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return (t_max * torch.randn(n_samples, dim, generator=gen)).to(device)


@torch.no_grad()
def sample_student(student: nn.Module, x: torch.Tensor, n: int, afs: bool, conditioned_on_n: bool = False,
                   t_min: float = solvers.T_MIN, t_max: float = solvers.T_MAX,
                   return_trajectory: bool = False):
    """The student's Euler sampler on the n-timestamp grid (NFE = n − 1 − afs)."""
    grid = solvers.time_grid(n, t_min, t_max)
    return solvers.solve(conditioned(student, n if conditioned_on_n else None), x, grid, "euler", afs=afs,
                         return_trajectory=return_trajectory)


def solver_grid(nfe: int, solver: str = "dpmpp3m", afs: bool = False, t_min: float = solvers.T_MIN,
                t_max: float = solvers.T_MAX) -> np.ndarray:
    """The grid of the plain solver at a requested NFE: NFE + 1 (+1 with AFS) timestamps; Heun uses two
    calls per step, so ⌈(NFE + AFS)/2⌉ + 1 timestamps — at an odd NFE it really uses one more call
    (:func:`solver_nfe` gives the count really used)."""
    steps = math.ceil((nfe + int(afs)) / 2) if solver == "heun" else nfe + int(afs)
    return solvers.time_grid(steps + 1, t_min, t_max)


def solver_nfe(nfe: int, solver: str = "dpmpp3m", afs: bool = False, t_min: float = solvers.T_MIN,
               t_max: float = solvers.T_MAX) -> int:
    """The NFE :func:`sample_solver` really uses when asked for ``nfe`` (Heun: even counts only)."""
    return solvers.nfe(solver, solver_grid(nfe, solver, afs, t_min, t_max), afs)


@torch.no_grad()
def sample_solver(teacher: nn.Module, x: torch.Tensor, nfe: int, solver: str = "dpmpp3m", afs: bool = False,
                  t_min: float = solvers.T_MIN, t_max: float = solvers.T_MAX,
                  return_trajectory: bool = False, lower_order_final: str = "sfd"):
    """A plain solver with the teacher at (about) a given NFE on :func:`solver_grid`."""
    grid = solver_grid(nfe, solver, afs, t_min, t_max)
    return solvers.solve(conditioned(teacher, None), x, grid, solver, afs=afs,
                         return_trajectory=return_trajectory, lower_order_final=lower_order_final)


# ----------------------------------------------------------------------------------------- metrics

def gaussian_fit(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of samples (n, d)."""
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"need (n >= 2, d) samples for a Gaussian fit, got {a.shape}")
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between Gaussians: ``‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)``
    (symmetric eigendecompositions only, so it is stable for singular covariances)."""
    s1 = _sqrtm_psd(cov1)
    inner = s1 @ cov2 @ s1
    w = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(w, 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


FD_LABEL = "latent FD (Fréchet distance of Gaussian fits in latent space, not image FID)"


def latent_fd(samples: np.ndarray | torch.Tensor, ref_mean: np.ndarray, ref_cov: np.ndarray) -> float:
    """Latent FD of generated samples against the reference Gaussian fit (see :data:`FD_LABEL`)."""
    mu, cov = gaussian_fit(samples)
    return frechet_distance(mu, cov, ref_mean, ref_cov)


def fd_floor(ref_mean: np.ndarray, ref_cov: np.ndarray, n_samples: int, ref_n: int | None,
             seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[float, float]:
    """The latent FD a perfect generator scores (mean, sd over ``seeds``): the FD between the Gaussian
    fits of ``n_samples`` exact samples of ``N(ref_mean, ref_cov)`` and of ``ref_n`` other exact samples
    (the reference's own estimation noise; ``ref_n = None``: against the exact moments). A latent FD
    within a few sd of this floor cannot be told apart from the data."""
    n_samples = check_int(n_samples, "number of samples", lo=2, hi=1_000_000)
    d = ref_mean.shape[0]
    w, v = np.linalg.eigh((ref_cov + ref_cov.T) / 2)
    root = v * np.sqrt(np.clip(w, 0, None))

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return ref_mean + rng.standard_normal((n, d)) @ root.T

    scores = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        mu, cov = gaussian_fit(draw(rng, n_samples))
        ref = (ref_mean, ref_cov) if ref_n is None else gaussian_fit(draw(rng, int(ref_n)))
        scores.append(frechet_distance(mu, cov, *ref))
    return mean_sd(scores)


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    a = np.asarray(list(values), dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
