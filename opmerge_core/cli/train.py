"""`opmerge train` (real student training, THEORY §6) and `opmerge runs list / show / compare`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

import numpy as np
import torch
from tqdm import tqdm

from opmerge_core.basics.device import DEVICES
from opmerge_core.basics.validation import check_int, check_T, parse_float_list
from opmerge_core.cli import argv
from opmerge_core.store import runs
from opmerge_core.store.runstore import RunStore, Status
from opmerge_core.theory import plans
from opmerge_core.theory.schedules import SCHEDULES
from opmerge_core.theory.setting import SURROGATES
from opmerge_core.theory.shrinkage import INITS
from opmerge_core.training import train_spec
from opmerge_core.training.config import INPUTS, OPTIMIZERS, STUDENTS

DEFAULT_STRATEGIES = "boot,vanilla,dp"


def spec_from(args: argparse.Namespace) -> train_spec.TrainSpec:
    plan_text = args.plan
    T = args.T
    if T is None:
        if not plan_text:
            raise ValueError("give --T (or --plan, whose largest step is T)")
        T = plans.parse(plan_text).T
    strategies = args.strategies if args.strategies is not None else \
        ("" if plan_text else DEFAULT_STRATEGIES)
    return train_spec.TrainSpec(
        T=check_T(T), lam=parse_float_list(args.lam, "lam"),
        strategies=tuple(s for s in strategies.split(",") if s.strip()), plan=plan_text,
        schedule=args.schedule, init=args.init, surrogate=args.surrogate, uniform_K=args.uniform_K,
        steps=args.steps, lr=args.lr, batch=args.batch, optimizer=args.optimizer, seed=args.seed,
        inputs=args.inputs, student=args.student, hidden=args.hidden, device=args.device)


def to_argv(spec: train_spec.TrainSpec) -> list[str]:
    """``opmerge train``'s argv for ``spec`` (without ``opmerge``), defaults left out. The strategies
    are spelled out unless the typed plan is trained alone: their default depends on ``--plan``."""
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    values["strategies"] = spec.strategies or None
    return argv.build("train", ("train",), values)


def parse(args: list[str]) -> train_spec.TrainSpec:
    """The spec of an ``opmerge train`` argv (``to_argv``'s inverse)."""
    return spec_from(argv.parse_args("train", args))


def _scalar_or_list(x: np.ndarray, as_list: bool):
    return [float(v) for v in x] if as_list else float(x[0])


def run_train(args: argparse.Namespace) -> int:
    spec = spec_from(args)
    # Per-step tensors are small (batch × d): extra intra-op threads mostly spin, and on a shared
    # machine they make things slower (bench/bench_trainer.py), so one thread unless asked.
    torch.set_num_threads(check_int(args.threads, "threads", hi=256))
    store = RunStore()
    with tqdm(total=1, desc="training", unit="merge-step", file=sys.stderr, disable=None,
              leave=False, dynamic_ncols=True) as bar:
        def progress(done: int, total: int, info: dict) -> None:
            bar.total = total
            bar.n = done
            if "loss" in info:
                bar.set_postfix(wave=f"{info.get('wave')}/{info.get('waves')}",
                                loss=f"{info['loss']:.3g}", refresh=False)
            bar.refresh()
        if args.scheduler:
            run_id, result = _train_on_cluster(args.scheduler, store, spec, progress)
        else:
            run_id, result = runs.execute(store, train_spec.KIND, train_spec.run, spec,
                                          params=spec.as_dict(), finalize=train_spec.record,
                                          progress=progress)
    as_list = len(spec.lam) > 1
    out: dict = {"S_eff": result.S_eff, "run_id": run_id}
    for name, p in result.plans.items():
        out[name] = {"plan": p.plan.text,
                     "empirical": _scalar_or_list(p.empirical, as_list),
                     "theory": _scalar_or_list(p.theory, as_list),
                     "w2_empirical": _scalar_or_list(p.w2_empirical, as_list),
                     "w2_theory": _scalar_or_list(p.w2_theory, as_list)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"run {run_id}: T = {spec.T}, {spec.optimizer} lr = {spec.lr:g} × {spec.steps} steps "
          f"(batch {spec.batch}) → S_eff = 2ηn = {result.S_eff:g}; {len(result.records)} students "
          f"trained in {result.seconds:.2f} s on {result.device}")
    for j, lam in enumerate(spec.lam):
        print(f"λ = {lam:g}   target P = {result.setting.target(np.array([lam]))[0]:.6f}")
        print(f"  {'strategy':<12} {'empirical':>10} {'theory':>10} {'W2 emp':>10} {'W2 theory':>10}"
              "  plan")
        for name, p in result.plans.items():
            text = p.plan.text if len(p.plan.text) <= 40 else p.plan.text[:37] + "..."
            print(f"  {name:<12} {p.empirical[j]:>10.6f} {p.theory[j]:>10.6f} "
                  f"{p.w2_empirical[j]:>10.4g} {p.w2_theory[j]:>10.4g}  {text}")
    return 0


def _train_on_cluster(address: str, store: RunStore, spec: train_spec.TrainSpec, progress):
    """The same run on an existing Dask cluster (compute.py): recorded here, trained on a worker."""
    from opmerge_core.backend import compute

    backend = compute.Backend(address, store=store)
    try:
        job = backend.submit(train_spec.KIND, train_spec.run, spec, params=spec.as_dict(),
                             finalize=train_spec.record)
        try:
            while not job.wait(0.2):
                progress(round(1000 * job.progress), 1000, job.info)
        except KeyboardInterrupt:
            job.cancel()
            job.wait(30)
            raise
        if job.status != Status.DONE:
            raise ValueError(f"run {job.id} {job.status} on the cluster: {job.error}")
        return job.id, job.result
    finally:
        backend.shutdown()


# ---- runs ---------------------------------------------------------------------------------------
def _run_id(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"a run id is an integer, got {text!r}") from None


def _get(store: RunStore, text: str) -> dict:
    row = store.get(_run_id(text))
    if row is None:
        raise ValueError(f"no run with id {text} in {store.path}")
    return row


def run_list(args: argparse.Namespace) -> int:
    rows = RunStore().list(kind=args.kind, limit=check_int(args.limit, "limit", hi=10_000))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no runs yet")
        return 0
    print(f"{'id':>5}  {'created':<25} {'kind':<6} {'status':<10} {'prog':>5}  summary")
    for r in rows:
        p, m = r["params"], r["metrics"]
        summary = (f"T={p.get('T')} λ={','.join(f'{x:g}' for x in p.get('lam', []))} "
                   f"{p.get('optimizer', '')} steps={p.get('steps')} lr={p.get('lr')}")
        if m.get("w2_empirical"):
            summary += "  W2 " + " ".join(f"{k}={v:.3g}" for k, v in m["w2_empirical"].items())
        if r["error"] and r["status"] != Status.DONE:
            summary += f"  [{r['error']}]"
        print(f"{r['id']:>5}  {r['created']:<25} {r['kind']:<6} {r['status']:<10} "
              f"{r['progress']:>5.0%}  {summary}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    row = _get(RunStore(), args.id)
    if args.json:
        print(json.dumps(row, indent=2))
        return 0
    for key in ("id", "created", "kind", "status", "progress", "error", "pid", "owner", "finished"):
        print(f"{key:<10} {row[key]}")
    print("params    " + json.dumps(row["params"]))
    for key in ("metrics", "artifacts"):
        for k, v in row[key].items():
            print(f"{key[:-1]:<10} {k}: {json.dumps(v)}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    store = RunStore()
    a, b = _get(store, args.a), _get(store, args.b)
    keys = sorted(set(a["params"]) | set(b["params"]))
    diff = {k: [a["params"].get(k), b["params"].get(k)] for k in keys
            if a["params"].get(k) != b["params"].get(k)}
    names = sorted(set(a["metrics"].get("w2_empirical", {})) | set(b["metrics"].get("w2_empirical",
                                                                                      {})))
    w2 = {n: {"a": a["metrics"].get("w2_empirical", {}).get(n),
              "b": b["metrics"].get("w2_empirical", {}).get(n),
              "theory_a": a["metrics"].get("w2_theory", {}).get(n),
              "theory_b": b["metrics"].get("w2_theory", {}).get(n)} for n in names}
    if args.json:
        print(json.dumps({"a": a["id"], "b": b["id"], "status": [a["status"], b["status"]],
                          "params_differ": diff, "w2": w2}, indent=2))
        return 0
    print(f"runs {a['id']} ({a['status']}) vs {b['id']} ({b['status']})")
    print("parameters that differ:" if diff else "same parameters")
    for k, (x, y) in diff.items():
        print(f"  {k:<12} {json.dumps(x):>20} {json.dumps(y):>20}")
    if names:
        print(f"  {'W2 (empirical)':<14} {'run ' + str(a['id']):>12} {'run ' + str(b['id']):>12}"
              f" {'theory ' + str(a['id']):>12} {'theory ' + str(b['id']):>12}")
        for n, v in w2.items():
            cells = " ".join(f"{'—' if x is None else f'{x:.4g}':>12}" for x in v.values())
            print(f"  {n:<14} {cells}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train real students for merge plans and compare with theory")
    p.add_argument("--strategies", default=None,
                   help=f"comma list of {', '.join(train_spec.STRATEGY_CHOICES)} "
                        f"(default {DEFAULT_STRATEGIES}; none when --plan is given)")
    p.add_argument("--plan", help="a plan in bracket notation, trained as 'custom'")
    p.add_argument("--T", default=None, help="number of teacher steps (1..1024)")
    p.add_argument("--lam", required=True, help="data variance λ > 0 or a comma list (d ≤ 4096)")
    p.add_argument("--steps", default="200", help="SGD/Adam steps per merge (1..100000)")
    p.add_argument("--lr", default="0.05", help="learning rate (0, 100]; S_eff = 2 · lr · steps")
    p.add_argument("--batch", default="256", help="samples per step (1..65536)")
    p.add_argument("--optimizer", default="sgd", help=f"one of {', '.join(OPTIMIZERS)}")
    p.add_argument("--seed", default="0")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)}")
    p.add_argument("--inputs", default="forward", help=f"one of {', '.join(INPUTS)}")
    p.add_argument("--student", default="linear", help=f"one of {', '.join(STUDENTS)}")
    p.add_argument("--hidden", default="16", help="MLP hidden width (1..256)")
    p.add_argument("--schedule", default="trig", help=f"one of {', '.join(SCHEDULES)}")
    p.add_argument("--init", default="teacher", help=f"one of {', '.join(INITS)}")
    p.add_argument("--surrogate", default="teacher", help=f"one of {', '.join(SURROGATES)}")
    p.add_argument("--K", dest="uniform_K", default="4",
                   help="block size of the `uniform` strategy (default 4)")
    p.add_argument("--threads", default="1", help="torch CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--scheduler", metavar="ADDRESS", default=os.environ.get("OPMERGE_SCHEDULER"),
                   help="train on an existing Dask cluster, e.g. tcp://host:8786 (recorded here)")
    p.set_defaults(func=run_train)

    runs = sub.add_parser("runs", help="the run store: list, show, compare past runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True, parser_class=type(runs))
    q = rsub.add_parser("list", help="recent runs, newest first")
    q.add_argument("--kind", default=None)
    q.add_argument("--limit", default="50")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_list)
    q = rsub.add_parser("show", help="one run")
    q.add_argument("id")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_show)
    q = rsub.add_parser("compare", help="two runs side by side")
    q.add_argument("a")
    q.add_argument("b")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_compare)
