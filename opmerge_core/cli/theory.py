"""`opmerge plan`, `opmerge eval`, `opmerge sweep`: the theory engine from the command line.

Start-up matters here (a speaker types these live): nothing imports torch or streamlit, pandas is
imported by ``sweep`` only (it writes a table), and small plans never load numba (``dp``: a small
one-off DP runs in numpy).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from opmerge_core.basics.validation import (
    check_lam,
    os_reason,
    parse_float_list,
    parse_lam_grid,
    parse_T_list,
)
from opmerge_core.cli import argv
from opmerge_core.theory import planner, plans
from opmerge_core.theory.schedules import SCHEDULES
from opmerge_core.theory.setting import SURROGATES, Model, Setting
from opmerge_core.theory.shared_plan import shared_plan
from opmerge_core.theory.shrinkage import INITS

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client


def add_model_args(p: argparse.ArgumentParser) -> None:
    """S and the THEORY.md model choices (defaults first), shared by every command that plans."""
    p.add_argument("--shrinkage", "--S", dest="S", default="1.0", help="budget S = κτ (default 1)")
    p.add_argument("--schedule", default="trig", help=f"one of {', '.join(SCHEDULES)}")
    p.add_argument("--init", default="teacher", help=f"one of {', '.join(INITS)}")
    p.add_argument("--surrogate", default="teacher", help=f"one of {', '.join(SURROGATES)}")
    p.add_argument("--K", dest="uniform_K", default="4",
                   help="block size of the `uniform` strategy (default 4)")


def add_setting_args(p: argparse.ArgumentParser, T_required: bool = True) -> None:
    """The options every theory command shares."""
    p.add_argument("--T", required=T_required, help="number of teacher steps (1..4096)")
    p.add_argument("--lam", required=True, help="data variance λ > 0, or a comma list")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def model_from(args: argparse.Namespace) -> Model:
    """The model of ``add_model_args``'s options."""
    return Model(S=args.S, schedule=args.schedule, init=args.init, surrogate=args.surrogate,
                 uniform_K=args.uniform_K)


def setting_from(args: argparse.Namespace, T: object | None = None) -> Setting:
    return model_from(args).at(args.T if T is None else T)


def _lams(args: argparse.Namespace) -> np.ndarray:
    return check_lam(parse_float_list(args.lam, "lam"))


def _emit(objects: list[dict], as_json: bool, lam_is_list: bool, text: str) -> None:
    if as_json:
        print(json.dumps(objects if lam_is_list else objects[0], indent=2))
    else:
        print(text)


