"""VAE latents and their covariance eigenbasis (THEORY §1: a full covariance reduces per eigen-direction).

A dataset is encoded to posterior means z (N, d). Their mean μ and covariance Σ = U Λ Uᵀ define the
Gaussian the operator-merging model is applied to: in the eigenbasis y = Uᵀ(z − μ) every coordinate
is independent with variance λ_i, so every operator of THEORY §1–§4 acts per coordinate on y and we
rotate back with U and add μ only at the boundary, before decoding.

Assets (shipped in ``assets/``, aggregate statistics only, never per-image latents):
``vae_celeba64_fp16.pt`` (weights) and ``celeba_latent_stats.npz`` (``mean`` (d,), ``eigvals`` (d,)
descending, ``eigvecs`` (d, d) with eigenvectors as columns, ``n`` images). The assets folder is
``$OPMERGE_ASSETS`` if set, else the copy inside an installed wheel, else ``assets/`` in the repository.
``REGENERATE`` is how to rebuild both, run from the repository root (assets/README.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from opmerge_core.latent.images import enlarge, labelled_grid, load_images, png_bytes
from opmerge_core.latent.vae import VAE, load_vae, save_fp16, split_indices, to_tensor, to_uint8

VAE_FILE = "vae_celeba64_fp16.pt"
STATS_FILE = "celeba_latent_stats.npz"
REGENERATE = ("opmerge vae train --images CELEBA_CROPS --max-minutes 65 --out runs/vae_celeba, then "
              "python -m opmerge_core.latent.latents --images CELEBA_CROPS "
              "--vae runs/vae_celeba/vae_fp16.pt --assets assets (from the repository root, CELEBA_CROPS "
              "being the CelebA face crops: a folder or zip, see assets/README.md; runs/ is git-ignored)")
MAX_ENCODE = 250_000     # images encoded at once (bounded like images.MAX_IMAGES)


def assets_dir(override: str | Path | None = None) -> Path:
    """The assets folder: ``override``, else ``$OPMERGE_ASSETS``, else the copy shipped inside an
    installed wheel (``opmerge_core/assets``, package data), else ``<repo>/assets`` (source tree and
    editable installs)."""
    if override:
        return Path(override)
    env = os.environ.get("OPMERGE_ASSETS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]     # opmerge_core/
    packaged = package / "assets"
    return packaged if packaged.is_dir() else package.parent / "assets"


@dataclass(frozen=True)
class LatentStats:
    """Latent mean and covariance eigendecomposition: Σ = eigvecs · diag(eigvals) · eigvecsᵀ."""

    mean: np.ndarray      # (d,)
    eigvals: np.ndarray   # (d,) descending, > 0
    eigvecs: np.ndarray   # (d, d) column i is the eigenvector of eigvals[i]
    n: int                # number of images the statistics were computed from

    @property
    def d(self) -> int:
        return int(self.mean.shape[0])

    def to_eigen(self, z: np.ndarray) -> np.ndarray:
        """Latents (N, d) -> eigen-coordinates y = Uᵀ(z − μ) (N, d)."""
        return (np.asarray(z, dtype=np.float64) - self.mean) @ self.eigvecs

    def from_eigen(self, y: np.ndarray) -> np.ndarray:
        """Eigen-coordinates (N, d) -> latents z = U y + μ (N, d)."""
        return np.asarray(y, dtype=np.float64) @ self.eigvecs.T + self.mean


@torch.no_grad()
def encode(model: VAE, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Posterior means (N, d) float32 of uint8 images (N, 64, 64, 3), batched, without gradients."""
    if len(images) > MAX_ENCODE:
        raise ValueError(f"at most {MAX_ENCODE} images can be encoded at once, got {len(images)}")
    model.eval()
    dev = next(model.parameters()).device
    out = [model.encode(to_tensor(images[i:i + batch_size], dev))[0].cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)


