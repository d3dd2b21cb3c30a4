"""An MSSIM-VAE for 64×64 RGB faces and its training loop (issue 5; THEORY.md §1: the VAE gives the
latent space whose covariance Σ = U Λ Uᵀ the operator-merging model is applied to, per eigen-direction).

Model (after the MSSIM-VAE of Snell et al. 2017 / PyTorch-VAE): an encoder of 5 stride-2 conv blocks
(3 → 32 → 64 → 128 → 256 → 512 channels, 64 → 2 pixels, each Conv-BatchNorm-LeakyReLU), linear heads
to a ``latent_dim``-dimensional mean and log-variance, and a mirrored decoder (linear → 512×2×2, four
ConvTranspose-BatchNorm-LeakyReLU blocks 512 → 32, a last ConvTranspose 32 → 3) whose sigmoid output
lies in [0, 1], the range of the data (images / 255).

Loss per batch: ``(1 − MS-SSIM(x̂, x)) + β · KL``, with ``pytorch_msssim.ms_ssim(data_range=1)``.
At 64×64 the default 11-pixel window fails the package's size check (needs side > (win−1)·2⁴ = 160),
so we use ``win_size=3`` with the 5 standard scale weights (needs side > 32; the coarsest scale is
4×4). KL is summed over latent dimensions and averaged over the batch; the default ``β = 1e-4``
(1.28e-2 per dimension) keeps the latents informative: the posterior means spread with variances on
both sides of 1, which is exactly what the latent lab wants to show (THEORY.md §4, eigenbasis remark).

Training: Adam (learning rate decayed on a cosine over the time budget), random horizontal flips,
a fixed 5% held-out split (seed 0, independent of ``seed``),
a checkpoint ``last.pt`` every ``ckpt_minutes`` and at each epoch end, resume from it (the time
budget ``max_minutes`` counts total training time over all runs), and at the end held-out
reconstruction MS-SSIM / PSNR and an fp16 export ``vae_fp16.pt``. Every ``torch.load`` uses
``weights_only=True``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from pytorch_msssim import ms_ssim
from torch import nn
from tqdm import tqdm

from opmerge_core.infra.device import pick_device

CHANNELS = (32, 64, 128, 256, 512)
LATENT_DIM = 128
MSSSIM_WIN = 3                       # window of pytorch_msssim at 64×64 (see module docstring)
HELDOUT_FRACTION = 0.05
SPLIT_SEED = 0
MAX_EPOCHS = 10_000
MAX_MINUTES = 24 * 60
MAX_BATCH = 4096


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------

class VAE(nn.Module):
    """Convolutional VAE for (B, 3, 64, 64) images in [0, 1]."""

    def __init__(self, latent_dim: int = LATENT_DIM, channels: tuple[int, ...] = CHANNELS, size: int = 64):
        super().__init__()
        self.latent_dim, self.channels, self.size = int(latent_dim), tuple(int(c) for c in channels), size
        self.base = size // 2 ** len(self.channels)          # 64 / 2⁵ = 2
        if self.base < 1 or self.base * 2 ** len(self.channels) != size:
            raise ValueError(f"image size {size} must be divisible by 2^{len(self.channels)}")
        blocks, c_in = [], 3
        for c in self.channels:
            blocks += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
            c_in = c
        self.encoder = nn.Sequential(*blocks)
        flat = self.channels[-1] * self.base ** 2
        self.fc_mu = nn.Linear(flat, self.latent_dim)
        self.fc_logvar = nn.Linear(flat, self.latent_dim)
        self.fc_dec = nn.Linear(self.latent_dim, flat)
        rev, blocks = self.channels[::-1], []
        for c_a, c_b in zip(rev[:-1], rev[1:], strict=True):
            blocks += [nn.ConvTranspose2d(c_a, c_b, 3, stride=2, padding=1, output_padding=1),
                       nn.BatchNorm2d(c_b), nn.LeakyReLU(0.2)]
        blocks += [nn.ConvTranspose2d(rev[-1], 3, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*blocks)

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "channels": list(self.channels), "size": self.size}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc_dec(z).view(-1, self.channels[-1], self.base, self.base)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def msssim(x_hat: torch.Tensor, x: torch.Tensor, size_average: bool = True) -> torch.Tensor:
    """MS-SSIM for images in [0, 1] at 64×64 (window 3, the 5 standard scales)."""
    return ms_ssim(x_hat, x, data_range=1.0, win_size=MSSSIM_WIN, size_average=size_average)


def loss_fn(x_hat, x, mu, logvar, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, 1 − MS-SSIM, KL) with KL summed over latent dims, averaged over the batch."""
    rec = 1.0 - msssim(x_hat, x)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
    return rec + beta * kl, rec, kl