def run_plan(args: argparse.Namespace) -> int:
    setting, lams = setting_from(args), _lams(args)
    best = planner.optimal(setting, lams)
    named = {name: (p, p.evaluate(setting, lams)) for name, p in
             plans.named_plans(setting.T, setting.uniform_K).items()}
    objects, lines = [], []
    for j, b in enumerate(best):
        strategies = {name: {"plan": p.text, "value": float(v[j]),
                             "w2": float(setting.w2(v[j:j + 1], lams[j:j + 1])[0])}
                      for name, (p, v) in named.items()}
        objects.append({"lam": b.lam, "T": setting.T, "plan": b.plan.text, "value": b.value,
                        "P": b.P, "w2": b.w2, "regime": b.regime, "exact": b.exact,
                        "min": b.lo, "max": b.hi, "strategies": strategies})
        lines.append(f"λ = {b.lam:g}, T = {setting.T}, S = {setting.S:g}: optimal plan is "
                     f"{b.label} ({'exact' if b.exact else 'NOT proven optimal: mixed band'})")
        lines.append(f"  plan   {b.plan.text}")
        lines.append(f"  value  {b.value:.6f}   target P = {b.P:.6f}   W2 = {b.w2:.6g}")
        lines.append(f"  {'strategy':<12} {'value':>10} {'W2':>12} {'gap to DP':>12}")
        for name, s in strategies.items():
            lines.append(f"  {name:<12} {s['value']:>10.6f} {s['w2']:>12.6g} "
                         f"{s['w2'] - b.w2:>12.3g}")
    if args.shared:
        shared = shared_plan(setting, lams)
        named_w2 = {name: float(np.linalg.norm(setting.w2(v, lams))) for name, (_, v) in named.items()}
        block = {"plan": shared.plan.text, "w2": shared.w2, "exact": shared.exact,
                 "method": shared.method, "lower_bound": shared.lower_bound, "gap": shared.gap,
                 "values": shared.values.tolist(), "strategies_w2": named_w2}
        if args.json:
            print(json.dumps({"per_lambda": objects, "shared": block}, indent=2))
            return 0
        proof = "exact" if shared.exact else f"{shared.method} DP: not proven optimal"
        lines.append(f"shared plan for all {len(lams)} λ values ({proof}):")
        lines.append(f"  plan   {shared.plan.text}")
        lines.append(f"  lower bound (every direction at its own optimum) {shared.lower_bound:.6g}, "
                     f"gap at most {shared.gap:.3g}")
        lines.append(f"  W2 over coordinates {shared.w2:.6g}; named strategies: "
                     + ", ".join(f"{k} {v:.6g}" for k, v in named_w2.items()))
    _emit(objects, args.json, len(lams) > 1, "\n".join(lines))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    plan = plans.parse(args.plan, args.T)
    setting, lams = setting_from(args, plan.T), _lams(args)
    values = plan.evaluate(setting, lams)
    target, w2 = setting.target(lams), setting.w2(values, lams)
    objects = [{"lam": float(lams[j]), "T": plan.T, "plan": plan.text, "value": float(values[j]),
                "P": float(target[j]), "w2": float(w2[j])} for j in range(len(lams))]
    text = "\n".join(f"λ = {o['lam']:g}: {o['plan']}  value = {o['value']:.6f}  "
                     f"P = {o['P']:.6f}  W2 = {o['w2']:.6g}" for o in objects)
    _emit(objects, args.json, len(lams) > 1, text)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from opmerge_core.theory import sweep  # pandas

    lams, Ts, model = parse_lam_grid(args.lam), parse_T_list(args.T), model_from(args)
    if args.scheduler:
        from opmerge_core.backend import cluster

        with cluster.connect(args.scheduler) as client:
            df, th = sweep_on_cluster(client, lams, Ts, model)
    else:
        df, th = sweep.phase_sweep(lams, Ts, model), sweep.thresholds(Ts, model)
    df = df.merge(th, on="T")
    if args.out:
        try:
            df.to_csv(args.out, index=False)
        except OSError as exc:
            raise ValueError(f"cannot write {args.out}: {os_reason(exc)}") from None
    if args.json:
        print(df.to_json(orient="records"))
        return 0
    summary = df.groupby("T").agg(lam_B=("lam_B", "first"), lam_V=("lam_V", "first"),
                                  boot=("regime", lambda r: int((r == "boot").sum())),
                                  hybrid=("regime", lambda r: int((r == "hybrid").sum())),
                                  mixed=("regime", lambda r: int((r == "mixed").sum())),
                                  vanilla=("regime", lambda r: int((r == "vanilla").sum())))
    print(f"{len(df)} points ({len(lams)} λ × {len(Ts)} T)" +
          (f" written to {args.out}" if args.out else ""))
    print(summary.to_string())
    return 0


