"""CelebA latent lab: theory per strategy on a latent spectrum, samples, face grid, CLI.

Uses an untrained tiny VAE and a synthetic spectrum straddling λ = 1 written to a tmp assets folder
(the shipped assets are not needed), so the checks are against closed forms (THEORY §1, §4).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from opmerge_core.cli import main as cli_main
from opmerge_core.latent import celeba, vae
from opmerge_core.latent import latents as lt
from opmerge_core.theory import plans
from opmerge_core.theory.setting import Setting

LAM = np.geomspace(0.05, 20.0, 12)


@pytest.fixture(scope="module")
def comparison() -> celeba.Comparison:
    return celeba.compare(Setting(16), LAM)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    torch.manual_seed(0)
    vae.save_fp16(vae.VAE(latent_dim=LAM.size, channels=(4, 8, 8, 16, 16)), folder / lt.VAE_FILE)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((LAM.size, LAM.size)))
    stats = lt.LatentStats(np.linspace(-1, 1, LAM.size), LAM[::-1].copy(), q, 100)
    lt.save_stats(stats, folder / lt.STATS_FILE)
    return folder


def test_theory_closed_forms(comparison):
    s, w2 = comparison.setting, comparison.w2
    assert w2["teacher"]["w2"] == 0.0                                   # surrogate = teacher composite P
    assert np.allclose(comparison.values["exact"], np.sqrt(LAM))        # trig: r_0/r_T = √λ / 1
    for name in plans.STRATEGIES:
        assert np.allclose(comparison.values[name], plans.strategy(name, 16).evaluate(s, LAM))
    for m in celeba.METHODS:                                            # quadrature split
        assert w2[m]["w2"] ** 2 == pytest.approx(w2[m]["w2_low"] ** 2 + w2[m]["w2_high"] ** 2)
    per_dp = s.w2(comparison.values["dp"], LAM)
    for name in plans.STRATEGIES:                                       # per-direction DP beats all
        assert np.all(per_dp <= s.w2(comparison.values[name], LAM) + 1e-12)
    named_best = min(w2[n]["w2"] for n in plans.STRATEGIES)
    assert w2["dp"]["w2"] - 1e-12 <= w2["dp_shared"]["w2"] <= named_best + 1e-12
    # the phase transition: BOOT for small λ, vanilla for large λ
    assert comparison.regimes[0] == "boot" and comparison.regimes[-1] == "vanilla"
    assert comparison.frac_below_1 == pytest.approx(np.mean(LAM < 1))


def test_samples_in_the_eigenbasis(comparison):
    stats = lt.LatentStats(np.arange(12.0), LAM, np.eye(12)[::-1].copy(), 10)
    z = celeba.sample_latents(stats, comparison, n_samples=5, seed=3)
    eps = np.random.default_rng(3).standard_normal((5, 12))
    assert np.allclose(stats.to_eigen(z["exact"]), eps * np.sqrt(LAM))
    assert np.allclose(stats.to_eigen(z["teacher"]), eps * comparison.setting.P(LAM))
    assert np.allclose(z["vanilla"] - stats.mean, (eps * comparison.values["vanilla"]) @ stats.eigvecs.T)
    with pytest.raises(ValueError, match="samples"):
        celeba.sample_latents(stats, comparison, n_samples=celeba.MAX_SAMPLES + 1)


def test_difference_and_grid_layout():
    a = np.full((2, 64, 64, 3), 100, np.uint8)
    assert np.all(celeba.difference(a, a) == 128)
    b = a + np.uint8(4)
    assert np.all(celeba.difference(b, a, gain=5) == 148) and np.all(celeba.difference(a, b, gain=100) == 0)
    faces = dict.fromkeys(celeba.METHODS, a)
    grid = celeba.face_grid(faces, gain=5, label_width=150)
    assert grid.size[0] >= 150 + 2 * 64 and grid.size[1] == (2 * len(celeba.METHODS) - 1) * 64
    margin = grid.size[0] - 2 * 64                        # at least 150, wider for a long label
    faces["vanilla" + celeba.TRAINED] = b                 # a trained row goes right below its theory row
    keys = celeba.row_keys(faces)
    assert keys[keys.index("vanilla") + 1] == "vanilla trained"
    assert celeba.row_label("vanilla trained") == celeba.METHOD_LABELS["vanilla"] + " (trained)"
    grid = np.asarray(celeba.face_grid(faces, gain=5, label_width=150))
    assert grid.shape[0] == (2 * len(celeba.METHODS) + 1) * 64
    row = 64 * (keys.index("vanilla trained"))
    assert (grid[row:row + 64, margin:] == 104).all()     # the trained faces, not the theory ones


def test_run_decodes_a_face_per_method(assets):
    model, stats = lt.load_assets(assets)
    comp, faces, grid = celeba.run(Setting(8), model, stats, n_samples=3)
    assert set(faces) == set(celeba.METHODS)
    assert all(f.shape == (3, 64, 64, 3) and f.dtype == np.uint8 for f in faces.values())
    assert comp.lam.size == 12 and grid.size[1] == 17 * 64


def test_face_grid_png_is_the_grid_decoded_in_process(assets):
    """The backend's PNG result (decoded with the assets of a stamp) is the grid decoded here."""
    import io

    from PIL import Image

    from opmerge_core.latent.images import enlarge
    model, stats = lt.load_assets(assets)
    comp = celeba.compare(Setting(8), stats.eigvals)
    trained = {"vanilla": list(0.9 * comp.values["vanilla"])}
    stamp = lt.assets_stamp(assets)
    png = celeba.face_grid_png(stamp, comp.operators_only(), 3, 1, 5.0, (0, 2), 2, trained)
    here = celeba.dataclasses.replace(comp, trained={"vanilla": np.asarray(trained["vanilla"])})
    faces = celeba.decode_faces(model, celeba.sample_latents(stats, here, 3, 1))
    expected = enlarge(celeba.face_grid({m: f[[0, 2]] for m, f in faces.items()}, 5.0), 2)
    got = Image.open(io.BytesIO(png))
    assert got.size == expected.size
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(expected.convert("RGB")))
    assert "vanilla" + celeba.TRAINED in faces                          # the trained row is there
    (assets / lt.VAE_FILE).touch()                                      # a regenerated asset: new key
    assert lt.assets_stamp(assets) != stamp