def to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    return images.to(device).permute(0, 3, 1, 2).float() / 255.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3)."""
    return (x.detach().clamp(0, 1) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()


# --------------------------------------------------------------------------------------------------
# Saving and loading (weights_only everywhere)
# --------------------------------------------------------------------------------------------------

def _torch_load(path: Path, what: str, regenerate: str) -> dict:
    if not Path(path).is_file():
        raise ValueError(f"{what} {path} is missing; regenerate it with: {regenerate}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/zip error means a corrupt file
        raise ValueError(f"{what} {path} is corrupt or not a weights file ({type(exc).__name__}); "
                         f"regenerate it with: {regenerate}") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "config" not in obj:
        raise ValueError(f"{what} {path} has no state_dict/config; regenerate it with: {regenerate}")
    return obj


def save_fp16(model: VAE, path: str | Path, meta: dict | None = None) -> int:
    """Export float weights as fp16 (integer buffers unchanged). Returns the file size in bytes."""
    state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "config": model.config(), "meta": meta or {}}, path)
    return Path(path).stat().st_size


def load_vae(path: str | Path, device: torch.device | str = "cpu",
             regenerate: str = "opmerge vae train --images PATH --out DIR") -> VAE:
    """Load a VAE from an fp16 export or a training checkpoint (``weights_only=True``), in eval mode."""
    obj = _torch_load(Path(path), "VAE weights", regenerate)
    cfg = obj["config"]
    try:
        model = VAE(int(cfg["latent_dim"]), tuple(cfg["channels"]), int(cfg.get("size", 64)))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in obj["state_dict"].items()})
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"VAE weights {path} do not match the model ({str(exc).splitlines()[0]}); "
                         f"regenerate it with: {regenerate}") from None
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Everything `opmerge vae train` controls (bounds checked in ``validate``)."""

    out: str = "vae_run"
    epochs: int = 100                     # upper bound; ``max_minutes`` usually stops first
    max_minutes: float = 60.0             # total training time over all resumed runs
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 1e-4                    # weight of the (summed-over-dims) KL term
    seed: int = 0
    device: str = "auto"
    threads: int = 1                      # torch CPU threads (the machine is shared)
    ckpt_minutes: float = 5.0
    latent_dim: int = LATENT_DIM
    channels: tuple[int, ...] = field(default_factory=lambda: CHANNELS)
    heldout_fraction: float = HELDOUT_FRACTION
    progress: bool = True

    def validate(self) -> None:
        if not 1 <= int(self.epochs) <= MAX_EPOCHS:
            raise ValueError(f"epochs must be in [1, {MAX_EPOCHS}], got {self.epochs}")
        if not 0 < float(self.max_minutes) <= MAX_MINUTES:
            raise ValueError(f"max_minutes must be in (0, {MAX_MINUTES}], got {self.max_minutes}")
        if not 1 <= int(self.batch_size) <= MAX_BATCH:
            raise ValueError(f"batch_size must be in [1, {MAX_BATCH}], got {self.batch_size}")
        if not 0 < float(self.lr) <= 1.0:
            raise ValueError(f"lr must be in (0, 1], got {self.lr}")
        if not 0 <= float(self.beta) <= 100.0:
            raise ValueError(f"beta must be in [0, 100], got {self.beta}")
        if not 1 <= int(self.threads) <= 256:
            raise ValueError(f"threads must be in [1, 256], got {self.threads}")
        if not 0 < float(self.heldout_fraction) < 0.5:
            raise ValueError(f"heldout_fraction must be in (0, 0.5), got {self.heldout_fraction}")
        if not 1 <= int(self.latent_dim) <= 1024:
            raise ValueError(f"latent_dim must be in [1, 1024], got {self.latent_dim}")


