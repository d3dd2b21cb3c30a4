"""The "Theory vs practice" figures and what the page says to notice beside them
(opmerge_core/figures/practice.py), read against the shipped reference runs' own numbers."""

from __future__ import annotations

import numpy as np
import pytest

from opmerge_core.figures import practice as fig
from opmerge_core.practice import reference


@pytest.fixture(scope="module")
def shipped() -> reference.Reference:
    ref = reference.load()
    assert ref is not None, "assets/reference_practice.json is missing"
    return ref


def test_mean_sd_shows_two_digits_of_the_spread_and_log_ticks_read_as_numbers():
    assert fig.pm(3.7931, 0.0132) == "3.793 ± 0.013"
    assert fig.pm(0.080312, 0.000402) == "0.08031 ± 0.00040"
    assert fig.pm(1.0, 0.0) == "1.0000 ± 0.0000"
    assert fig.log_ticks(0.066, 15) == [0.1, 0.2, 0.5, 1, 2, 5, 10]
    assert fig.log_ticks(0.77, 4.9) == [0.8, 0.9, 1, 2, 3, 4]          # few 1-2-5 ticks: every digit


def test_the_gaussian_calibration_reads_as_such(shipped):
    run = shipped.run_for("gaussian", "linear")
    ag = run["agreement"]
    text = fig.notice_boot_vanilla(run)
    assert f"{ag['agree']} of {ag['resolved']} resolved" in text and "no point is on the wrong side" in text
    switch = fig.theory_switch(run)
    curves = {k: np.array(v) for k, v in run["curves"].items()}
    lam, gap = curves["lam"], curves["boot"] - curves["vanilla"]
    assert np.all(gap[lam < switch / 1.05] < 0) and np.all(gap[lam > switch * 1.05] > 0)
    assert "median 1.000" in fig.notice_gains(run)                  # the Gaussian teacher's map is P
    ratios = fig.notice_w2(run)
    for plan, m in run["metrics"].items():                          # measured ÷ theory, plan by plan
        assert f"{fig.plan_label(run, plan)} {m['w2_total'] / m['w2_total_theory']:.2f}" in ratios


def test_the_latent_run_names_where_the_theory_fails(shipped):
    run = shipped.run_for("latent-mlp", "linear")
    ag = run["agreement"]
    wrong = [i for i, (p, m) in enumerate(zip(ag["predicted"], ag["measured"], strict=True))
             if m != "unresolved" and p != m]
    text = fig.notice_boot_vanilla(run)
    assert wrong and f"× marks the {len(wrong)} where the other plan won" in text
    best = min(run["metrics"], key=lambda p: run["metrics"][p]["w2_total"])
    assert fig.plan_label(run, best) in fig.notice_compute(run)
    assert "exact samples" in fig.notice_faces(run, 5.0)


def test_the_quality_vs_compute_table_ends_with_the_teacher_and_the_floor(shipped):
    for run in shipped.runs:
        table = fig.compute_table(run)
        assert len(table) == len(run["metrics"]) + 2
        assert table["plan"].iloc[-1] == "exact samples (the floor)"
        floor = run["teacher"]["floor"]
        assert table["FD"].iloc[-1] == fig.pm(floor["fd"], floor["fd_sd"])
        assert not table.isna().any().any()
        for figure in (fig.w2_vs_lambda(run), fig.quality_vs_compute(run), fig.gains(run)):
            assert figure.data
    mixture = shipped.run_for("mixture-2d", "linear")
    assert "share of samples near a mode" in fig.notice_densities(mixture)
    assert "cannot split the modes" in fig.notice_densities(mixture)
