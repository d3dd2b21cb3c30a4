"""THEORY §2/§6: real SGD training reproduces the closed form; the batched trainer's contract."""

import threading

import numpy as np
import pytest
import torch

from opmerge_core.basics.device import pick_device
from opmerge_core.basics.progress import Cancelled
from opmerge_core.theory import operators, plans
from opmerge_core.theory.setting import Setting
from opmerge_core.training import closed_form, trainer
from opmerge_core.training.config import TrainConfig

torch.set_num_threads(1)
# λ < 1, λ ≈ 1, between 1 and 2, > 2; many coordinates each so Monte-Carlo checks have power.
LAMS = np.repeat([0.3, 0.8, 1.5, 3.0], 48)
SMALL = TrainConfig(steps=100, lr=0.005, batch=64, seed=3)  # S_eff = 1, 2ηv ≤ 0.03


def _named(T):
    return {name: plans.strategy(name, T, 2) for name in ("vanilla", "boot", "temporal", "progressive")}


def test_sgd_moments_match_simulation():
    """The exact SGD mean/std used as the Monte-Carlo tolerance, checked by brute force."""
    rng = np.random.default_rng(0)
    A0, tgt, v, lr, n, B, runs = 1.0, 0.4, 2.0, 0.02, 50, 16, 20000
    A = np.full(runs, A0)
    for _ in range(n):
        m = v * rng.chisquare(B, size=runs) / B
        A = A - lr * 2.0 * m * (A - tgt)
    mean, std = closed_form.sgd_moments(np.array([A0]), np.array([tgt]), np.array([v]), lr, n, B)
    assert abs(A.mean() - mean[0]) < 5 * std[0] / np.sqrt(runs)
    assert abs(A.std() / std[0] - 1) < 0.05


@pytest.mark.parametrize("inputs", ["forward", "boot"])
@pytest.mark.parametrize("T", [4, 6])
def test_sgd_matches_closed_form_within_monte_carlo(inputs, T):
    """Every merge: learned ≈ (1 − γ) A_tgt + γ A(0), tolerance from batch size and steps."""
    config = TrainConfig(**{**SMALL.as_dict(), "inputs": inputs})
    result = trainer.train(Setting(T=T), LAMS, _named(T), config)
    zs, worst = [], 0.0
    for rec in result.records.values():
        assert np.all(rec.mc_std > 0)
        z = (rec.learned - rec.closed_form_sgd) / rec.mc_std     # exact SGD expectation
        zs.append(z)
        # Continuous closed form at S_eff = 2ηn: MC error plus the (exact, small) discretisation gap.
        gap = np.abs(rec.closed_form_sgd - rec.closed_form)
        assert np.all(gap <= 0.05 * np.abs(rec.target - rec.A0) + 1e-12)
        assert np.all(np.abs(rec.learned - rec.closed_form) <= 6 * rec.mc_std + gap + 1e-6)
        worst = max(worst, float(np.max(np.abs(z))))
    zs = np.concatenate(zs)
    assert worst < 6
    assert abs(zs.mean()) < 4 / np.sqrt(zs.size)        # unbiased
    assert 0.7 < zs.std() < 1.3                           # the predicted spread, not a loose bound


def test_sgd_fails_the_check_with_a_wrong_budget():
    """The test above has power: with S = ηn (κ = 1) the learned operators are far outside it."""
    result = trainer.train(Setting(T=4), LAMS, plans.boot(4), SMALL)
    rec = result.records[max(result.records)]
    from opmerge_core.theory.shrinkage import rho, trained
    wrong = trained(rec.target, rec.A0, rho(SMALL.S_eff / 2, rec.input_var))
    assert np.median(np.abs(rec.learned - wrong) / rec.mc_std) > 20


