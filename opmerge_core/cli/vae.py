"""`opmerge vae train`: train the MSSIM-VAE (``latent.vae``) on a folder / zip of face images."""

from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from opmerge_core.basics.validation import check_int
from opmerge_core.latent.images import MAX_IMAGES, load_images

MESSAGES = {   # one stdout line per event of vae.train's progress other than "batch"
    "resumed": "resumed from {checkpoint}: epoch {epoch}, batch {batch}, {minutes:.1f} min trained",
    "epoch": "epoch {epoch}: held-out MS-SSIM {heldout_msssim:.4f}, PSNR {heldout_psnr:.2f} dB, "
             "{seconds:.0f} s, {minutes:.1f} min total",
    "done": "held-out reconstruction: MS-SSIM {heldout_msssim:.4f}, PSNR {heldout_psnr:.2f} dB; "
            "{minutes:.1f} min; fp16 weights {fp16_mb:.1f} MB -> {fp16}",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vae", help="the MSSIM-VAE for 64x64 faces (CelebA latent lab)")
    vsub = p.add_subparsers(dest="vae_command", required=True, parser_class=type(p))
    t = vsub.add_parser("train", help="train (or resume) a VAE; writes last.pt, vae_fp16.pt, report.json")
    t.add_argument("--images", required=True,
                   help="folder (searched recursively) or .zip of jpg/png images, or an .npz with `images`")
    t.add_argument("--epochs", default="100", help="maximum epochs (1..10000, default 100)")
    t.add_argument("--max-minutes", default="60", help="total training-time budget in minutes (default 60)")
    t.add_argument("--out", default="vae_run", help="output folder; an existing last.pt there is resumed")
    t.add_argument("--batch-size", default="64", help="batch size (1..4096, default 64)")
    t.add_argument("--lr", default="1e-3", help="Adam learning rate (default 1e-3, cosine-decayed)")
    t.add_argument("--beta", default="1e-4", help="KL weight (KL summed over latent dims; default 1e-4)")
    t.add_argument("--seed", default="0", help="training seed (the held-out split is always seed 0)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda")
    t.add_argument("--threads", default="1", help="torch CPU threads (default 1: the machine is shared)")
    t.add_argument("--max-images", default=None, help=f"use at most this many images (1..{MAX_IMAGES})")
    t.add_argument("--ckpt-minutes", default="5", help="minutes between checkpoints (default 5)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from opmerge_core.latent.vae import VAEConfig, train  # torch import only when needed

    max_images = None if args.max_images is None else check_int(args.max_images, "max-images", hi=MAX_IMAGES)
    config = VAEConfig(out=args.out, epochs=args.epochs, max_minutes=args.max_minutes,
                       batch_size=args.batch_size, lr=args.lr, beta=args.beta, seed=args.seed,
                       device=args.device, threads=args.threads, ckpt_minutes=args.ckpt_minutes)
    data = load_images(args.images, max_images=max_images)
    print(f"loaded {len(data.images)} images from {args.images} ({data.skipped} unreadable files skipped)",
          flush=True)
    bar = EpochBars(enabled=not args.no_progress)
    try:
        report = train(data.images, config, progress=bar)
    finally:
        bar.close()
    report["images"] = {"path": str(args.images), "n": len(data.images), "skipped": int(data.skipped)}
    print(json.dumps({k: report[k] for k in ("heldout_msssim", "heldout_psnr", "minutes", "epochs_completed",
                                             "fp16_bytes", "images")}))
    return 0


class EpochBars:
    """``vae.train``'s progress as one tqdm bar per epoch (stderr) and a line per resume / epoch / end
    (stdout, also with the bar disabled)."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.epoch, self.bar = enabled, None, None

    def __call__(self, done: int, total: int, info: dict) -> None:
        if info["event"] != "batch":
            self.close()
            mb = info.get("fp16_bytes", 0) / 1e6
            print(MESSAGES[info["event"]].format(**info, fp16_mb=mb), flush=True)
            return
        if not self.enabled:
            return
        if info["epoch"] != self.epoch:
            self.close()
            self.epoch = info["epoch"]
            self.bar = tqdm(total=info["batches"], initial=info["batch"] - 1, desc=f"epoch {self.epoch}",
                            mininterval=5.0, file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(msssim=f"{info['msssim']:.3f}", kl=f"{info['kl']:.0f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.epoch, self.bar = None, None
