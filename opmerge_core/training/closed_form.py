"""What training should give: the closed form of THEORY §2 on the merge graph, and exact SGD moments.

Gradient flow for optimisation time τ takes a merge's linear student to
``A = (1 − γ_s) A_tgt + γ_s A(0)``, ``γ_s = exp(−S r_s²)`` with the budget ``S = κτ``, κ = 2 (THEORY §2);
plain SGD with learning rate η for n steps realises ``S_eff = 2 η n`` (THEORY §6).

SGD is discrete: the per-step batch second moments are independent with mean r_s², so
``E[A_n] = A_tgt + (A(0) − A_tgt)(1 − 2η r_s²)^n`` *exactly* (``sgd_moments``, which also gives the
Monte-Carlo standard deviation); this tends to the closed form ``exp(−S_eff r_s²)`` as η r_s² → 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from opmerge_core.basics.validation import check_choice, check_lam
from opmerge_core.theory import operators, shrinkage
from opmerge_core.theory.plans import Plan
from opmerge_core.theory.setting import Setting
from opmerge_core.training.graph import INPUTS, MergeGraph, Node, build_graph


def sgd_moments(A0: np.ndarray, target: np.ndarray, var: np.ndarray, lr: float, steps: int,
                batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and standard deviation of plain SGD on one linear merge (THEORY §6).

    Per step A − A_tgt is multiplied by x_k = 1 − 2η m_k with m_k = (v/B)·χ²_B the batch second moment,
    so E[x] = 1 − 2ηv, E[x²] = E[x]² + 8η²v²/B, and after n independent steps
    mean = A_tgt + (A0 − A_tgt) E[x]^n, std = |A0 − A_tgt| √(E[x²]^n − E[x]^{2n}).
    """
    gap = np.asarray(A0, dtype=np.float64) - target
    mu = 1.0 - 2.0 * lr * np.asarray(var, dtype=np.float64)
    second = mu**2 + 8.0 * lr**2 * np.asarray(var, dtype=np.float64) ** 2 / batch
    mean = target + gap * mu**steps
    std = np.abs(gap) * np.sqrt(np.maximum(second**steps - mu ** (2 * steps), 0.0))
    return mean, std


def initial_operator(setting: Setting, lam: np.ndarray, node: Node, first: np.ndarray) -> np.ndarray:
    """A(0) of a merge per ``setting.init`` (THEORY §2); ``first`` is its first child's operator."""
    e, s = node.span
    if setting.init == "teacher":
        return np.asarray(first, dtype=np.float64)
    if setting.init == "coarse":
        return operators.coarse_jump(setting.alpha, setting.sigma, lam, s, e)
    return np.full(lam.size, 1.0 if setting.init == "identity" else 0.0)


def input_variance(node: Node, r2: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """E[z_s²] of a merge's inputs: r_s² (forward), or r_T² through its chain's operators (boot)."""
    if not node.chain:
        return r2[node.span[1]]
    return r2[-1] * np.prod(ops[list(node.chain)], axis=0) ** 2


def fill_theory(graph: MergeGraph, setting: Setting, lam: np.ndarray, S: float) -> np.ndarray:
    """Every node's operator by the closed form of THEORY §2 at budget S, shape (n_nodes, d)."""
    T, r2 = graph.T, setting.r2(lam)
    values = np.full((graph.n_nodes, lam.size), np.nan)
    values[:T], values[graph.identity] = setting.A_star(lam), 1.0
    for i in range(T + 1, graph.n_nodes):               # topological order
        node = graph.node(i)
        target = np.prod(values[list(node.children)], axis=0)
        A0 = initial_operator(setting, lam, node, values[node.children[0]])
        values[i] = shrinkage.trained(target, A0, shrinkage.rho(S, input_variance(node, r2, values)))
    return values


def theory(setting: Setting, lam: np.ndarray | float, plans: Mapping[str, Plan], S: float,
           inputs: str = "forward") -> dict[str, np.ndarray]:
    """The one-step operator each plan reaches by the closed form at budget S, with the trainer's
    input choice (for ``forward`` this is ``Plan.evaluate`` at S). Shape (d,) per plan."""
    lam = check_lam(lam)
    check_choice(inputs, INPUTS, "inputs")
    graph = build_graph(plans, setting.T, inputs)
    values = fill_theory(graph, setting, lam, float(S))
    return {name: values[graph.root(name)] for name in plans}
