"""What ``trainer.train`` returns: one record per trained student, one result per plan (THEORY §2, §4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from opmerge_core.theory.plans import Plan, Span
from opmerge_core.theory.setting import Setting, total_w2
from opmerge_core.training.config import TrainConfig


@dataclass
class MergeRecord:
    """One trained student (THEORY §2). Operators are (d,) arrays; for an MLP they are LS slopes."""

    node: int
    span: Span
    height: int
    learned: np.ndarray        # the trained operator (MLP: least-squares slope)
    target: np.ndarray         # product of the (empirical) children
    A0: np.ndarray             # the init (MLP: slope of the initial function)
    input_var: np.ndarray      # E[z_s²] of the inputs actually used
    closed_form: np.ndarray    # shrinkage.trained(target, A0, ρ), ρ = 1 − exp(−S_eff · input_var)
    closed_form_sgd: np.ndarray  # exact SGD expectation (1 − 2η v)^n (linear + SGD; else NaN)
    mc_std: np.ndarray         # Monte-Carlo std of SGD around it (linear + SGD; else NaN)
    theory: np.ndarray         # the full theory chain (every node by the closed form)
    loss_steps: np.ndarray     # (n_points,) step index of each loss point
    loss: np.ndarray           # (n_points,) loss averaged over coordinates


@dataclass
class PlanResult:
    name: str
    plan: Plan
    nodes: dict[Span, int]     # merge span -> node id in TrainResult.records
    empirical: np.ndarray      # (d,) the trained one-step operator
    theory: np.ndarray         # (d,) THEORY §2 chain at S_eff
    w2_empirical: np.ndarray   # (d,) per-coordinate W2 to the surrogate (THEORY §4)
    w2_theory: np.ndarray

    @property
    def w2_empirical_total(self) -> float:
        return total_w2(self.w2_empirical)

    @property
    def w2_theory_total(self) -> float:
        return total_w2(self.w2_theory)


@dataclass
class TrainResult:
    setting: Setting
    lam: np.ndarray
    config: TrainConfig
    device: str
    plans: dict[str, PlanResult]
    records: dict[int, MergeRecord]
    seconds: float = 0.0

    @property
    def S_eff(self) -> float:
        return self.config.S_eff

    def merges(self, name: str) -> list[MergeRecord]:
        """The records of one plan's merges, in post-order."""
        p = self.plans[name]
        return [self.records[p.nodes[span]] for span in p.plan.post_order()]

    def w2_table(self) -> pd.DataFrame:
        """One row per plan: its text and total W2, trained and by theory at S_eff (and, for one λ, the
        one-step operators)."""
        one = self.lam.size == 1
        return pd.DataFrame([{"strategy": n, "plan": p.plan.text, "w2_empirical": p.w2_empirical_total,
                              "w2_theory": p.w2_theory_total,
                              **({"empirical": float(p.empirical[0]), "theory": float(p.theory[0])}
                                 if one else {})}
                             for n, p in self.plans.items()])

    def merge_table(self, name: str, j: int = 0) -> pd.DataFrame:
        """One row per merge of plan ``name`` (post-order) at coordinate ``j``: the trained operator
        next to the closed form (empirical children, S_eff), the theory chain and the Monte-Carlo
        error the closed form predicts (THEORY §2, §6)."""
        return pd.DataFrame([{"merge": k + 1, "span": f"z_{r.span[1]} → z_{r.span[0]}",
                              "learned": float(r.learned[j]), "closed_form": float(r.closed_form[j]),
                              "theory": float(r.theory[j]), "target": float(r.target[j]),
                              "A0": float(r.A0[j]), "input_var": float(r.input_var[j]),
                              "mc_std": float(r.mc_std[j])} for k, r in enumerate(self.merges(name))])

    def summary(self) -> dict:
        """JSON-ready: per plan the one-step operators and W2 (lists over λ)."""
        return {"S_eff": self.S_eff, "T": self.setting.T, "lam": self.lam.tolist(),
                "config": self.config.as_dict(), "setting": self.setting.as_dict(),
                "device": self.device, "seconds": self.seconds, "n_trained": len(self.records),
                "strategies": {name: {"plan": p.plan.text, "empirical": p.empirical.tolist(),
                                      "theory": p.theory.tolist(),
                                      "w2_empirical": p.w2_empirical.tolist(),
                                      "w2_theory": p.w2_theory.tolist(),
                                      "w2_empirical_total": p.w2_empirical_total,
                                      "w2_theory_total": p.w2_theory_total}
                               for name, p in self.plans.items()}}

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for ``np.savez`` (no pickling): per node and per plan."""
        out: dict[str, np.ndarray] = {"lam": self.lam}
        for i, r in self.records.items():
            for key in ("learned", "target", "A0", "input_var", "closed_form", "theory", "loss"):
                out[f"node{i}_{key}"] = getattr(r, key)
            out[f"node{i}_span"] = np.array(r.span)
        for name, p in self.plans.items():
            out[f"plan_{name}_empirical"] = p.empirical
            out[f"plan_{name}_theory"] = p.theory
        return out
