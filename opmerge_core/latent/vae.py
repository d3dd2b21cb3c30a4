"""An MSSIM-VAE for 64×64 RGB faces and its training loop (THEORY §1: the VAE gives the latent space
whose covariance Σ = U Λ Uᵀ the operator-merging model is applied to, per eigen-direction).

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
both sides of 1, which is exactly what the latent lab wants to show (λ ≤ 1 and λ > 1 want different
plans, THEORY §5).

Training (``train``, settings in ``VAEConfig``): Adam (learning rate decayed on a cosine over the time
budget), random horizontal flips, a fixed 5% held-out split (seed 0, independent of ``seed``), a
checkpoint ``last.pt`` every ``ckpt_minutes``, at each epoch end and on cancellation, resume from it (the
time budget ``max_minutes`` counts total training time over all runs), and at the end held-out
reconstruction MS-SSIM / PSNR and an fp16 export ``vae_fp16.pt``. Every ``torch.load`` uses
``weights_only=True``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from pytorch_msssim import ms_ssim
from torch import nn

from opmerge_core.basics.device import DEVICES, pick_device
from opmerge_core.basics.progress import CancelFlag, Progress, check_cancel, report
from opmerge_core.basics.validation import check_choice, check_int, check_positive

CHANNELS = (32, 64, 128, 256, 512)
LATENT_DIM = 128
MSSSIM_WIN = 3                       # window of pytorch_msssim at 64×64 (see module docstring)
HELDOUT_FRACTION = 0.05
SPLIT_SEED = 0
MAX_EPOCHS = 10_000
MAX_MINUTES = 24 * 60
MAX_BATCH = 4096
MAX_THREADS = 256
MAX_LATENT_DIM = 1024
MAX_CHANNELS = 2048


# ---- model ---------------------------------------------------------------------------------------
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


def loss_fn(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
            beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


# ---- saving and loading (weights_only everywhere) ------------------------------------------------
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


# ---- training ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VAEConfig:
    """Everything `opmerge vae train` controls; values are checked (and strings converted) on creation."""

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
    channels: tuple[int, ...] = CHANNELS
    heldout_fraction: float = HELDOUT_FRACTION

    def __post_init__(self) -> None:
        put = partial(object.__setattr__, self)
        put("out", str(self.out))
        put("epochs", check_int(self.epochs, "epochs", hi=MAX_EPOCHS))
        put("max_minutes", check_positive(self.max_minutes, "max_minutes", hi=MAX_MINUTES))
        put("batch_size", check_int(self.batch_size, "batch_size", hi=MAX_BATCH))
        put("lr", check_positive(self.lr, "lr", hi=1.0))
        put("beta", check_positive(self.beta, "beta", hi=100.0, allow_zero=True))
        put("seed", check_int(self.seed, "seed", lo=0, hi=2**31 - 1))
        check_choice(self.device, DEVICES, "device")
        put("threads", check_int(self.threads, "threads", hi=MAX_THREADS))
        put("ckpt_minutes", check_positive(self.ckpt_minutes, "ckpt_minutes", hi=MAX_MINUTES))
        put("latent_dim", check_int(self.latent_dim, "latent_dim", hi=MAX_LATENT_DIM))
        if not 1 <= len(self.channels) <= 6:
            raise ValueError(f"channels must list 1 to 6 widths, got {self.channels!r}")
        put("channels", tuple(check_int(c, "channels", hi=MAX_CHANNELS) for c in self.channels))
        fraction = check_positive(self.heldout_fraction, "heldout_fraction", hi=0.5)
        if fraction == 0.5:
            raise ValueError(f"heldout_fraction must be < 0.5, got {fraction:g}")
        put("heldout_fraction", fraction)


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


def train(images: np.ndarray, config: VAEConfig, *, progress: Progress | None = None,
          cancel: CancelFlag | None = None) -> dict:
    """Train (or resume) a VAE on uint8 images (N, 64, 64, 3); returns the final report dict.

    Writes ``last.pt`` (checkpoint), ``vae_fp16.pt`` (fp16 export) and ``report.json`` to
    ``config.out``. ``progress(done, total, info)`` counts batches over ``config.epochs`` epochs;
    ``info["event"]`` is ``"resumed"`` (checkpoint, epoch, batch, minutes), ``"batch"`` (epoch, batch,
    batches, msssim and kl of the batch, minutes), ``"epoch"`` (epoch, held-out msssim / psnr, seconds,
    minutes) or ``"done"`` (the report's held-out figures, minutes, fp16 path and bytes; then done =
    total). A set ``cancel`` flag saves the checkpoint and raises ``Cancelled`` between two batches.
    """
    device = pick_device(config.device)
    if images.ndim != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, 64, 64, 3), got {images.dtype} {images.shape}")
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    train_idx, held_idx = split_indices(len(images), config.heldout_fraction)
    # kept as uint8 (4× less memory than float); each batch is converted on the fly
    x_train, x_held = torch.from_numpy(images[train_idx]), torch.from_numpy(images[held_idx])
    torch.manual_seed(config.seed)
    model = VAE(config.latent_dim, config.channels).to(device)
    run = _Run(config, model, torch.optim.Adam(model.parameters(), lr=config.lr), x_train, device,
               out / "last.pt", progress, cancel)
    run.resume()
    run.started = run.saved = time.perf_counter()         # the budget counts training time only
    while run.state["epoch"] < config.epochs and not run.out_of_time:
        _train_epoch(run, x_held)
    return _finish(run, x_held, out)


@dataclass
class _Run:
    """One training run: model, optimiser and the checkpointed ``state`` (epoch, batch, seconds)."""

    config: VAEConfig
    model: VAE
    opt: torch.optim.Optimizer
    x_train: torch.Tensor            # uint8 (N, 64, 64, 3)
    device: torch.device
    ckpt: Path
    progress: Progress | None
    cancel: CancelFlag | None
    state: dict = field(default_factory=lambda: {"epoch": 0, "batch": 0, "elapsed": 0.0,
                                                 "history": [], "epoch_seconds": []})
    started: float = 0.0             # perf_counter when this run's training started
    elapsed0: float = 0.0            # seconds trained before this run
    saved: float = 0.0               # perf_counter of the last checkpoint

    @property
    def batch_size(self) -> int:
        return min(self.config.batch_size, len(self.x_train))

    @property
    def n_batches(self) -> int:
        return max(1, len(self.x_train) // self.config.batch_size)   # drop the ragged last batch

    @property
    def done(self) -> int:
        return int(self.state["epoch"]) * self.n_batches + int(self.state["batch"])

    @property
    def total(self) -> int:
        return self.config.epochs * self.n_batches

    @property
    def budget(self) -> float:
        return 60.0 * self.config.max_minutes

    @property
    def out_of_time(self) -> bool:
        return self.state["elapsed"] >= self.budget

    def resume(self) -> None:
        """Continue from ``last.pt`` if there is one (same model config required)."""
        if not self.ckpt.exists():
            return
        obj = _torch_load(self.ckpt, "checkpoint", f"delete it and rerun (it is in {self.ckpt.parent})")
        if obj["config"] != self.model.config():
            raise ValueError(f"checkpoint {self.ckpt} is for model {obj['config']}, not "
                             f"{self.model.config()}; use another --out")
        self.model.load_state_dict(obj["state_dict"])
        self.opt.load_state_dict(obj["optimizer"])
        self.state, self.elapsed0 = obj["state"], float(obj["state"]["elapsed"])
        report(self.progress, self.done, self.total, event="resumed", checkpoint=str(self.ckpt),
               epoch=int(self.state["epoch"]), batch=int(self.state["batch"]),
               minutes=self.elapsed0 / 60)

    def save(self) -> None:
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"state_dict": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                    "config": self.model.config(), "state": self.state}, tmp)
        tmp.replace(self.ckpt)                  # atomic: an interrupted save never corrupts last.pt
        self.saved = time.perf_counter()


def _train_epoch(run: _Run, x_held: torch.Tensor) -> None:
    """The rest of the current epoch, until its end or the time budget; then checkpoint."""
    config, state, epoch = run.config, run.state, int(run.state["epoch"])
    g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)   # same order when resumed
    perm = torch.randperm(len(run.x_train), generator=g)
    flips = torch.rand(len(run.x_train), generator=g) < 0.5
    run.model.train()
    t_epoch = time.perf_counter()
    for b in range(int(state["batch"]), run.n_batches):
        if run.cancel is not None and run.cancel.is_set():
            run.save()
            check_cancel(run.cancel)
        idx = perm[b * run.batch_size:(b + 1) * run.batch_size]
        x = to_tensor(run.x_train[idx], run.device)
        rec, kl = _step(run, torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x))
        state["batch"] = b + 1
        state["elapsed"] = run.elapsed0 + (time.perf_counter() - run.started)
        if run.progress is not None:
            run.progress(run.done, run.total, {"event": "batch", "epoch": epoch + 1, "batch": b + 1,
                                               "batches": run.n_batches, "msssim": 1.0 - rec,
                                               "kl": kl, "minutes": state["elapsed"] / 60})
        if run.out_of_time:
            break
        if time.perf_counter() - run.saved >= 60.0 * config.ckpt_minutes:
            run.save()
    if state["batch"] >= run.n_batches:                     # epoch complete
        seconds = time.perf_counter() - t_epoch
        metrics = evaluate(run.model, x_held)
        state["history"].append({"epoch": epoch + 1, **metrics, "minutes": state["elapsed"] / 60})
        state["epoch_seconds"].append(seconds)
        state["epoch"], state["batch"] = epoch + 1, 0
        report(run.progress, run.done, run.total, event="epoch", epoch=epoch + 1,
               heldout_msssim=metrics["msssim"], heldout_psnr=metrics["psnr"], seconds=seconds,
               minutes=state["elapsed"] / 60)
    run.save()


def _step(run: _Run, x: torch.Tensor) -> tuple[float, float]:
    """One Adam step on a batch (learning rate on the cosine of the used budget): (1 − MS-SSIM, KL)."""
    for group in run.opt.param_groups:
        group["lr"] = lr_at(run.config.lr, run.state["elapsed"] / run.budget)
    x_hat, mu, logvar = run.model(x)
    loss, rec, kl = loss_fn(x_hat, x, mu, logvar, run.config.beta)
    if not torch.isfinite(loss):
        raise ValueError(f"training diverged (loss {loss.item()}); lower --lr")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    return rec.item(), kl.item()


def _finish(run: _Run, x_held: torch.Tensor, out: Path) -> dict:
    """Held-out reconstruction, the fp16 export and ``report.json``."""
    state, metrics = run.state, evaluate(run.model, x_held)
    result = {"heldout_msssim": metrics["msssim"], "heldout_psnr": metrics["psnr"],
              "n_train": len(run.x_train), "n_heldout": len(x_held),
              "epochs_completed": int(state["epoch"]), "batches_into_epoch": int(state["batch"]),
              "minutes": float(state["elapsed"]) / 60.0,
              "epoch_seconds": [float(s) for s in state["epoch_seconds"]],
              "history": state["history"], "device": str(run.device), "msssim_win_size": MSSSIM_WIN,
              "config": {**asdict(run.config), "channels": list(run.config.channels)}}
    meta = {k: float(result[k]) for k in ("heldout_msssim", "heldout_psnr", "n_train", "n_heldout",
                                          "epochs_completed", "minutes")}
    result["fp16_bytes"] = save_fp16(run.model, out / "vae_fp16.pt", meta=meta)
    (out / "report.json").write_text(json.dumps(result, indent=2))
    report(run.progress, run.total, run.total, event="done", heldout_msssim=result["heldout_msssim"],
           heldout_psnr=result["heldout_psnr"], minutes=result["minutes"],
           fp16=str(out / "vae_fp16.pt"), fp16_bytes=result["fp16_bytes"])
    return result


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
