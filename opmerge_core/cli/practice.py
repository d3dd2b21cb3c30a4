"""`opmerge practice`: merge plans trained on a teacher, judged direction by direction (THEORY §8)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from opmerge_core.basics.validation import check_int
from opmerge_core.cli import argv

OUT_SUFFIXES = (".csv",)
SAMPLES_SUFFIXES = (".npz",)


def register(sub: argparse._SubParsersAction) -> None:
    from opmerge_core.practice import spec as practice

    d = practice.PracticeSpec()
    p = sub.add_parser("practice", help="theory vs practice: merge plans on a (nonlinear) teacher, judged "
                                        "per eigen-direction against the closed form")
    p.add_argument("--teacher", default=d.teacher, help=f"one of {', '.join(practice.TEACHERS)}")
    p.add_argument("--T", default=str(d.T), help=f"teacher steps, {practice.T_MIN}..{practice.T_MAX}")
    p.add_argument("--plans", default=",".join(d.plans),
                   help=f"comma list of {', '.join(practice.PLAN_CHOICES)} (dp: the DP-optimal plan per "
                        "direction for linear students, the shared one for MLP students)")
    p.add_argument("--student", default=d.student, help=f"one of {', '.join(practice.STUDENTS)}")
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)),
                   help="training seeds (mean ± sd over them)")
    p.add_argument("--budget", default=str(d.budget),
                   help="the theory's shrinkage budget S = 2·lr·steps per merge (THEORY §2, §6)")
    p.add_argument("--steps", default=str(d.steps), help="plain-SGD steps per merge (lr = S / (2·steps))")
    p.add_argument("--batch", default=str(d.batch))
    p.add_argument("--pool", default=str(d.pool),
                   help=f"inputs per merge, 0 = automatic (steps × batch, fresh; the latent teacher "
                        f"{practice.LATENT_POOL})")
    p.add_argument("--n-eval", default=str(d.n_eval), help="evaluation z_T (the same for every plan)")
    p.add_argument("--preset", default=d.preset, help="the 2-D mixture of mixture-2d")
    p.add_argument("--lam", default=d.lam,
                   help="the Gaussian teacher's spectrum: 'a:b:n[:log]' or a comma list")
    p.add_argument("--schedule", default=d.schedule)
    p.add_argument("--init", default=d.init, help="student initialisation (THEORY §2)")
    p.add_argument("--K", default=str(d.K), help="block size of the uniform plan")
    p.add_argument("--hidden", default=str(d.hidden), help="hidden units of the MLP students")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.add_argument("--threads", default="1", help="torch CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--out", default=None, help="write the per-direction table to this .csv")
    p.add_argument("--samples-out", default=None,
                   help="write the kept one-step samples (faces' latents, 2-D points) to this .npz")
    p.add_argument("--no-store", action="store_true", help="do not record the run in the run store")
    p.set_defaults(func=run_practice)


def spec_from(args: argparse.Namespace):
    from opmerge_core.practice.spec import PracticeSpec

    seeds = [s.strip() for s in str(args.seeds).split(",") if s.strip()]
    return PracticeSpec(
        teacher=args.teacher, T=args.T, plans=tuple(str(args.plans).split(",")), student=args.student,
        seeds=tuple(seeds), budget=_number(args.budget, "--budget"), steps=args.steps, batch=args.batch,
        pool=args.pool, n_eval=args.n_eval, preset=args.preset, lam=args.lam, schedule=args.schedule,
        init=args.init, K=args.K, hidden=args.hidden, device=args.device)


def to_argv(spec) -> list[str]:
    """``opmerge practice``'s argv for ``spec`` (without ``opmerge``), defaults left out."""
    values = spec.as_dict()
    values["n_eval"] = values.pop("n_eval")
    values["plans"], values["seeds"] = tuple(spec.plans), tuple(spec.seeds)
    return argv.build("practice", ("practice",), values)


def parse(args: list[str]):
    """The spec of an ``opmerge practice`` argv (``to_argv``'s inverse)."""
    return spec_from(argv.parse_args("practice", args))


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _path(text: str | None, suffixes: tuple[str, ...], name: str) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{name} must end in {' or '.join(suffixes)}, got {text!r}")
    if path.parent and not path.parent.is_dir():
        raise ValueError(f"{name}: folder {path.parent} does not exist")
    return path