def sweep_on_cluster(client: Client, lams: np.ndarray, Ts: list[int],
                     model: Model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``sweep.phase_sweep`` and ``sweep.thresholds`` spread over a Dask cluster (``client``: a
    ``distributed.Client``), one task per T, the largest (one DP costs ∝ T³) first. Each task is the
    local run's own batch over λ, so the result is bit for bit the local one."""
    import pandas as pd

    from opmerge_core.theory import sweep  # pandas

    lams, Ts = sweep.check_grid(lams, Ts)
    order = sorted(range(len(Ts)), key=lambda i: -Ts[i])
    parts = client.map(sweep.compare, [model.at(Ts[i]) for i in order], [lams] * len(Ts), pure=False)
    limits = client.map(sweep.thresholds, [[Ts[i]] for i in order], model=model, pure=False)
    back = np.argsort(order)
    frames, rows = client.gather(parts), client.gather(limits)
    return (pd.concat([frames[j] for j in back], ignore_index=True),
            pd.concat([rows[j] for j in back], ignore_index=True))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="the optimal merge plan and every named strategy")
    add_setting_args(p)
    p.add_argument("--shared", action="store_true",
                   help="also the one plan shared by all λ values (a spectrum), by the Pareto DP; "
                        "--json then prints {per_lambda: [...], shared: {...}}")
    p.set_defaults(func=run_plan)

    p = sub.add_parser("eval", help="evaluate a plan in bracket notation, e.g. '[[4 3] 2 1]'")
    p.add_argument("--plan", required=True, help="bracket notation, e.g. '[[4 3] 2 1]'")
    add_setting_args(p, T_required=False)
    p.set_defaults(func=run_eval)

    p = sub.add_parser("sweep", help="phase diagram over a λ grid × list of T, as CSV")
    add_setting_args(p)
    p.set_defaults(func=run_sweep)
    p.add_argument("--out", help="CSV file to write")
    p.add_argument("--scheduler", metavar="ADDRESS", default=os.environ.get("OPMERGE_SCHEDULER"),
                   help="spread the grid over an existing Dask cluster, e.g. tcp://host:8786 "
                        "(same CSV as a local run)")
    p.epilog = "--lam takes 'a:b:n:log', 'a:b:n' or a comma list; --T a comma list"




# ---- specs ⇄ argv (cli/argv.py) -----------------------------------------------------------------
@dataclass(frozen=True)
class PlanCommand:
    """``opmerge plan``: the optimal plan at each λ of ``lam`` (and with ``shared`` the one plan for
    all of them)."""

    setting: Setting
    lam: tuple[float, ...]
    shared: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", tuple(float(x) for x in check_lam(self.lam)))


@dataclass(frozen=True)
class EvalCommand:
    """``opmerge eval``: one plan in bracket notation at each λ of ``lam``."""

    plan: str
    setting: Setting
    lam: tuple[float, ...]

    def __post_init__(self) -> None:
        plans.parse(self.plan, self.setting.T)
        object.__setattr__(self, "lam", tuple(float(x) for x in check_lam(self.lam)))


@dataclass(frozen=True)
class SweepCommand:
    """``opmerge sweep``: the phase diagram over the λ grid ``lam`` ('a:b:n:log', 'a:b:n' or a comma
    list) × ``Ts`` of ``model`` (a ``Setting`` is taken as its model: its T is not used)."""

    Ts: tuple[int, ...]
    lam: str
    model: Model
    out: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "Ts", tuple(parse_T_list(",".join(map(str, self.Ts)))))
        object.__setattr__(self, "model", self.model.model)
        parse_lam_grid(self.lam)


def model_options(model: Model) -> dict[str, object]:
    """The values of ``add_model_args``'s options for ``model`` (or a ``Setting``'s model)."""
    return model.model.as_dict()


def to_argv(spec: PlanCommand | EvalCommand | SweepCommand) -> list[str]:
    """The argv of the command running ``spec`` (without ``opmerge``), defaults left out."""
    if isinstance(spec, SweepCommand):
        name, values = "sweep", {"T": spec.Ts, "lam": spec.lam, "out": spec.out,
                                 **model_options(spec.model)}
    else:
        name = "plan" if isinstance(spec, PlanCommand) else "eval"
        values = {"T": spec.setting.T, "lam": spec.lam, **model_options(spec.setting)}
        values.update({"shared": spec.shared} if isinstance(spec, PlanCommand) else {"plan": spec.plan})
    return argv.build("theory", (name,), values)


def parse(args: list[str]) -> PlanCommand | EvalCommand | SweepCommand:
    """The spec of an ``opmerge plan | eval | sweep`` argv (``to_argv``'s inverse)."""
    ns = argv.parse_args("theory", args)
    if ns.command == "sweep":
        Ts = tuple(parse_T_list(ns.T))
        return SweepCommand(Ts, ns.lam, model_from(ns), ns.out)
    if ns.command == "eval":
        plan = plans.parse(ns.plan, ns.T)
        return EvalCommand(ns.plan, setting_from(ns, plan.T), tuple(parse_float_list(ns.lam, "lam")))
    return PlanCommand(setting_from(ns), tuple(parse_float_list(ns.lam, "lam")), ns.shared)
