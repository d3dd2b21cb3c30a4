"""A training request as plain data (THEORY §6), shared by ``opmerge train``, the compute backend and the
dashboard's Train page: which plans, which setting, which optimiser — the job function that trains it
(``run``) and what a finished run records (``record``; the run life cycle is store/runs.py).

Plans: any of the named strategies (THEORY §3), ``dp`` — the DP-optimal plan for the budget the run
realises (``planner.optimal`` at S = S_eff for one λ, ``shared_plan.shared_plan`` for a λ list, THEORY §4) —
and ``custom``, a typed plan in bracket notation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from opmerge_core.basics.progress import CancelFlag, Progress
from opmerge_core.basics.validation import S_MAX, check_choice, check_lam, check_T
from opmerge_core.theory import planner, plans
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Model, Setting
from opmerge_core.theory.shared_plan import shared_plan
from opmerge_core.training.closed_form import theory
from opmerge_core.training.config import TrainConfig
from opmerge_core.training.results import TrainResult
from opmerge_core.training.trainer import T_MAX_TRAIN, train

STRATEGY_CHOICES = (*plans.STRATEGIES, "dp")
CUSTOM = "custom"
KIND = "train"


@dataclass(frozen=True, kw_only=True)
class TrainSpec(TrainConfig):
    """One training request (CLI, compute backend, dashboard): what to train, plus the optimisation
    settings it inherits from ``TrainConfig`` (validated there)."""

    T: int
    lam: tuple[float, ...]
    strategies: tuple[str, ...] = ("boot", "vanilla", "dp")
    plan: str | None = None                  # a typed plan, trained under the name "custom"
    schedule: str = "trig"
    init: str = "teacher"
    surrogate: str = "teacher"
    uniform_K: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()                 # validate (and normalise) the optimisation settings
        object.__setattr__(self, "lam", tuple(float(x) for x in check_lam(self.lam)))
        names = tuple(dict.fromkeys(str(s).strip() for s in self.strategies if str(s).strip()))
        for name in names:
            check_choice(name, STRATEGY_CHOICES, "strategy")
        if not names and not self.plan:
            raise ValueError("choose at least one strategy or type a plan")
        object.__setattr__(self, "strategies", names)
        object.__setattr__(self, "T", check_T(self.T, hi=T_MAX_TRAIN))
        object.__setattr__(self, "uniform_K", self.model().uniform_K)   # the model choices, validated

    def config(self) -> TrainConfig:
        """The optimisation settings alone."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})

    def model(self) -> Model:
        """The model at the realised budget (S is capped at S_MAX, where ρ = 1 anyway)."""
        return Model(S=min(self.S_eff, S_MAX), schedule=self.schedule, init=self.init,
                     surrogate=self.surrogate, uniform_K=self.uniform_K)

    def setting(self) -> Setting:
        return self.model().at(self.T)

    def plans(self) -> dict[str, Plan]:
        setting, lam = self.setting(), np.asarray(self.lam)
        out: dict[str, Plan] = {}
        for name in self.strategies:
            if name == "dp":
                out[name] = (planner.optimal(setting, lam)[0].plan if lam.size == 1
                             else shared_plan(setting, lam).plan)
            else:
                out[name] = plans.strategy(name, self.T, self.uniform_K)
        if self.plan:
            out[CUSTOM] = plans.parse(self.plan, self.T)
        return out

    def as_dict(self) -> dict:
        d = asdict(self)
        d["lam"], d["strategies"] = list(self.lam), list(self.strategies)
        return d


def run(spec: TrainSpec, *, progress: Progress | None = None, cancel: CancelFlag | None = None
        ) -> TrainResult:
    """The job function of a training run: train the spec's plans (``Cancelled`` if ``cancel`` is set)."""
    return train(spec.setting(), np.asarray(spec.lam), spec.plans(), spec.config(),
                 progress=progress, cancel=cancel)


def metrics(result: TrainResult) -> dict:
    """A small JSON summary for the runs table: W2 totals per plan, S_eff, time."""
    return {"S_eff": result.S_eff, "seconds": round(result.seconds, 3), "device": result.device,
            "n_trained": len(result.records),
            "w2_empirical": {n: p.w2_empirical_total for n, p in result.plans.items()},
            "w2_theory": {n: p.w2_theory_total for n, p in result.plans.items()},
            "plans": {n: p.plan.text for n, p in result.plans.items()}}


def record(result: TrainResult, run_dir: Path) -> dict:
    """A finished run's metrics and artifacts: the ``finalize`` step of a training run (runs.py)."""
    return {"metrics": metrics(result), "artifacts": save(result, run_dir)}


def save(result: TrainResult, run_dir: Path) -> dict:
    """Write summary.json and arrays.npz (no pickles); returns the artifact paths."""
    summary = run_dir / "summary.json"
    summary.write_text(json.dumps(result.summary()))
    arrays = run_dir / "arrays.npz"
    np.savez_compressed(arrays, **result.arrays())
    return {"summary": str(summary), "arrays": str(arrays)}


# ---- shrinkage vs training budget (THEORY §2, §6) ------------------------------------------------
SWEEP_KIND = "train-sweep"
SWEEP_POINTS_MAX = 16


def budget_sweep(spec: TrainSpec, steps_list: list[int], progress: Progress | None = None,
                 cancel: CancelFlag | None = None) -> list[dict]:
    """Train the spec's plans once per number of steps (same lr): the trained one-step operator vs
    the realised budget S_eff = 2·lr·steps, next to the closed form. Plans are fixed to the spec's
    (the DP plan of the spec's own budget). One row per (steps, strategy, λ)."""
    steps_list = sorted({int(n) for n in steps_list})
    if not 1 <= len(steps_list) <= SWEEP_POINTS_MAX:
        raise ValueError(f"a budget sweep takes 1..{SWEEP_POINTS_MAX} step counts")
    named, lam, setting = spec.plans(), np.asarray(spec.lam), spec.setting()
    total = sum(steps_list)
    rows, offset = [], 0
    for n in steps_list:
        config = replace(spec.config(), steps=n)

        def part(done: int, tot: int, info: dict, n=n, offset=offset) -> None:
            if progress is not None:
                progress(int(total * (offset + n * done / max(tot, 1)) / total), total, info)

        result = train(setting, lam, named, config, progress=part, cancel=cancel)
        for name, p in result.plans.items():
            for j, lam_j in enumerate(lam):
                rows.append({"steps": n, "S_eff": config.S_eff, "strategy": name, "lam": float(lam_j),
                             "empirical": float(p.empirical[j]), "theory": float(p.theory[j]),
                             "w2_empirical": float(p.w2_empirical[j]),
                             "w2_theory": float(p.w2_theory[j])})
        offset += n
    return rows


def budget_sweep_job(spec: TrainSpec, steps_list: list[int], *, progress: Progress | None = None,
                     cancel: CancelFlag | None = None) -> dict:
    """``budget_sweep`` as a compute-backend job: the spec travels back with its rows."""
    return {"spec": spec, "rows": budget_sweep(spec, steps_list, progress, cancel)}


def theory_curve(spec: TrainSpec, S_values: np.ndarray) -> list[dict]:
    """The closed-form one-step operator of each of the spec's plans over a grid of budgets S."""
    named, lam, setting = spec.plans(), np.asarray(spec.lam), spec.setting()
    rows = []
    for S in np.asarray(S_values, dtype=float):
        for name, value in theory(setting, lam, named, S, spec.inputs).items():
            rows += [{"S": float(S), "strategy": name, "lam": float(lam[j]), "theory": float(value[j])}
                     for j in range(lam.size)]
    return rows
