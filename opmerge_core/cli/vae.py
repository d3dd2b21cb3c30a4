"""`opmerge vae train`: train the MSSIM-VAE of issue 5 on a folder / zip of face images."""

from __future__ import annotations

import argparse
import json

from opmerge_core.infra.validation import check_int, check_positive
from opmerge_core.latent.images import MAX_IMAGES, load_images


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
    from opmerge_core.latent.vae import TrainConfig, train  # torch import only when needed

    max_images = None if args.max_images is None else check_int(args.max_images, "max-images", hi=MAX_IMAGES)
    cfg = TrainConfig(out=args.out, epochs=check_int(args.epochs, "epochs", hi=10_000),
                      max_minutes=check_positive(args.max_minutes, "max-minutes", hi=24 * 60),
                      batch_size=check_int(args.batch_size, "batch-size", hi=4096),
                      lr=check_positive(args.lr, "lr", hi=1.0),
                      beta=check_positive(args.beta, "beta", hi=100.0, allow_zero=True),
                      seed=check_int(args.seed, "seed", lo=0, hi=2**31 - 1), device=args.device,
                      threads=check_int(args.threads, "threads", hi=256),
                      ckpt_minutes=check_positive(args.ckpt_minutes, "ckpt-minutes", hi=24 * 60),
                      progress=not args.no_progress)
    data = load_images(args.images, max_images=max_images)
    print(f"loaded {len(data.images)} images from {args.images} ({data.skipped} unreadable files skipped)",
          flush=True)
    report = train(data.images, cfg, log=lambda m: print(m, flush=True))
    report["images"] = {"path": str(args.images), "n": len(data.images), "skipped": int(data.skipped)}
    print(json.dumps({k: report[k] for k in ("heldout_msssim", "heldout_psnr", "minutes", "epochs_completed",
                                             "fp16_bytes", "images")}))
    return 0