@pytest.mark.parametrize("init", ["teacher", "zero", "coarse", "identity"])
def test_theory_chain_is_the_core_evaluator(init):
    """Forward inputs: the recorded theory chain equals plans.evaluate_spans at S = S_eff."""
    setting = Setting(T=5, init=init)
    result = trainer.train(setting, LAMS[::12], _named(5), SMALL)
    ref_setting = Setting(T=5, S=SMALL.S_eff, init=init)
    for name, p in result.plans.items():
        ref = plans.evaluate_spans(p.plan, ref_setting, result.lam)
        for rec in result.merges(name):
            np.testing.assert_allclose(rec.theory, ref[rec.span], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(p.theory, p.plan.evaluate(ref_setting, result.lam), atol=1e-12)
        np.testing.assert_allclose(p.empirical, p.theory, atol=0.02)   # practice ≈ theory


@pytest.mark.parametrize("init", ["teacher", "zero", "coarse", "identity"])
def test_init_choices(init):
    setting = Setting(T=4, init=init)
    lam = np.array([0.5, 2.0])
    result = trainer.train(setting, lam, _named(4), TrainConfig(steps=5, lr=0.01, batch=8))
    A = setting.A_star(lam)
    for name in result.plans:
        for rec in result.merges(name):
            e, s = rec.span
            first = result.plans[name].plan.children(rec.span)[0]
            expected = {
                "teacher": A[s - 1] if first == (s - 1, s)
                else result.records[result.plans[name].nodes[first]].learned,
                "zero": np.zeros(2), "identity": np.ones(2),
                "coarse": operators.coarse_jump(setting.alpha, setting.sigma, lam, s, e)}[init]
            np.testing.assert_allclose(rec.A0, expected, rtol=1e-6, atol=1e-7)


def test_boot_inputs_use_the_current_model():
    """boot inputs: z_T pushed through earlier students; BOOT itself is unchanged (s = T)."""
    lam = np.array([0.5, 3.0])
    fwd = trainer.train(Setting(T=5), lam, _named(5), SMALL)
    boot = trainer.train(Setting(T=5), lam, _named(5), TrainConfig(**{**SMALL.as_dict(),
                                                                      "inputs": "boot"}))
    np.testing.assert_array_equal(fwd.plans["boot"].empirical, boot.plans["boot"].empirical)
    r2 = Setting(T=5).r2(lam)
    rec = {r.span: r for r in boot.merges("temporal")}[(0, 3)]      # pushed through steps 5, 4
    np.testing.assert_allclose(rec.input_var, r2[5] * np.prod(Setting(T=5).A_star(lam)[3:5], 0) ** 2,
                               rtol=1e-5)


@pytest.mark.parametrize("student", ["linear", "mlp"])
@pytest.mark.parametrize("inputs", ["forward", "boot"])
def test_batched_equals_one_by_one(student, inputs):
    named = _named(6)
    config = TrainConfig(steps=20, lr=0.01, batch=32, seed=7, student=student, hidden=4,
                         inputs=inputs)
    together = trainer.train(Setting(T=6), LAMS[::8], named, config)
    for name, alone in trainer.train_one_by_one(Setting(T=6), LAMS[::8], named, config).items():
        np.testing.assert_allclose(together.plans[name].empirical, alone.plans[name].empirical,
                                   rtol=1e-5, atol=1e-6)
        for a, b in zip(together.merges(name), alone.merges(name)):
            assert a.span == b.span
            np.testing.assert_allclose(a.loss, b.loss, rtol=1e-4, atol=1e-7)


def test_adam_runs_and_breaks_the_closed_form():
    result = trainer.train(Setting(T=4), LAMS, _named(4), TrainConfig(**{**SMALL.as_dict(),
                                                                        "optimizer": "adam"}))
    dev = []
    for rec in result.records.values():
        assert np.all(np.isfinite(rec.learned)) and np.all(np.isfinite(rec.loss))
        assert np.all(np.isnan(rec.mc_std))          # no SGD prediction for Adam
        dev.append(np.abs(rec.learned - rec.closed_form))
    assert np.mean(np.concatenate(dev)) > 0.01       # Adam's budget is not S_eff = 2ηn


def test_mlp_student_breaks_the_closed_form():
    """Same budget, same data: the MLP's least-squares slope leaves the closed form far behind the
    linear student's Monte-Carlo error (THEORY §6: show by how much)."""
    dev = {}
    for student in ("linear", "mlp"):
        config = TrainConfig(steps=60, lr=0.01, batch=64, student=student, hidden=8)
        result = trainer.train(Setting(T=4), np.array([0.3, 3.0]), _named(4), config)
        for rec in result.records.values():
            assert np.all(np.isfinite(rec.learned)) and np.all(np.isfinite(rec.closed_form))
            assert rec.loss[-1] < rec.loss[0]
        dev[student] = np.mean([np.abs(r.learned - r.closed_form) for r in result.records.values()])
        if student == "mlp":
            assert np.all(np.isnan(next(iter(result.records.values())).mc_std))
    assert dev["mlp"] > 10 * dev["linear"]
    with pytest.raises(ValueError, match="MLP students"):
        trainer.train(Setting(T=64), np.ones(1024), plans.boot(64),
                      TrainConfig(student="mlp", hidden=256, batch=8))


def test_progress_and_cancel():
    calls = []
    cancel = threading.Event()

    def progress(done, total, info):
        calls.append((done, total))
        if len(calls) == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        trainer.train(Setting(T=8), LAMS[:4], plans.boot(8), TrainConfig(steps=100, batch=8),
                      progress=progress, cancel=cancel)
    assert len(calls) == 3 and calls[0][1] == 7 * 100
    calls.clear()
    trainer.train(Setting(T=4), LAMS[:4], _named(4), TrainConfig(steps=10, batch=8),
                  progress=lambda d, t, i: calls.append((d, t)))
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and calls[-1][0] == calls[-1][1]


def test_divergence_is_a_clear_failure():
    with pytest.raises(trainer.TrainingFailed, match=r"loss became (inf|nan).*lr must be <"):
        trainer.train(Setting(T=4), np.array([1e4]), plans.temporal(4),  # r_s² ≈ 1e4 at s < T
                      TrainConfig(steps=200, lr=1.0, batch=8))


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"steps": -3}, "steps must be a positive integer"),
    ({"steps": 100_001}, "steps must be an integer in"),
    ({"lr": 0}, "lr must be > 0"),
    ({"lr": -0.1}, "lr must be > 0"),
    ({"batch": 0}, "batch must be a positive integer"),
    ({"batch": 65_537}, "batch must be an integer in"),
    ({"optimizer": "rmsprop"}, "unknown optimizer"),
    ({"device": "tpu"}, "unknown device"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_bounds_and_device():
    with pytest.raises(ValueError, match="T must be an integer in"):
        trainer.train(Setting(T=1025), [1.0], plans.boot(1025), TrainConfig(steps=1))
    with pytest.raises(ValueError, match="exceeds"):
        trainer.train(Setting(T=2), np.ones(4096), plans.boot(2), TrainConfig(batch=8192))
    with pytest.raises(ValueError, match="plan 'boot' is for T = 3"):
        trainer.train(Setting(T=4), [1.0], {"boot": plans.boot(3)})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"


def test_reference_table_and_theory_function():
    """THEORY §5 reference values (T = 8, λ = 0.5, S = 1) from the trainer's theory chain."""
    named = {"boot": plans.boot(8), "vanilla": plans.vanilla(8)}
    config = TrainConfig(steps=100, lr=0.005, batch=256)             # S_eff = 1
    result = trainer.train(Setting(T=8), [0.5], named, config)
    assert result.plans["boot"].theory[0] == pytest.approx(0.721739, abs=1e-6)
    assert result.plans["vanilla"].theory[0] == pytest.approx(0.739863, abs=1e-6)
    for p in result.plans.values():
        assert abs(p.empirical[0] - p.theory[0]) < 0.01
    boot_inputs = trainer.train(Setting(T=5), LAMS[::24], _named(5),
                                TrainConfig(steps=10, lr=0.01, batch=8, inputs="boot"))
    th = closed_form.theory(Setting(T=5), LAMS[::24], _named(5), 0.2, inputs="boot")
    for name, value in th.items():
        np.testing.assert_allclose(value, boot_inputs.plans[name].theory, rtol=1e-12)


def test_budget_sweep_follows_the_closed_form():
    from opmerge_core.training import train_spec
    spec = train_spec.TrainSpec(T=6, lam=[0.5, 3.0], strategies=["boot", "vanilla"], lr=0.005,
                                batch=128, steps=10)
    rows = train_spec.budget_sweep(spec, [20, 100, 300])
    assert [r["S_eff"] for r in rows[::4]] == pytest.approx([0.2, 1.0, 3.0])
    for r in rows:
        assert abs(r["empirical"] - r["theory"]) < 0.02
    curve = train_spec.theory_curve(spec, np.array([0.2, 1.0]))
    by = {(r["S"], r["strategy"], r["lam"]): r["theory"] for r in curve}
    for r in rows[:4]:
        assert by[(0.2, r["strategy"], r["lam"])] == pytest.approx(r["theory"], rel=1e-12)
