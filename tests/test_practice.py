"""Theory meets practice (opmerge_core/practice, THEORY §8): calibration against the closed form, the
agreement on a synthetic case with a known answer, reproducibility, nonlinear teachers end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opmerge_core.practice import judge, students
from opmerge_core.practice.experiment import per_direction_rows, plan_set, public, run
from opmerge_core.practice.spec import PracticeSpec
from opmerge_core.practice.teachers import DDIM, load
from opmerge_core.theory import plans
from opmerge_core.theory.setting import Setting

SMALL = dict(T=4, steps=60, batch=64, n_eval=512)


# ---- calibration: Gaussian teacher + linear students = the closed form (THEORY §2, §6) ------------
@pytest.fixture(scope="module")
def calibration() -> dict:
    """Enough SGD steps that the O(1/n) gap between SGD and gradient flow (S = 2ηn) is below the
    Monte-Carlo error of 6 seeds."""
    spec = PracticeSpec(teacher="gaussian", T=6, lam="0.2:5:6:log", plans=("vanilla", "boot", "progressive"),
                        seeds=tuple(range(6)), steps=2000, batch=64, n_eval=1024)
    return run(spec)


def z_scores(result: dict, setting: Setting | None = None) -> np.ndarray:
    """(measured − closed form) / standard error, per plan and direction."""
    lam, n = np.array(result["teacher"]["lam"]), len(result["spec"]["seeds"])
    out = []
    for name, w in result["w2"].items():
        theory = np.array(w["theory"]) if setting is None else \
            setting.w2(plans.strategy(name, setting.T).evaluate(setting, lam), lam)
        out.append((np.array(w["mean"]) - theory) / (np.array(w["sd"]) / np.sqrt(n)))
    return np.concatenate(out)


@pytest.mark.slow
def test_linear_students_on_the_gaussian_teacher_match_the_closed_form(calibration):
    z = z_scores(calibration)
    assert np.abs(z).max() < 6 and np.mean(z**2) < 4, z          # t with 5 df: E[z²] = 5/3
    # the check has power: the closed form at a 10% different budget is rejected by far
    wrong = z_scores(calibration, Setting(6, S=1.1))
    assert np.abs(wrong).max() > 20
    # per merge the learned fraction is the closed form's 1 − exp(−S E[u²])
    for row in calibration["merges"]:
        assert row["rho_measured"] == pytest.approx(row["rho_theory"], abs=0.01)
    # the teacher's T-step map is the composite P (THEORY §1, eq. 8)
    np.testing.assert_allclose(calibration["teacher"]["gain"], calibration["teacher"]["P"], rtol=1e-4)


def test_the_ddim_teacher_is_the_theory_s_operator_on_gaussian_data():
    teacher = load("gaussian", lam="0.3,1,4")
    setting = Setting(8)
    ddim = DDIM(teacher, setting.alpha, setting.sigma, torch.device("cpu"))
    u = torch.randn(4096, 3, generator=torch.Generator().manual_seed(0))
    for t in range(1, 9):
        gain = students.ls_slope(u, ddim.step(u, t)).double().numpy()
        np.testing.assert_allclose(gain, setting.A_star(teacher.lam)[t - 1], rtol=1e-5)


# ---- the agreement: a synthetic case with a known answer --------------------------------------
def test_agreement_on_a_synthetic_case_with_a_known_answer():
    """Directions 0–9: BOOT measurably better, as the theory says; 10–14: vanilla better although the
    theory says BOOT; 15–19: the theory predicts no difference (ties, never counted); 20–24: no real
    difference (zero-mean noise over the seeds, never significant). Known answer: 10 of 15."""
    rng = np.random.default_rng(0)
    seeds, d = 5, 25
    w2_vanilla = 1.0 + rng.random(d) + 1e-3 * rng.standard_normal((seeds, d))
    w2_boot = w2_vanilla.copy()
    w2_boot[:, :10] -= 0.1
    w2_boot[:, 10:15] += 0.1
    w2_boot[:, 15:20] += 0.2 * rng.standard_normal((seeds, 5))
    w2_boot[:, 20:] += np.array([0.05, -0.05, 0.03, -0.03, 0.0])[:, None]     # mean exactly 0
    theory_vanilla = np.ones(d)
    theory_boot = np.where((np.arange(d) >= 15) & (np.arange(d) < 20), 1.0, 0.5)
    ag = judge.agreement(w2_boot, w2_vanilla, theory_boot, theory_vanilla)
    assert (ag.resolved, ag.agree, ag.ties) == (15, 10, 5) and ag.value == pytest.approx(10 / 15)
    assert ag.measured[:10] == ["boot"] * 10 and ag.measured[10:15] == ["vanilla"] * 5
    assert ag.measured[20:] == ["unresolved"] * 5 and ag.predicted[15:20] == ["tie"] * 5
    assert ag.ci[0] <= 10 / 15 <= ag.ci[1] and ag.ci[1] - ag.ci[0] < 0.25
    # without the noisy directions every bootstrap replicate resolves the same 15: the interval is a point
    exact = judge.agreement(w2_boot[:, :20], w2_vanilla[:, :20], theory_boot[:20], theory_vanilla[:20])
    assert exact.ci == pytest.approx((10 / 15, 10 / 15))
    parts = judge.verdict_parts(ag, np.linspace(0.5, 3, d), "test teacher", "linear", seeds,
                                {"boot": 1.0, "vanilla": 0.9}, {"boot": 0.8, "vanilla": 1.0})
    assert "10 of the 15 directions" in parts[0] and "95% CI" in parts[0] and "5 seeds" in parts[0]
    assert parts[1].startswith("It fails in 5 directions") and "expects BOOT" in parts[1]
    assert parts[-1].endswith("ranks boot < vanilla; measured: vanilla < boot — BOOT and vanilla in the "
                              "opposite order.")
    # two directions: a count, not a rate; fewer seeds than asked for are said
    two = judge.agreement(w2_boot[:2, :2], w2_vanilla[:2, :2], theory_boot[:2], theory_vanilla[:2])
    head = judge.verdict_parts(two, np.ones(2), "t", "linear", 2, {}, {})[0]
    assert "2 of the 2 directions" in head and "count, not a rate" in head and "fewer than the 3" in head
    assert "%" not in head


def test_agreement_ties_single_seed_and_a_noisy_interval():
    ag = judge.agreement(np.ones((3, 2)) + [[0.0, 0.1]] * 3, np.ones((3, 2)), np.ones(2), np.ones(2))
    assert ag.ties == 2 and ag.resolved == 0 and ag.value is None          # theory: no difference
    one = judge.agreement(np.zeros((1, 3)), np.ones((1, 3)), np.zeros(3), np.ones(3))
    assert one.value is None and "2 seeds" in one.note
    rng = np.random.default_rng(1)
    diff = 0.01 + 0.01 * rng.standard_normal((3, 40))          # borderline: replicates disagree
    ag = judge.agreement(1 + diff, np.ones((3, 40)), np.full(40, 1.1), np.ones(40))
    assert ag.ci[0] <= ag.value <= ag.ci[1]


def test_w2_per_direction_is_the_sorted_coupling():
    a = torch.tensor([[0.0, 1.0], [2.0, 3.0], [1.0, 2.0]])
    b = torch.tensor([[2.0, 1.0], [1.0, 3.0], [0.0, 5.0]])
    np.testing.assert_allclose(judge.w2_per_direction(a, b), [0.0, np.sqrt(5 / 3)])   # [1,2,3] vs [1,3,5]
    with pytest.raises(ValueError, match="one shape"):
        judge.w2_per_direction(a, b[:2])


# ---- reproducibility ---------------------------------------------------------------------------
def test_same_seed_same_numbers_and_independent_of_what_trains_alongside():
    spec = PracticeSpec(teacher="mixture-2d", plans=("vanilla", "boot"), seeds=(0, 1), **SMALL)
    a, b = run(spec), run(spec)
    for name in spec.plans:
        assert a["w2"][name]["seeds"] == b["w2"][name]["seeds"]
        assert a["gains"][name]["mean"] == b["gains"][name]["mean"]
    # seed 1 and BOOT trained alone give the same numbers (the reference test relies on it)
    alone = run(PracticeSpec(teacher="mixture-2d", plans=("boot",), seeds=(1,), **SMALL))
    np.testing.assert_allclose(alone["w2"]["boot"]["seeds"][0], a["w2"]["boot"]["seeds"][1], rtol=1e-5)
    other = run(PracticeSpec(teacher="mixture-2d", plans=("boot",), seeds=(2,), **SMALL))
    assert other["w2"]["boot"]["seeds"][0] != a["w2"]["boot"]["seeds"][1]


# ---- nonlinear teachers end to end -------------------------------------------------------------
@pytest.mark.parametrize("student", ["linear", "mlp"])
def test_the_mixture_teacher_end_to_end(student):
    spec = PracticeSpec(teacher="mixture-2d", student=student, **SMALL)
    r = run(spec)
    assert r["teacher"]["d"] == 2 and min(r["teacher"]["lam"]) < 1 < max(r["teacher"]["lam"])
    for name in spec.plans:
        m = r["metrics"][name]
        assert {"w2_total", "w2_total_sd", "fd", "fd_sd", "sliced_w2", "near_modes", "teacher_steps",
                "seconds", "students"} <= set(m)
        assert np.all(np.isfinite(r["w2"][name]["mean"]))
    assert r["agreement"]["directions"] == 2 and r["verdict"].startswith("On the 2-D mixture")
    assert r["samples"]["teacher"].shape == (spec.n_eval, 2) and "data" in r["samples"]
    # every plan's teacher-step count: each of the T steps once per pool input
    pool = spec.pool_size
    assert r["metrics"]["vanilla"]["teacher_steps"] == spec.T * pool
    rows = per_direction_rows(r)
    assert len(rows) == 2 and {"boot_w2", "boot_w2_theory", "predicted"} <= set(rows[0])
    assert "samples" not in public(r)
    if student == "linear":               # the shrinkage law holds merge by merge on a nonlinear teacher
        for row in r["merges"]:
            assert row["rho_measured"] == pytest.approx(row["rho_theory"], abs=0.02)


def test_dp_is_per_direction_for_linear_and_shared_for_mlp_students():
    teacher = load("gaussian", lam="0.2:6:12:log")
    linear = PracticeSpec(teacher="gaussian", T=8, plans=("dp",))
    setting = linear.setting()
    trained, directions = plan_set(linear, setting, teacher.lam)
    assert len(directions) == 12 and set(directions) == set(trained) and len(trained) >= 2
    assert trained[directions[0]] == plans.vanilla(8) and trained[directions[-1]] == plans.boot(8)
    mlp = PracticeSpec(teacher="gaussian", T=8, plans=("dp",), student="mlp")
    trained, directions = plan_set(mlp, setting, teacher.lam)
    assert list(trained) == ["dp"] and directions == []


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(teacher="nope"), "unknown teacher"), (dict(T=1), "T \\(teacher steps\\)"),
    (dict(plans=("boot", "x")), "unknown plan"), (dict(plans=()), "at least one plan"),
    (dict(seeds=tuple(range(11))), "1 to 10 seeds"), (dict(budget=0), "budget S"),
    (dict(pool=10, batch=64), "at least one batch"), (dict(student="cnn"), "unknown student"),
    (dict(lam="1:0.5:3"), "a < b"), (dict(preset="nope"), "mixture preset"), (dict(n_eval=10), "n_eval"),
])
def test_bad_specs_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PracticeSpec(**kwargs)


def test_a_budget_sgd_cannot_follow_is_refused():
    with pytest.raises(ValueError, match="would diverge"):
        run(PracticeSpec(teacher="gaussian", lam="0.5,40", budget=20, steps=5, T=4))


def test_a_set_cancel_flag_stops_the_run_and_sizes_are_bounded():
    import threading

    from opmerge_core.basics.progress import Cancelled

    flag = threading.Event()
    flag.set()
    with pytest.raises(Cancelled):
        run(PracticeSpec(teacher="gaussian", lam="0.5,2", **SMALL), cancel=flag)
    with pytest.raises(ValueError, match="pool × d"):
        run(PracticeSpec(teacher="gaussian", lam="0.1:10:256:log", pool=200_000, **SMALL))