def run_practice(args: argparse.Namespace) -> int:
    import numpy as np

    from opmerge_core.practice import experiment

    spec = spec_from(args)
    threads = check_int(args.threads, "--threads", hi=256)
    out = _path(args.out, OUT_SUFFIXES, "--out")
    samples_out = _path(args.samples_out, SAMPLES_SUFFIXES, "--samples-out")
    shown = [-1]

    def progress(done: int, total: int, info: dict) -> None:       # every 10% on stderr
        tenth = 10 * done // max(total, 1)
        if tenth > shown[0] and not args.json:
            shown[0] = tenth
            loss = f"  loss {info['loss']:.4g}" if "loss" in info else ""
            wave = f"wave {info.get('wave', '-')}/{info.get('waves', '-')}"
            print(f"  {100 * done // max(total, 1):>3}%  {wave}{loss}", file=sys.stderr, flush=True)

    if args.no_store:
        run_id, result = None, experiment.run(spec, threads, progress=progress)
    else:
        from opmerge_core.store import runs
        from opmerge_core.store.runstore import RunStore

        with RunStore() as store:
            run_id, result = runs.execute(store, experiment.KIND, experiment.run, spec, threads,
                                          params=spec.as_dict(), finalize=experiment.record,
                                          progress=progress)
    public = experiment.public(result) | {"command": argv_command(spec), "run_id": run_id}
    if out is not None:
        rows = public["per_direction"]
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if samples_out is not None:
        np.savez_compressed(samples_out, **result["samples"])
    if args.json:
        print(json.dumps(public))
    else:
        print(report(public))
    return 0


def argv_command(spec) -> str:
    import shlex

    return shlex.join(["opmerge", *to_argv(spec)])


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.4f} ± {sd:.4f}"


def report(public: dict) -> str:
    """The human-readable summary of a run."""
    from opmerge_core.practice.spec import agreement_is_a_count

    spec, teacher, ag = public["spec"], public["teacher"], public.get("agreement")
    sgd = (f"SGD lr {public['setting']['lr']:.3g} × {spec['steps']} steps, batch {spec['batch']}, "
           f"pool {public['setting']['pool']}")
    lines = [f"{teacher['label']}; T = {spec['T']}, S = {spec['budget']:g} ({sgd}), {spec['student']} "
             f"students, seeds {spec['seeds']}; {public['seconds']['total']:.1f} s on {public['device']}",
             f"  λ: {teacher['d']} directions from {min(teacher['lam']):.3g} to {max(teacher['lam']):.3g} "
             f"({teacher['lam_source']})", "",
             f"  {'plan':<12} {'W2 total (measured)':>20} {'theory':>8} {'FD':>17} {'students':>8} "
             f"{'rounds':>6} {'teacher steps':>13} {'seconds':>8}"]
    for name, m in public["metrics"].items():
        lines.append(f"  {name:<12} {_pm(m['w2_total'], m['w2_total_sd']):>20} {m['w2_total_theory']:>8.4f} "
                     f"{_pm(m['fd'], m['fd_sd']):>17} {m['students']:>8} {m['generations']:>6} "
                     f"{m['teacher_steps']:>13,} {m['seconds']:>8.1f}")
    t, floor = teacher["metrics"], teacher["floor"]
    lines.append(f"  teacher ({teacher['teacher_nfe']} steps): FD {t['fd']:.4f}; floor (exact samples) "
                 f"{_pm(floor['fd'], floor['fd_sd'])}; against {teacher['fd_reference']}")
    if "sliced_w2" in t:
        lines.append("  sliced W2 / share near a mode: " + ", ".join(
            f"{n} {_pm(m['sliced_w2'], m['sliced_w2_sd'])} / {m['near_modes']:.2f}"
            for n, m in public["metrics"].items())
                     + f"; teacher {t['sliced_w2']:.4f} / {t['near_modes']:.2f}; "
                       f"floor {floor['sliced_w2']:.4f}")
    if ag is not None and ag["value"] is not None:
        rate = "" if agreement_is_a_count(ag["directions"]) else \
            f" = {ag['value']:.1%}, 95% CI {ag['ci'][0]:.1%}–{ag['ci'][1]:.1%} (bootstrap over seeds)"
        lines.append(f"  agreement (BOOT vs vanilla): {ag['agree']}/{ag['resolved']} resolved "
                     f"directions{rate}")
    lines += ["", public["verdict"]]
    return "\n".join(lines)
