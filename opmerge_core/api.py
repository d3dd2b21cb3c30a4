"""opmerge's Python API: the public surface for notebooks and scripts (``import opmerge_core.api as om``).

Everything here is a name of the layers below, gathered in one place and documented by what it is for;
``docs/quickstart.ipynb`` walks through it. Figures are Plotly ``go.Figure`` objects built by the same
builders the dashboard draws with (``om.figures``); they show themselves in a notebook.

The model (THEORY §1–§2)
    ``Model(S=1.0, schedule="trig", init="teacher", surrogate="teacher", uniform_K=4)`` — every choice but
    the number of teacher steps; ``setting = model.at(T)`` — the model at T steps (``Setting``), which
    gives the teacher operators (``setting.A_star(lam)``, ``setting.P(lam)``, ``setting.w2(value, lam)``).
Plans (THEORY §3)
    ``parse_plan("[[4 3] 2 1]")`` → ``Plan``; ``plan.evaluate(setting, lam)`` is its one-step operator per λ;
    ``named_plans(T, K)`` and ``strategy(name, T, K)`` give the named strategies (``STRATEGIES``).
The optimal plan and its regime (THEORY §4–§5)
    ``optimal(setting, lams)`` → one ``OptimalPlan`` per λ (plan, value, target P, W2, regime, exact);
    ``optimal_at(setting, lam)`` for one λ; ``switch_points(setting)`` → (λ_B(T), λ_V); ``shared_plan``
    (one plan for a whole spectrum).
Sweeps (THEORY §4–§5)
    ``compare(setting, lams)`` — every named strategy against the optimum over λ (a DataFrame);
    ``phase(lams, Ts, model)`` — the λ × T phase diagram and the thresholds of each T;
    ``per_direction(setting, lams)`` — each direction's own regime (a spectrum).
Spectra (THEORY §1)
    ``load_assets()`` → the shipped CelebA VAE and its latent statistics (``stats.eigvals``: the
    spectrum); ``celeba_compare(setting, eigvals)`` — every strategy on every direction;
    ``celeba_faces(setting, vae, stats)`` → (comparison, decoded faces, labelled PIL grid).
Student training (THEORY §2, §6)
    ``train(setting, lams, plans, TrainConfig(...))`` → ``TrainResult`` (``w2_table()``,
    ``merge_table(name)``: trained operators next to the closed form); ``closed_form(setting, lams,
    plans, S)`` — what training should give.
Solvers and SFD distillation (SFD.md)
    ``solve(denoiser, x, grid, solver)`` with ``time_grid(n)`` and ``SOLVERS``; ``load_teacher(name)``
    (``TEACHERS``: the exact 2-D mixtures and the latent MLP), ``distill(teacher.model,
    DistillConfig(...))`` → ``DistillResult``; ``sfd_run(teacher_name, cfg)`` — distil and evaluate
    like ``opmerge sfd train``.
"""

from __future__ import annotations

from opmerge_core import figures
from opmerge_core.latent.celeba import compare as celeba_compare
from opmerge_core.latent.celeba import run as celeba_faces
from opmerge_core.latent.latents import load_assets
from opmerge_core.sfd.distill import DistillConfig, DistillResult, distill
from opmerge_core.sfd.lab import job as sfd_run
from opmerge_core.sfd.solvers import SOLVERS, solve, time_grid
from opmerge_core.sfd.teachers import TEACHERS, load_teacher
from opmerge_core.theory.planner import OptimalPlan, optimal, optimal_at
from opmerge_core.theory.plans import STRATEGIES, Plan, named_plans, strategy
from opmerge_core.theory.plans import parse as parse_plan
from opmerge_core.theory.setting import Model, Setting
from opmerge_core.theory.shared_plan import SharedPlan, shared_plan
from opmerge_core.theory.sweep import compare, per_direction, phase
from opmerge_core.theory.thresholds import switch_points
from opmerge_core.training.closed_form import theory as closed_form
from opmerge_core.training.config import TrainConfig
from opmerge_core.training.results import TrainResult
from opmerge_core.training.trainer import train

__all__ = [
    "SOLVERS", "STRATEGIES", "TEACHERS", "DistillConfig", "DistillResult", "Model", "OptimalPlan", "Plan",
    "Setting", "SharedPlan", "TrainConfig", "TrainResult", "celeba_compare", "celeba_faces", "closed_form",
    "compare", "distill", "figures", "load_assets", "load_teacher", "named_plans", "optimal", "optimal_at",
    "parse_plan", "per_direction", "phase", "sfd_run", "shared_plan", "solve", "strategy", "switch_points",
    "time_grid", "train",
]