def split_indices(n: int, fraction: float = HELDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (train, held-out) index split: seed ``SPLIT_SEED``, at least one image in each part."""
    if n < 2:
        raise ValueError(f"need at least 2 images for a train/held-out split, got {n}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_held = min(n - 1, max(1, round(fraction * n)))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


@torch.no_grad()
def evaluate(model: VAE, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> dict:
    """Held-out reconstruction of uint8 images (N, 64, 64, 3) from the posterior mean: mean MS-SSIM
    and PSNR (dB, per image, averaged)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    scores, psnrs = [], []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i:i + batch_size], dev)
        x_hat, _, _ = model(x)
        scores.append(msssim(x_hat, x, size_average=False).cpu())
        mse = (x_hat - x).pow(2).flatten(1).mean(1).clamp_min(1e-12)
        psnrs.append((10.0 * torch.log10(1.0 / mse)).cpu())
    model.train(was_training)
    return {"msssim": float(torch.cat(scores).mean()), "psnr": float(torch.cat(psnrs).mean())}


def lr_at(lr0: float, progress: float) -> float:
    """Cosine learning-rate decay from ``lr0`` to ``lr0/20`` as the time budget is used (progress 0..1)."""
    p = min(max(progress, 0.0), 1.0)
    return lr0 * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * p)))


def _save_checkpoint(path: Path, model: VAE, opt: torch.optim.Optimizer, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                "config": model.config(), "state": state}, tmp)
    tmp.replace(path)                                    # atomic: an interrupted save never corrupts last.pt


