"""`opmerge celeba compare`: merge strategies on the CelebA latent spectrum (THEORY §1, §3, §4), decoded
to faces."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from opmerge_core.basics.validation import check_int, check_positive
from opmerge_core.cli import argv
from opmerge_core.cli.theory import add_model_args, model_options, setting_from
from opmerge_core.theory.setting import Setting


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("celeba", help="the CelebA latent lab (VAE latents, strategies decoded to faces)")
    csub = p.add_subparsers(dest="celeba_command", required=True, parser_class=type(p))
    c = csub.add_parser("compare", help="theory W2 per strategy on the latent spectrum + a face grid PNG")
    c.add_argument("--T", default="64", help="teacher steps (1..256: the shared plan; default 64)")
    add_model_args(c)
    c.add_argument("--samples", default="8", help="faces per row (1..32, default 8)")
    c.add_argument("--seed", default="0", help="seed of z_T (default 0)")
    c.add_argument("--gain", default="5", help="amplification of differences from the teacher (default 5)")
    c.add_argument("--assets", default=None,
                   help="folder with vae_celeba64_fp16.pt and celeba_latent_stats.npz "
                        "(default $OPMERGE_ASSETS or the repository's assets/)")
    c.add_argument("--train", action="store_true",
                   help="also train every strategy with the trainer (SGD, lr = S/(2 steps)); slow "
                        "(bench/bench_celeba.py); "
                        "the grid then shows each strategy's trained students below its theory row")
    c.add_argument("--train-steps", default="200", help="SGD steps per merge with --train (default 200)")
    c.add_argument("--device", default="auto", help="auto | cpu | cuda (VAE decoding and --train)")
    c.add_argument("--out", required=True, help="PNG file for the face grid")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_compare)


@dataclass(frozen=True)
class CompareSpec:
    """What ``opmerge celeba compare`` computes and draws: the setting, the face grid (``samples``
    faces per row from z_T seed ``seed``, differences × ``gain``) and optionally the trainer check."""

    setting: Setting
    samples: int = 8
    seed: int = 0
    gain: float = 5.0
    train: bool = False
    train_steps: int = 200
    out: str = "grid.png"

    def __post_init__(self) -> None:
        from opmerge_core.latent.celeba import MAX_GAIN, MAX_SAMPLES

        object.__setattr__(self, "samples", check_int(self.samples, "samples", hi=MAX_SAMPLES))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", lo=0, hi=2**31 - 1))
        object.__setattr__(self, "gain", check_positive(self.gain, "gain", hi=MAX_GAIN))
        object.__setattr__(self, "train_steps", check_int(self.train_steps, "train-steps", hi=100_000))
        if not self.out.lower().endswith(".png"):
            raise ValueError(f"--out must be a .png file, got {self.out}")


def spec_from(args: argparse.Namespace) -> CompareSpec:
    return CompareSpec(setting_from(args), args.samples, args.seed, args.gain, args.train, args.train_steps,
                       args.out)


def to_argv(spec: CompareSpec) -> list[str]:
    """``opmerge celeba compare``'s argv for ``spec`` (without ``opmerge``), defaults left out."""
    values = {"T": spec.setting.T, **model_options(spec.setting), "samples": spec.samples, "seed": spec.seed,
              "gain": spec.gain, "train": spec.train, "train_steps": spec.train_steps, "out": spec.out}
    return argv.build("celeba", ("celeba", "compare"), values)


def parse(args: list[str]) -> CompareSpec:
    """The spec of an ``opmerge celeba compare`` argv (``to_argv``'s inverse)."""
    return spec_from(argv.parse_args("celeba", args))


def run_compare(args: argparse.Namespace) -> int:
    from opmerge_core.basics.device import pick_device
    from opmerge_core.latent import celeba
    from opmerge_core.latent.latents import load_assets

    spec = spec_from(args)
    out = Path(spec.out)
    if not out.parent.exists():
        raise ValueError(f"folder {out.parent} of --out does not exist")
    setting, n, seed, gain, train_steps = spec.setting, spec.samples, spec.seed, spec.gain, spec.train_steps
    device = str(pick_device(args.device))
    t0 = time.perf_counter()
    model, stats = load_assets(args.assets, device=device)
    comparison = celeba.compare(setting, stats.eigvals)
    if args.train:
        celeba.train_strategies(comparison, steps=train_steps, seed=seed, device=device)
    _, _, grid = celeba.run(setting, model, stats, n, seed, gain, comparison=comparison)
    grid.save(out)
    seconds = time.perf_counter() - t0
    if args.json:
        obj = {m: dict(comparison.w2[m]) for m in celeba.STRATEGY_KEYS}
        for m, w in comparison.trained_w2.items():
            obj[m]["trained"] = w
            obj[m]["w2_trained"] = w["w2"]
        obj.update({"frac_below_1": comparison.frac_below_1, "grid": str(out)})
        print(json.dumps(obj, indent=2))
        return 0
    lam = comparison.lam
    print(f"latent spectrum: d = {lam.size}, λ in [{lam.min():.3g}, {lam.max():.3g}], "
          f"{100 * comparison.frac_below_1:.0f}% below 1; T = {setting.T}, S = {setting.S:g}, "
          f"schedule {setting.schedule}, init {setting.init}, surrogate {setting.surrogate}")
    counts = {r: comparison.regimes.count(r) for r in sorted(set(comparison.regimes))}
    print("per-direction optimal regime: " + ", ".join(f"{r} {k}" for r, k in counts.items()))
    trained = comparison.trained_w2
    print(f"{'method':<22}{'W2':>10}{'W2 λ<1':>10}{'W2 λ≥1':>10}" + ("  W2 trained" if trained else ""))
    for row in comparison.table():
        extra = f"{trained[row['method']]['w2']:>12.4f}" if row["method"] in trained else ""
        print(f"{row['label']:<22}{row['w2']:>10.4f}{row['w2_low']:>10.4f}{row['w2_high']:>10.4f}{extra}")
    if not comparison.dp_exact:
        print("note: some per-direction DP plans are in the mixed band (best known, not proven optimal)")
    if not comparison.shared_exact:
        print("note: the shared plan comes from the beam DP (not proven optimal; `opmerge plan --shared` "
              "reports its gap to the per-direction lower bound)")
    print(f"face grid -> {out} ({seconds:.1f} s)")
    return 0
