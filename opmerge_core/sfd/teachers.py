"""The SFD lab's teachers (SFD.md "The project's scaled-down SFD"): which exist, how the latent MLP
teacher is trained (denoising score matching, EDM), saved and loaded, with the reference Gaussian fit
of its data that every latent FD is measured against (SFD.md "An honest latent FD").

- ``latent-mlp``: :class:`~opmerge_core.sfd.networks.MLPDenoiser` trained by :func:`train_teacher` on the
  CelebA VAE latents (``assets/sfd_latent_teacher.pt``, built by ``opmerge sfd teacher``);
- ``latent-gmm``: the exact denoiser (:class:`~opmerge_core.sfd.networks.GMMDenoiser`) of a diagonal GMM
  fitted to the same latents (``assets/sfd_latent_gmm.npz``);
- ``mixture-2d``: the exact denoiser of a 2-D teaching mixture (:data:`mixtures.PRESETS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from opmerge_core.basics.device import pick_device
from opmerge_core.basics.progress import CancelFlag, Progress, check_cancel, report
from opmerge_core.basics.validation import check_choice, check_int, check_positive
from opmerge_core.latent.latents import assets_dir
from opmerge_core.sfd import mixtures
from opmerge_core.sfd.metrics import gaussian_fit
from opmerge_core.sfd.mixtures import GaussianMixture
from opmerge_core.sfd.networks import BATCH_MAX, BLOCKS_MAX, WIDTH_MAX, GMMDenoiser, MLPDenoiser

TEACHER_LABELS = {
    "latent-mlp": "MLP denoiser trained on the CelebA VAE latents (assets/sfd_latent_teacher.pt)",
    "latent-gmm": "exact denoiser of a diagonal GMM fitted to the CelebA latents (assets/sfd_latent_gmm.npz)",
    "mixture-2d": "exact denoiser of a 2-D teaching mixture",
}
TEACHERS = tuple(TEACHER_LABELS)
TEACHER_FILE = "sfd_latent_teacher.pt"
GMM_FILE = "sfd_latent_gmm.npz"
REGENERATE = "opmerge sfd teacher --latents LATENTS.npy --assets assets (see assets/README.md)"
P_MEAN, P_STD = -1.2, 1.2          # EDM log-normal σ sampling for the teacher's DSM loss
TEACHER_STEPS_MAX = 10**6


# ----------------------------------------------------------------------------------- training (DSM)

@dataclass(frozen=True)
class TeacherTraining:
    """How :func:`train_teacher` trains the latent MLP teacher (bad values → ValueError)."""

    steps: int = 4000
    batch: int = 512
    lr: float = 2e-3
    width: int = 256
    blocks: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.steps, "teacher steps", hi=TEACHER_STEPS_MAX)
        check_int(self.batch, "batch", hi=BATCH_MAX)
        check_positive(self.lr, "lr", hi=1.0)
        check_int(self.width, "width", lo=4, hi=WIDTH_MAX)
        check_int(self.blocks, "blocks", hi=BLOCKS_MAX)
        check_int(self.seed, "seed", lo=0, hi=2**31 - 1)


def train_teacher(data: np.ndarray, cfg: TeacherTraining | None = None, device: str = "auto",
                  progress: Progress | None = None, cancel: CancelFlag | None = None) -> MLPDenoiser:
    """Denoising score matching (EDM): ``σ = exp(N(P_mean, P_std²))``, ``n ~ N(0, σ² I)``,
    loss ``(σ² + σd²)/(σ σd)² ‖D(x + n, σ) − x‖²`` averaged; Adam with a cosine-decayed learning rate.
    σ_data is the standard deviation of the centred data (all coordinates pooled).
    ``progress(step, steps, {"loss": …})`` after every step; a set ``cancel`` raises
    :class:`~opmerge_core.basics.progress.Cancelled` between two steps."""
    cfg = cfg or TeacherTraining()
    x = np.asarray(data, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        raise ValueError(f"teacher data must be a finite (n, d) array with n >= 2, got shape {x.shape}")
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    mean = x.mean(0)
    sd = float((x - mean).std())
    net = MLPDenoiser(x.shape[1], sd, cfg.width, cfg.blocks, data_mean=mean).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    data_t = torch.as_tensor(x, device=dev)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    for step in range(cfg.steps):
        check_cancel(cancel)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        idx = torch.randint(len(x), (cfg.batch,), generator=gen).to(dev)
        x0 = data_t[idx]
        sigma = (torch.randn(cfg.batch, 1, generator=gen) * P_STD + P_MEAN).exp().to(dev)
        noise = torch.randn(x0.shape, generator=gen).to(dev) * sigma
        weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
        loss = (weight * (net(x0 + noise, sigma) - x0) ** 2).sum(1).mean() / x.shape[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        report(progress, step + 1, cfg.steps, loss=loss.item())
    return net.eval()


# ------------------------------------------------------------------------------------ on disk

@dataclass(frozen=True)
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


def save_teacher(net: MLPDenoiser, path: str | Path, data: np.ndarray, meta: dict | None = None) -> int:
    """Save weights (state_dict, loadable with ``weights_only=True``), config, and the data's mean and
    covariance (aggregate statistics: the reference of the latent FD). Returns the size in bytes."""
    mu, cov = gaussian_fit(data)
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "config": net.config(), "ref_mean": torch.as_tensor(mu), "ref_cov": torch.as_tensor(cov),
                "meta": meta or {}}, path)
    return Path(path).stat().st_size


def load_mlp_teacher(path: str | Path) -> tuple[MLPDenoiser, np.ndarray, np.ndarray, dict]:
    """The teacher network, its FD reference (mean, covariance) and its meta (scalars only) from a file
    of :func:`save_teacher` (``weights_only=True``; missing or unreadable → ValueError)."""
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
        net, mu, cov, meta = load_mlp_teacher(folder / TEACHER_FILE)
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
        _, mu, cov, meta = load_mlp_teacher(folder / TEACHER_FILE)
    except ValueError:         # else the mixture's own moments
        mu, cov, meta = g.mean(), g.covariance(), {"reference": "moments of the fitted GMM"}
    return Teacher(name, GMMDenoiser(g), mu, cov, TEACHER_LABELS[name], g, ref_n=_ref_n(meta), meta=meta)


def _ref_n(meta: dict) -> int | None:
    n = meta.get("n_held_out", meta.get("n_latents"))
    return int(n) if n else None