def train(images: np.ndarray, cfg: TrainConfig, log=print) -> dict:
    """Train (or resume) a VAE on uint8 images (N, 64, 64, 3); returns the final report dict.

    Writes ``last.pt`` (checkpoint), ``vae_fp16.pt`` (fp16 export) and ``report.json`` to ``cfg.out``.
    """
    cfg.validate()
    device = pick_device(cfg.device)
    torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if images.ndim != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, 64, 64, 3), got {images.dtype} {images.shape}")
    train_idx, held_idx = split_indices(len(images), cfg.heldout_fraction)
    # kept as uint8 (4× less memory than float); each batch is converted on the fly
    x_train, x_held = torch.from_numpy(images[train_idx]), torch.from_numpy(images[held_idx])

    torch.manual_seed(cfg.seed)
    model = VAE(cfg.latent_dim, cfg.channels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = {"epoch": 0, "batch": 0, "elapsed": 0.0, "history": [], "epoch_seconds": []}
    ckpt = out / "last.pt"
    if ckpt.exists():
        obj = _torch_load(ckpt, "checkpoint", f"delete it and rerun (it is in {out})")
        if obj["config"] != model.config():
            raise ValueError(f"checkpoint {ckpt} is for model {obj['config']}, not {model.config()}; "
                             f"use another --out")
        model.load_state_dict(obj["state_dict"])
        opt.load_state_dict(obj["optimizer"])
        state = obj["state"]
        log(f"resumed from {ckpt}: epoch {state['epoch']}, batch {state['batch']}, "
            f"{state['elapsed'] / 60:.1f} min trained")

    budget = 60.0 * float(cfg.max_minutes)
    n_batches = max(1, len(x_train) // cfg.batch_size)      # drop the ragged last batch (BatchNorm)
    bs = min(cfg.batch_size, len(x_train))
    t_run = time.perf_counter()
    elapsed0 = float(state["elapsed"])
    last_ckpt = t_run
    stop = False
    while state["epoch"] < cfg.epochs and not stop:
        epoch = int(state["epoch"])
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)   # same order when resumed
        perm = torch.randperm(len(x_train), generator=g)
        flips = torch.rand(len(x_train), generator=g) < 0.5
        model.train()
        t_epoch = time.perf_counter()
        bar = tqdm(range(int(state["batch"]), n_batches), desc=f"epoch {epoch + 1}", mininterval=5.0,
                   disable=not cfg.progress, leave=True)
        for b in bar:
            idx = perm[b * bs:(b + 1) * bs]
            x = to_tensor(x_train[idx], device)
            x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
            for group in opt.param_groups:                   # cosine decay over the time budget
                group["lr"] = lr_at(cfg.lr, state["elapsed"] / budget)
            x_hat, mu, logvar = model(x)
            loss, rec, kl = loss_fn(x_hat, x, mu, logvar, cfg.beta)
            if not torch.isfinite(loss):
                raise ValueError(f"training diverged (loss {loss.item()}); lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["batch"] = b + 1
            bar.set_postfix(msssim=f"{1 - rec.item():.3f}", kl=f"{kl.item():.0f}", refresh=False)
            now = time.perf_counter()
            state["elapsed"] = elapsed0 + (now - t_run)
            if state["elapsed"] >= budget:
                stop = True
                break
            if now - last_ckpt >= 60.0 * cfg.ckpt_minutes:
                _save_checkpoint(ckpt, model, opt, state)
                last_ckpt = now
        bar.close()
        if state["batch"] >= n_batches:                     # epoch complete
            seconds = time.perf_counter() - t_epoch
            metrics = evaluate(model, x_held)
            state["history"].append({"epoch": epoch + 1, **metrics, "minutes": state["elapsed"] / 60})
            state["epoch_seconds"].append(seconds)
            log(f"epoch {epoch + 1}: held-out MS-SSIM {metrics['msssim']:.4f}, "
                f"PSNR {metrics['psnr']:.2f} dB, {seconds:.0f} s, {state['elapsed'] / 60:.1f} min total")
            state["epoch"], state["batch"] = epoch + 1, 0
        _save_checkpoint(ckpt, model, opt, state)
        last_ckpt = time.perf_counter()

    metrics = evaluate(model, x_held)
    report = {"heldout_msssim": metrics["msssim"], "heldout_psnr": metrics["psnr"],
              "n_train": len(x_train), "n_heldout": len(x_held),
              "epochs_completed": int(state["epoch"]), "batches_into_epoch": int(state["batch"]),
              "minutes": float(state["elapsed"]) / 60.0,
              "epoch_seconds": [float(s) for s in state["epoch_seconds"]],
              "history": state["history"], "config": {**asdict(cfg), "channels": list(cfg.channels)},
              "device": str(device), "msssim_win_size": MSSSIM_WIN}
    meta = {k: report[k] for k in ("heldout_msssim", "heldout_psnr", "n_train", "n_heldout",
                                   "epochs_completed", "minutes")}
    report["fp16_bytes"] = save_fp16(model, out / "vae_fp16.pt", meta={k: float(v) for k, v in meta.items()})
    (out / "report.json").write_text(json.dumps(report, indent=2))
    log(f"held-out reconstruction: MS-SSIM {report['heldout_msssim']:.4f}, "
        f"PSNR {report['heldout_psnr']:.2f} dB; {report['minutes']:.1f} min; "
        f"fp16 weights {report['fp16_bytes'] / 1e6:.1f} MB -> {out / 'vae_fp16.pt'}")
    return report


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

