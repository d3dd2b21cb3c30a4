"""The model and the setting, validated once: a ``Model`` is everything but T — the shrinkage budget S
(THEORY §2), the model choices of THEORY.md and the block size of the ``uniform`` strategy (§3) — and
``model.at(T)`` is the ``Setting`` at T teacher steps (§1), which computes the operators.

Model choices (THEORY.md marks them **[model choice]**; defaults never change silently):
schedule (``trig``), student init (``teacher``), surrogate (``teacher`` = P, or ``exact`` = r_0/r_T).

A ``Model`` is the one shape these choices travel in: the dashboard's URL state, cache keys and
compute-backend tasks for results over many T (phase diagrams), the CLI's specs and the training
spec all carry one (or a ``Setting``, which is a model at one T).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cached_property

import numpy as np

from opmerge_core.basics.validation import T_MAX, check_choice, check_int, check_lam, check_S, check_T
from opmerge_core.theory import operators, shrinkage
from opmerge_core.theory.schedules import SCHEDULES, schedule

SURROGATES = ("teacher", "exact")
SURROGATE_LABELS = {"teacher": "teacher composite P (default)", "exact": "exact flow map r_0/r_T"}


@dataclass(frozen=True, kw_only=True)
class Model:
    """The model without T: budget S, schedule, init, surrogate and the ``uniform`` block size K.
    ``model.at(T)`` is the ``Setting`` at T; ``setting.model`` gives the model back."""

    S: float = 1.0
    schedule: str = "trig"
    init: str = "teacher"
    surrogate: str = "teacher"
    uniform_K: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "S", check_S(self.S))
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_choice(self.init, shrinkage.INITS, "init")
        check_choice(self.surrogate, SURROGATES, "surrogate")
        object.__setattr__(self, "uniform_K", check_int(self.uniform_K, "K (uniform block size)", hi=T_MAX))

    def at(self, T: int) -> Setting:
        """This model at T teacher steps."""
        return Setting(T, **self._choices())

    @property
    def model(self) -> Model:
        """The model alone (for a ``Setting``: without its T)."""
        return self if type(self) is Model else Model(**self._choices())

    def _choices(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(Model)}

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Setting(Model):
    """A model at T teacher steps: ``Setting(T, S=…, schedule=…, …)`` (the model's fields are
    keyword-only) or ``model.at(T)``."""

    T: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "T", check_T(self.T))
        super().__post_init__()

    def as_dict(self) -> dict:
        return {"T": self.T, **self._choices()}

    @cached_property
    def alpha_sigma(self) -> tuple[np.ndarray, np.ndarray]:
        return schedule(self.schedule, self.T)

    @property
    def alpha(self) -> np.ndarray:
        return self.alpha_sigma[0]

    @property
    def sigma(self) -> np.ndarray:
        return self.alpha_sigma[1]

    # ---- per-λ quantities; every array below has a trailing axis d = len(lam) ------------------
    def A_star(self, lam: np.ndarray) -> np.ndarray:
        """(T, d): row t − 1 is the teacher step t."""
        return operators.A_star(self.alpha, self.sigma, check_lam(lam))

    def r2(self, lam: np.ndarray) -> np.ndarray:
        """(T + 1, d): r_t² = α_t² λ + σ_t²."""
        return operators.r(self.alpha, self.sigma, check_lam(lam)) ** 2

    def rho(self, lam: np.ndarray) -> np.ndarray:
        """(T + 1, d): ρ_s = 1 − exp(−S r_s²), for a merge starting at s."""
        return shrinkage.rho(self.S, self.r2(lam))

    def P(self, lam: np.ndarray) -> np.ndarray:
        """(d,) the teacher composite."""
        return operators.teacher_composite(self.alpha, self.sigma, check_lam(lam))

    def exact(self, lam: np.ndarray) -> np.ndarray:
        """(d,) the exact flow map r_0/r_T."""
        return operators.exact_flow_map(self.alpha, self.sigma, check_lam(lam))

    def target(self, lam: np.ndarray) -> np.ndarray:
        """(d,) the surrogate the one-step student is measured against (THEORY §4)."""
        return self.P(lam) if self.surrogate == "teacher" else self.exact(lam)

    def r_T(self, lam: np.ndarray) -> np.ndarray:
        return np.sqrt(self.r2(lam)[-1])

    def w2(self, value: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """Per-coordinate W2 between N(0, (value r_T)²) and N(0, (target r_T)²): r_T |value − target|."""
        return self.r_T(lam) * np.abs(np.asarray(value) - self.target(lam))


def total_w2(per_coordinate: np.ndarray) -> float:
    """W2 over coordinates: √Σ_i w_i² (independent Gaussian coordinates)."""
    return float(np.sqrt(np.sum(np.square(per_coordinate))))
