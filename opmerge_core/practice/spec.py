"""What a run of the experiment is (THEORY §8), as plain data: the teachers, students and plans it knows,
the bounds of every size, and ``PracticeSpec`` — shared by ``opmerge practice``, the compute backend
and the "Theory vs practice" page. No torch here: the CLI registers its options from this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from opmerge_core.basics.validation import check_choice, check_int, check_positive, parse_lam_grid
from opmerge_core.sfd import mixtures
from opmerge_core.theory import plans
from opmerge_core.theory.schedules import SCHEDULES
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shrinkage import INITS

TEACHER_LABELS = {
    "gaussian": "Gaussian N(0, diag λ), exact linear denoiser (calibration)",
    "mixture-2d": "2-D Gaussian mixture, exact nonlinear denoiser",
    "latent-mlp": "CelebA latent MLP denoiser (d = 128, decoded to faces)",
}
TEACHERS = tuple(TEACHER_LABELS)
STUDENT_LABELS = {"linear": "linear per direction (the theory's student)",
                  "mlp": "linear + small MLP per merge (neural)"}
STUDENTS = tuple(STUDENT_LABELS)
PLAN_CHOICES = (*plans.STRATEGIES, "dp")
DEFAULT_PLANS = ("vanilla", "boot", "progressive", "uniform", "dp")
PLAN_LABELS = {**plans.STRATEGY_LABELS, "dp": "DP-optimal"}
GAUSSIAN_LAM = "0.1:10:32:log"   # the Gaussian teacher's default spectrum (both sides of λ = 1)
T_MIN, T_MAX = 2, 64
SEEDS_MAX = 10
STEPS_MAX = 10_000
BATCH_MAX = 4096
POOL_MAX = 1 << 18
LATENT_POOL = 8192          # the latent teacher's default pool (denoiser calls dominate its cost)
N_EVAL_MIN, N_EVAL_MAX = 256, 65_536
S_MAX = 20.0
HIDDEN_MAX = 256
POOL_ELEMENTS_MAX = 1 << 24   # pool × d of one merge's inputs (and as many targets): 64 MB each
FEW_DIRECTIONS = 10         # below this many directions the agreement is a count, not a rate


def agreement_is_a_count(directions: int) -> bool:
    """Too few directions for a rate (and its interval): the verdict, the page and the CLI say "k of n"."""
    return directions < FEW_DIRECTIONS


# ---- the spec ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PracticeSpec:
    """One run: teacher, plans, student and the budget (bad values → ValueError, one line)."""

    teacher: str = "latent-mlp"
    T: int = 16
    plans: tuple[str, ...] = DEFAULT_PLANS
    student: str = "linear"
    seeds: tuple[int, ...] = (0, 1, 2)
    budget: float = 1.0             # the theory's S = κτ = 2 η n (THEORY §2, §6)
    steps: int = 200                # SGD steps per merge
    batch: int = 256
    pool: int = 0                   # inputs per (seed, s, height); 0: automatic (module docstring)
    n_eval: int = 8192
    preset: str = "two-blobs"       # the 2-D mixture
    lam: str = GAUSSIAN_LAM         # the Gaussian teacher's spectrum
    schedule: str = "trig"
    init: str = "teacher"
    K: int = 4                      # block size of ``uniform``
    hidden: int = 32                # MLP students' hidden units
    device: str = "auto"

    def __post_init__(self) -> None:
        check_choice(self.teacher, TEACHERS, "teacher")
        object.__setattr__(self, "T", check_int(self.T, "T (teacher steps)", lo=T_MIN, hi=T_MAX))
        names = tuple(dict.fromkeys(str(p).strip() for p in self.plans if str(p).strip()))
        if not names:
            raise ValueError(f"choose at least one plan of: {', '.join(PLAN_CHOICES)}")
        for name in names:
            check_choice(name, PLAN_CHOICES, "plan")
        object.__setattr__(self, "plans", names)
        check_choice(self.student, STUDENTS, "student")
        seeds = tuple(dict.fromkeys(check_int(s, "seed", lo=0, hi=2**31 - 1) for s in self.seeds))
        if not 1 <= len(seeds) <= SEEDS_MAX:
            raise ValueError(f"give 1 to {SEEDS_MAX} seeds, got {len(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "budget", check_positive(self.budget, "budget S", hi=S_MAX))
        object.__setattr__(self, "steps", check_int(self.steps, "steps", hi=STEPS_MAX))
        object.__setattr__(self, "batch", check_int(self.batch, "batch", hi=BATCH_MAX))
        object.__setattr__(self, "pool", check_int(self.pool, "pool", lo=0, hi=POOL_MAX))
        if 0 < self.pool < self.batch:
            raise ValueError(f"pool ({self.pool}) must hold at least one batch ({self.batch})")
        object.__setattr__(self, "n_eval", check_int(self.n_eval, "n_eval", lo=N_EVAL_MIN, hi=N_EVAL_MAX))
        mixtures.preset(self.preset)
        parse_lam_grid(self.lam)
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_choice(self.init, INITS, "init")
        object.__setattr__(self, "K", check_int(self.K, "K (uniform block size)", hi=T_MAX))
        object.__setattr__(self, "hidden", check_int(self.hidden, "hidden", hi=HIDDEN_MAX))
        from opmerge_core.basics.device import DEVICES  # torch: only once a spec is built

        check_choice(self.device, DEVICES, "device")

    @property
    def lr(self) -> float:
        """η = S / (2 n): plain SGD for n steps realises the budget S = 2ηn (THEORY §6)."""
        return self.budget / (2.0 * self.steps)

    @property
    def pool_size(self) -> int:
        if self.pool:
            return self.pool
        return min(LATENT_POOL, self.steps * self.batch) if self.teacher == "latent-mlp" else \
            min(POOL_MAX, self.steps * self.batch)

    def setting(self) -> Setting:
        return Setting(T=self.T, S=self.budget, schedule=self.schedule, init=self.init, uniform_K=self.K)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["plans"], d["seeds"] = list(self.plans), list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PracticeSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for key in ("plans", "seeds"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
