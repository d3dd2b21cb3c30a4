"""The CelebA latent lab: merge strategies applied per eigen-direction of VAE latents (THEORY §1, §3, §4).

THEORY.md §1 (eigenbasis remark): the latent Gaussian N(μ, U Λ Uᵀ) reduces to independent
coordinates y_i with variances λ_i = the covariance eigenvalues. For a ``Setting`` (T, S, schedule,
init, surrogate) every method below is one number per direction, the one-step operator z_T → z_0:

- ``teacher``: the T-step DDIM composite P (THEORY §1, eq. 8);  ``exact``: the flow map r_0/r_T;
- the five named strategies (THEORY §3, ``plans.named_plans``), each a single plan for all directions;
- ``dp``: each direction's own W2-optimal plan (``planner.optimal``, THEORY §4);
- ``dp_shared``: one plan shared by all directions (``shared_plan.shared_plan``, THEORY §4 last bullet).

Theory error per method (THEORY §4): per direction ``setting.w2`` = r_T |value − target|, summed in
quadrature over all directions (``w2``), over λ_i < 1 (``w2_low``) and over λ_i ≥ 1 (``w2_high``).

Samples: y_T = r_T ⊙ ε with ε ~ N(0, I) (fixed seed), y_0 = value ⊙ y_T, z_0 = U y_0 + μ, decoded.
After :func:`train_strategies` every strategy also has its trained operator (the students), sampled
from the same z_T. The face grid has one row per method, each strategy's trained row right below its
theory row, and, below, each row's difference from the teacher, amplified (``gain``) around mid-grey.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from opmerge_core.basics.progress import CancelFlag, Progress
from opmerge_core.basics.validation import check_int, check_lam, check_positive
from opmerge_core.latent.images import enlarge, labelled_grid, png_bytes
from opmerge_core.latent.latents import LatentStats
from opmerge_core.theory import planner, plans
from opmerge_core.theory.setting import Setting
from opmerge_core.theory.shared_plan import shared_plan

STRATEGY_KEYS = (*plans.STRATEGIES, "dp", "dp_shared")      # the methods with a trained student
METHODS = ("teacher", "exact", *STRATEGY_KEYS)
METHOD_LABELS = {"teacher": "teacher (T steps)", "exact": "exact flow map", "dp": "DP per direction",
                 "dp_shared": "DP shared plan", **plans.STRATEGY_LABELS}
MAX_SAMPLES = 32        # faces per row of the grid
MAX_GAIN = 100.0
STAGE_UNITS = 1000      # progress units per batched training run of train_strategies


@dataclass
class Comparison:
    """Theory for every method on a latent spectrum (all arrays over the d eigen-directions)."""

    setting: Setting
    lam: np.ndarray                          # (d,) eigenvalues
    values: dict[str, np.ndarray]            # method -> (d,) one-step operator
    w2: dict[str, dict[str, float]]          # method -> {"w2", "w2_low", "w2_high"}
    regimes: list[str]                       # per direction: boot | vanilla | hybrid | mixed
    plan_text: dict[str, str] = field(default_factory=dict)   # strategies and dp_shared (bracket text)
    dp_exact: bool = True                    # every per-direction DP plan proven optimal
    shared_exact: bool = True                # the shared Pareto DP was not pruned heuristically
    strategy_plans: dict[str, plans.Plan] = field(default_factory=dict)  # strategies and dp_shared
    dp_plans: list[plans.Plan] = field(default_factory=list)    # per direction
    trained: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (d,) trained operator
    trained_w2: dict[str, dict[str, float]] = field(default_factory=dict)

    def operators_only(self) -> Comparison:
        """This comparison without its plans: all that sampling and decoding need (cheap to send)."""
        return dataclasses.replace(self, plan_text={}, strategy_plans={}, dp_plans=[])

    @property
    def frac_below_1(self) -> float:
        return float((self.lam < 1.0).mean())

    def table(self) -> list[dict]:
        """Rows for a W2 table / CSV: method, label, w2, w2_low, w2_high."""
        return [{"method": m, "label": METHOD_LABELS[m], **self.w2[m]} for m in METHODS]


def w2_split(setting: Setting, value: np.ndarray, lam: np.ndarray) -> dict[str, float]:
    """W2 of a per-direction operator: total, over λ < 1 and over λ ≥ 1 (quadrature sums)."""
    per = setting.w2(value, lam)
    low = lam < 1.0
    return {"w2": float(np.sqrt(np.sum(per**2))), "w2_low": float(np.sqrt(np.sum(per[low] ** 2))),
            "w2_high": float(np.sqrt(np.sum(per[~low] ** 2)))}


def compare(setting: Setting, lam: np.ndarray, shared: bool = True) -> Comparison:
    """Evaluate teacher, exact, the five strategies, per-direction DP and the shared DP plan."""
    lam = check_lam(lam, name="eigenvalues")
    values = {"teacher": setting.P(lam), "exact": setting.exact(lam)}
    named = plans.named_plans(setting.T, setting.uniform_K)
    for name, plan in named.items():
        values[name] = plan.evaluate(setting, lam)
    best = planner.optimal(setting, lam)
    values["dp"] = np.array([b.value for b in best])
    regimes = [b.regime for b in best]
    shared_exact = True
    if shared:
        sp = shared_plan(setting, lam)
        values["dp_shared"], named["dp_shared"], shared_exact = sp.values, sp.plan, sp.exact
    else:
        values["dp_shared"] = np.full_like(lam, np.nan)
    w2 = {m: w2_split(setting, values[m], lam) for m in METHODS}
    return Comparison(setting, lam, values, w2, regimes, {k: p.text for k, p in named.items()},
                      all(b.exact for b in best), shared_exact, named, [b.plan for b in best])


def train_strategies(comparison: Comparison, steps: int = 200, seed: int = 0, device: str = "auto",
                     progress: Progress | None = None, cancel: CancelFlag | None = None) -> Comparison:
    """Train every strategy with ``opmerge_core.training.trainer`` (THEORY §2, §6) on the latent spectrum.

    The SGD budget matches the setting: lr = S / (2 steps), so S_eff = 2 · lr · steps = S. The five
    strategies and the shared plan train in one batched run over all directions; for the per-direction
    DP each direction takes the trained value of its own plan: plans equal to a strategy / the shared
    plan reuse that run (coordinates train independently); the remaining (hybrid / mixed) plans train
    together in one more batched run over just the directions that want one of them (each direction
    then reads its own plan's value). Fills ``comparison.trained`` and ``trained_w2``.
    ``progress(done, total, info)`` runs over both batched runs (``info["stage"]``: 0 or 1);
    ``Cancelled`` if ``cancel`` is set.
    """
    from opmerge_core.training import config, trainer

    setting, lam = comparison.setting, comparison.lam
    if setting.S <= 0:
        raise ValueError("training needs a shrinkage budget S > 0 (lr = S / (2 steps))")
    steps = check_int(steps, "steps", hi=config.STEPS_MAX)
    cfg = config.TrainConfig(steps=steps, lr=setting.S / (2.0 * steps), seed=seed, device=device)
    by_text = {p.text: name for name, p in comparison.strategy_plans.items()}
    extra: dict[str, list[int]] = {}
    for i, p in enumerate(comparison.dp_plans):
        if p.text not in by_text:
            extra.setdefault(p.text, []).append(i)
    n_stages = 1 + bool(extra)

    def stage(k: int) -> Progress | None:
        """Progress of batched run k as a share of all stages (STAGE_UNITS each)."""
        if progress is None:
            return None
        return lambda done, total, info: progress(k * STAGE_UNITS + STAGE_UNITS * done // max(total, 1),
                                                  n_stages * STAGE_UNITS, {**info, "stage": k})

    run = trainer.train(setting, lam, comparison.strategy_plans, cfg, progress=stage(0), cancel=cancel)
    trained = {name: np.asarray(r.empirical, dtype=np.float64) for name, r in run.plans.items()}
    dp = np.full(lam.size, np.nan)
    for i, p in enumerate(comparison.dp_plans):
        if p.text in by_text:
            dp[i] = trained[by_text[p.text]][i]
    if extra:
        union = np.array(sorted(i for idx in extra.values() for i in idx))
        where = {int(i): j for j, i in enumerate(union)}          # direction -> column in this run
        extra_plans = {f"dp{k}": comparison.dp_plans[idx[0]] for k, idx in enumerate(extra.values())}
        r = trainer.train(setting, lam[union], extra_plans, cfg, progress=stage(1), cancel=cancel)
        for k, idx in enumerate(extra.values()):
            dp[idx] = r.plans[f"dp{k}"].empirical[[where[i] for i in idx]]
    trained["dp"] = dp
    comparison.trained = trained
    comparison.trained_w2 = {m: w2_split(setting, v, lam) for m, v in trained.items()}
    return comparison


def train_job(comparison: Comparison, steps: int = 200, *, progress: Progress | None = None,
              cancel: CancelFlag | None = None) -> dict:
    """The job function of a CelebA trainer run (the dashboard's CelebA page): ``train_strategies``,
    returning the trained W2 per method, the trained operators and the theory W2 (plain data)."""
    trained = train_strategies(comparison, steps, progress=progress, cancel=cancel)
    return {"w2": trained.trained_w2, "theory": trained.w2,
            "operators": {m: v.tolist() for m, v in trained.trained.items()}}


TRAINED = " trained"     # suffix of a trained operator's key in samples and faces ("vanilla trained")


def sample_latents(stats: LatentStats, comparison: Comparison, n_samples: int = 8,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Method -> latents (n_samples, d): y_T = r_T ε (fixed seed), y_0 = value y_T, z = U y_0 + μ.
    Trained operators (``comparison.trained``) are sampled from the same y_T, as ``method + TRAINED``."""
    n_samples = check_int(n_samples, "samples", hi=MAX_SAMPLES)
    lam = comparison.lam
    if lam.shape != stats.eigvals.shape:
        raise ValueError(f"comparison has {lam.size} directions, statistics have {stats.d}")
    eps = np.random.default_rng(seed).standard_normal((n_samples, stats.d))
    y_T = eps * comparison.setting.r_T(lam)
    operators = {m: comparison.values[m] for m in METHODS}
    operators.update({m + TRAINED: comparison.trained[m] for m in METHODS if m in comparison.trained})
    return {m: stats.from_eigen(y_T * v) for m, v in operators.items() if np.isfinite(v).all()}


def decode_faces(model, latents: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Method -> uint8 faces (n, 64, 64, 3) decoded by the VAE."""
    from opmerge_core.latent.latents import decode

    names = list(latents)
    faces = decode(model, np.concatenate([latents[m] for m in names]))
    n = len(latents[names[0]])
    return {m: faces[i * n:(i + 1) * n] for i, m in enumerate(names)}


def difference(face: np.ndarray, teacher: np.ndarray, gain: float = 5.0) -> np.ndarray:
    """128 + gain · (face − teacher), clipped to uint8: mid-grey where they agree."""
    diff = 128.0 + gain * (face.astype(np.float64) - teacher.astype(np.float64))
    return np.clip(np.round(diff), 0, 255).astype(np.uint8)


def row_keys(faces: dict) -> list[str]:
    """The grid's row order: every method, its trained operator (if any) right below it."""
    return [k for m in METHODS for k in (m, m + TRAINED) if k in faces]


def row_label(key: str) -> str:
    method = key.removesuffix(TRAINED)
    return METHOD_LABELS[method] + (" (trained)" if key != method else "")


def face_grid(faces: dict[str, np.ndarray], gain: float = 5.0, label_width: int = 210) -> Image.Image:
    """One row per method (each trained operator below its theory row), then one
    difference-from-teacher row (×gain) per non-teacher row."""
    gain = check_positive(gain, "gain", hi=MAX_GAIN)
    keys = row_keys(faces)
    rows: list[tuple[str, np.ndarray]] = [(row_label(k), faces[k]) for k in keys]
    rows += [(f"{row_label(k)} - teacher x{gain:g}", difference(faces[k], faces["teacher"], gain))
             for k in keys if k != "teacher"]
    return labelled_grid(rows, label_width)


def face_grid_png(stamp: tuple[str, int, int], comparison: Comparison, n_samples: int, seed: int,
                  gain: float, columns: tuple[int, ...] | None, scale: int,
                  trained: dict[str, list[float]] | None = None) -> bytes:
    """The face grid of ``comparison`` as PNG bytes, decoded with the assets of ``stamp``
    (``latents.assets_stamp``): a pure result for the compute backend. ``trained`` (method → trained
    operator per direction) adds each strategy's trained row; ``columns`` keeps only those z_T;
    ``scale`` enlarges the tiles (nearest neighbour)."""
    from opmerge_core.latent.latents import cached_assets

    model, stats = cached_assets(stamp)
    if trained:
        comparison = dataclasses.replace(
            comparison, trained={m: np.asarray(v, dtype=np.float64) for m, v in trained.items()})
    faces = decode_faces(model, sample_latents(stats, comparison, n_samples, seed))
    if columns:                                  # the same z_T columns in every row
        faces = {m: f[list(columns)] for m, f in faces.items()}
    return png_bytes(enlarge(face_grid(faces, gain), scale))


def run(setting: Setting, model, stats: LatentStats, n_samples: int = 8, seed: int = 0,
        gain: float = 5.0, comparison: Comparison | None = None
        ) -> tuple[Comparison, dict[str, np.ndarray], Image.Image]:
    """Theory (or the given, possibly trained, ``comparison``), decoded faces and the grid."""
    comparison = comparison if comparison is not None else compare(setting, stats.eigvals)
    faces = decode_faces(model, sample_latents(stats, comparison, n_samples, seed))
    return comparison, faces, face_grid(faces, gain)