@torch.no_grad()
def decode(model: VAE, z: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Latents (N, d) -> uint8 images (N, 64, 64, 3)."""
    model.eval()
    dev = next(model.parameters()).device
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    return np.concatenate([to_uint8(model.decode(z[i:i + batch_size].to(dev)))
                           for i in range(0, len(z), batch_size)])


def compute_stats(z: np.ndarray) -> LatentStats:
    """Mean and covariance eigendecomposition (eigenvalues descending) of latents (N, d), N ≥ 2."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2 or not np.isfinite(z).all():
        raise ValueError(f"latents must be a finite (N >= 2, d) array, got shape {z.shape}")
    mean = z.mean(0)
    cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    eigvecs = eigvecs * np.where(eigvecs[np.abs(eigvecs).argmax(0), np.arange(len(order))] < 0, -1.0, 1.0)
    eigvals = np.maximum(eigvals, 1e-12 * max(float(eigvals[0]), 1e-300))   # λ > 0 for the theory
    return LatentStats(mean, eigvals, eigvecs, int(z.shape[0]))


def save_stats(stats: LatentStats, path: str | Path) -> None:
    np.savez(path, mean=stats.mean, eigvals=stats.eigvals, eigvecs=stats.eigvecs, n=np.int64(stats.n))


def load_stats(path: str | Path | None = None) -> LatentStats:
    """Load ``celeba_latent_stats.npz`` (default: from the assets folder); bad files -> ValueError."""
    path = Path(path) if path is not None else assets_dir() / STATS_FILE
    if not path.is_file():
        raise ValueError(f"latent statistics {path} are missing; regenerate them with: {REGENERATE}")
    try:
        with np.load(path, allow_pickle=False) as f:
            mean, eigvals, eigvecs = (np.asarray(f[k], dtype=np.float64)
                                      for k in ("mean", "eigvals", "eigvecs"))
            n = int(f["n"]) if "n" in f.files else 0
    except Exception as exc:  # any zip / format / missing-key error means a corrupt file
        raise ValueError(f"latent statistics {path} are corrupt ({type(exc).__name__}); "
                         f"regenerate them with: {REGENERATE}") from None
    d = mean.shape[0] if mean.ndim == 1 else -1
    if (d < 1 or eigvals.shape != (d,) or eigvecs.shape != (d, d)
            or not all(np.isfinite(a).all() for a in (mean, eigvals, eigvecs)) or (eigvals <= 0).any()):
        raise ValueError(f"latent statistics {path} have inconsistent shapes or values; "
                         f"regenerate them with: {REGENERATE}")
    return LatentStats(mean, eigvals, eigvecs, n)


def assets_stamp(assets: str | Path | None = None) -> tuple[str, int, int]:
    """(folder, mtime of the VAE, mtime of the statistics): part of the key of every cached result
    decoded from them, so a regenerated asset is never answered from an old cache entry."""
    folder = assets_dir(assets)
    mtime = [(folder / f).stat().st_mtime_ns if (folder / f).is_file() else 0 for f in (VAE_FILE, STATS_FILE)]
    return str(folder), mtime[0], mtime[1]


@functools.lru_cache(maxsize=2)
def cached_assets(stamp: tuple[str, int, int]) -> tuple[VAE, LatentStats]:
    """``load_assets`` once per process (a compute-backend worker decodes many grids) per ``stamp``."""
    return load_assets(stamp[0])


def rows_png(stamp: tuple[str, int, int], rows: dict[str, np.ndarray], labels: dict[str, str], scale: int,
             keep: int = 8, label_width: int = 170) -> bytes:
    """The first ``keep`` latents of every entry of ``rows`` decoded with the VAE of ``stamp``
    (``assets_stamp``), one labelled row each (``labels``, else the key), enlarged ``scale`` times, as
    PNG bytes: a pure result for the compute backend."""
    model = cached_assets(stamp)[0]
    faces = [(labels.get(k, k), decode(model, z[:keep])) for k, z in rows.items()]
    return png_bytes(enlarge(labelled_grid(faces, label_width), scale))


def load_assets(assets: str | Path | None = None,
                device: str | torch.device = "cpu") -> tuple[VAE, LatentStats]:
    """The shipped VAE (on ``device``) and latent statistics, from ``assets_dir(assets)``."""
    folder = assets_dir(assets)
    stats = load_stats(folder / STATS_FILE)
    model = load_vae(folder / VAE_FILE, device=device, regenerate=REGENERATE)
    if model.latent_dim != stats.d:
        raise ValueError(f"{folder / VAE_FILE} has {model.latent_dim} latent dims but {folder / STATS_FILE} "
                         f"has {stats.d}; regenerate both with: {REGENERATE}")
    return model, stats


def build_assets(images: np.ndarray, vae_path: str | Path, assets: str | Path,
                 latents_out: str | Path | None = None) -> dict:
    """Encode ``images`` with the VAE at ``vae_path``; write its fp16 weights and the statistics to
    ``assets``; optionally the per-image latents (never into the repository) to ``latents_out``."""
    folder = Path(assets)
    folder.mkdir(parents=True, exist_ok=True)
    model = load_vae(vae_path)
    z = encode(model, images)
    stats = compute_stats(z)
    save_stats(stats, folder / STATS_FILE)
    size = save_fp16(model, folder / VAE_FILE, meta={"n_encoded": float(len(z))})
    if latents_out is not None:
        np.save(latents_out, z)
    return {"n": len(z), "d": stats.d, "frac_below_1": float((stats.eigvals < 1).mean()),
            "lam_min": float(stats.eigvals.min()), "lam_max": float(stats.eigvals.max()),
            "vae_bytes": int(size)}


def main(argv: list[str] | None = None) -> int:
    """``python -m opmerge_core.latent.latents --images PATH --vae WEIGHTS --assets DIR [--latents-out F]``:
    encode the images with the VAE and write the assets (``build_assets``)."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--images", required=True)
    p.add_argument("--vae", required=True)
    p.add_argument("--assets", default=str(assets_dir()))
    p.add_argument("--latents-out", default=None, help="per-image latents .npy (keep OUTSIDE the repo)")
    p.add_argument("--recon-png", default=None,
                   help="PNG of 16 held-out images over their reconstructions (keep OUTSIDE the repo)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_images(args.images)
    print(json.dumps(build_assets(data.images, args.vae, args.assets, args.latents_out)))
    if args.recon_png:
        held = data.images[split_indices(len(data.images))[1][:16]]
        model = load_vae(Path(args.assets) / VAE_FILE)
        rec = decode(model, encode(model, held))
        rows = [np.concatenate(list(held), 1), np.concatenate(list(rec), 1)]
        Image.fromarray(np.concatenate(rows, 0)).save(args.recon_png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