def test_cli_compare_json(assets, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("OPMERGE_ASSETS", str(assets))
    out = tmp_path / "grid.png"
    assert cli_main(["celeba", "compare", "--T", "8", "--out", str(out), "--json", "--samples", "2"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert set(obj) == {*celeba.STRATEGY_KEYS, "frac_below_1", "grid"} and obj["grid"] == str(out)
    assert obj["frac_below_1"] == pytest.approx(np.mean(LAM < 1))
    s = Setting(8)
    for name in plans.STRATEGIES:           # W2 = quadrature sum of r_T |plan value − P| per direction
        per = s.r_T(LAM) * np.abs(plans.strategy(name, 8).evaluate(s, LAM) - s.P(LAM))
        assert obj[name]["w2"] == pytest.approx(np.sqrt(np.sum(per**2)), rel=1e-9)
        assert obj[name]["w2_low"] == pytest.approx(np.sqrt(np.sum(per[LAM < 1] ** 2)), rel=1e-9)
        assert obj["dp"]["w2"] <= obj["dp_shared"]["w2"] + 1e-12 <= obj[name]["w2"] + 2e-12
    assert Image.open(out).size[1] == (2 * len(celeba.METHODS) - 1) * 64          # theory rows only
    assert cli_main(["celeba", "compare", "--T", "4", "--out", str(out), "--assets", str(assets), "--json",
                     "--train", "--train-steps", "100", "--samples", "1"]) == 0
    trained = json.loads(capsys.readouterr().out)
    for k in celeba.STRATEGY_KEYS:          # S_eff = S: the trained W2 lands near the theory W2
        assert trained[k]["w2_trained"] == trained[k]["trained"]["w2"]
        assert trained[k]["w2_trained"] == pytest.approx(trained[k]["w2"], rel=0.1, abs=1e-3), k
    n_rows = len(celeba.METHODS) + len(celeba.STRATEGY_KEYS)   # + one trained row per strategy
    assert Image.open(out).size[1] == (2 * n_rows - 1) * 64
    assert cli_main(["celeba", "compare", "--T", "8", "--out", str(out), "--assets", str(assets)]) == 0
    assert "DP per direction" in capsys.readouterr().out


def test_cli_compare_bad_input(assets, tmp_path, capsys):
    out = str(tmp_path / "g.png")
    assert cli_main(["celeba", "compare", "--out", out, "--assets", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "celeba_latent_stats.npz" in err and "opmerge vae train" in err
    assert err.endswith("\n") and err.count("\n") == 1                  # one line, no traceback
    assert cli_main(["celeba", "compare", "--out", out, "--assets", str(assets), "--train", "--S", "0"]) == 2
    assert "S > 0" in capsys.readouterr().err
    assert cli_main(["celeba", "compare", "--out", str(tmp_path / "g.jpg"), "--assets", str(assets)]) == 2
    assert cli_main(["celeba", "compare", "--out", out, "--assets", str(assets), "--T", "0"]) == 2
    assert cli_main(["celeba", "compare", "--out", out, "--assets", str(assets), "--schedule", "bad"]) == 2


def test_trainer_evaluation_matches_theory():
    lam = np.concatenate([LAM, np.linspace(1.1, 1.8, 5)])     # several distinct hybrid / mixed plans
    c = celeba.compare(Setting(8), lam)
    extra = {p.text for p, r in zip(c.dp_plans, c.regimes, strict=True) if r in ("hybrid", "mixed")}
    assert len(extra) >= 3                                   # exercises the batched extra-plan run
    celeba.train_strategies(c, steps=100, device="cpu")
    assert set(c.trained) == set(celeba.STRATEGY_KEYS)
    for m in celeba.STRATEGY_KEYS:                               # S_eff = 2 lr steps = S: same budget
        assert np.allclose(c.trained[m], c.values[m], rtol=0.03)
        assert c.trained_w2[m]["w2"] == pytest.approx(c.w2[m]["w2"], rel=0.05)
    with pytest.raises(ValueError, match="S > 0"):
        celeba.train_strategies(celeba.compare(Setting(4, S=0.0), LAM))


def test_trainer_evaluation_reports_one_progress_over_both_runs():
    lam = np.concatenate([LAM, np.linspace(1.1, 1.8, 5)])     # the strategies' run and the extra-plan run
    seen = []
    celeba.train_strategies(celeba.compare(Setting(8), lam), steps=20, device="cpu",
                            progress=lambda done, total, info: seen.append((done, total, info["stage"])))
    done = [d for d, _, _ in seen]
    assert {t for _, t, _ in seen} == {2 * celeba.STAGE_UNITS} and {s for *_, s in seen} == {0, 1}
    assert done == sorted(done) and done[-1] == 2 * celeba.STAGE_UNITS


def test_a_long_face_grid_label_widens_its_margin_instead_of_running_into_the_faces():
    from opmerge_core.latent.images import labelled_grid

    blue = np.zeros((3, 8, 8, 3), np.uint8)
    blue[..., 2] = 255
    label = "DP-optimal per direction - teacher x5"
    grid = np.asarray(labelled_grid([("teacher", blue), (label, blue)], label_width=40))
    margin = grid.shape[1] - 3 * 8
    assert margin > 40                                         # grown to fit the label
    assert (grid[:, margin:] == [0, 0, 255]).all()              # the faces: untouched by any text
    ink = np.nonzero((grid[8:, :margin] < 128).all(axis=-1))[1]
    assert ink.size and ink.max() < margin - 1                  # the label ends inside its margin
