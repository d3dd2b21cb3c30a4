"""SFD (SFD.md): teachers, Algorithm 2 vs Algorithm 1, SFD-v, latent FD, bad input. Tiny 2-D problems."""

import copy
import threading

import numpy as np
import pytest
import torch

from opmerge_core.basics.progress import Cancelled
from opmerge_core.sfd import distill, metrics, networks, sampling, solvers, teachers
from opmerge_core.sfd import mixtures as MX

torch.set_num_threads(1)


SFDV_BUDGET = 2048


@pytest.fixture(scope="module")
def blobs():
    return teachers.load_teacher("mixture-2d", preset="two-blobs")


def test_gmm_teacher_is_the_exact_mixture_denoiser(blobs):
    x = torch.tensor(blobs.mixture.sample(64, 0, t=1.3), dtype=torch.float32)
    for t in (0.01, 1.3, 80.0):
        want = blobs.mixture.denoise(x.double().numpy(), t)
        np.testing.assert_allclose(blobs.model(x, t).detach().numpy(), want, atol=2e-4)
        student = copy.deepcopy(blobs.model)   # a fresh student with the step embedding equals its teacher
        torch.testing.assert_close(student(x, t, 5), blobs.model(x, t))


def test_frechet_distance_closed_forms():
    mu, cov = np.array([1.0, -2.0]), np.array([[2.0, 0.3], [0.3, 0.5]])
    assert metrics.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-10)
    # 1-D: (μ1 − μ2)² + (σ1 − σ2)²; commuting covariances: Σ (√a − √b)²
    assert metrics.frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([1.0]),
                                np.array([[1.0]])) == pytest.approx(1 + 1)
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    assert metrics.frechet_distance(np.zeros(3), a, np.zeros(3), b) == pytest.approx(1 + 0 + 4)
    assert "not image FID" in metrics.FD_LABEL


def test_teacher_states_land_on_the_student_grid(blobs):
    x = sampling.noise(8, 2, seed=1)
    states = distill.teacher_states(networks.conditioned(blobs.model, None), x, 4, 3, "dpmpp3m")
    _, full = solvers.solve(networks.conditioned(blobs.model, None), x, solvers.teacher_grid(4, 3),
                            "dpmpp3m", return_trajectory=True)
    assert states.shape == (4, 8, 2)
    torch.testing.assert_close(states, full[[0, 4, 8, 12]])


class TimeRecorder:
    def __init__(self, model):
        self.times = set()
        model.register_forward_pre_hook(self.hook)

    def hook(self, module, args):
        t = args[1]
        self.times.add(float(t) if not torch.is_tensor(t) else float(t.reshape(-1)[0]))


@pytest.mark.parametrize("nfe,afs", [(1, False), (2, True)])
def test_sfd_beats_the_plain_solver_and_only_trains_its_timestamps(blobs, nfe, afs):
    """(At NFE 2 without AFS the plain DPM-Solver++ with SFD's order rule, orders 1 then 2, is already
    close: FD 0.21 vs 0.19–0.23 for 4096-trajectory students, so that case is not a test of SFD.)"""
    cfg = distill.DistillConfig(nfe=nfe, budget=4096, lr=1e-3, afs=afs, seed=0)
    student = copy.deepcopy(blobs.model)
    seen = TimeRecorder(student)
    progress = []
    result = distill.distill(blobs.model, cfg, student=student, device="cpu",
                             progress=lambda done, total, info: progress.append((done, total, info["loss"])))
    grid = solvers.time_grid(cfg.n)
    assert seen.times == set(grid[int(afs):-1].tolist())          # only the sampling timestamps
    assert progress[-1][:2] == (4096, 4096) and len(result.losses) == 32 and result.trajectories == 4096
    x = sampling.noise(4000, 2, seed=99)
    ref = (blobs.ref_mean, blobs.ref_cov)
    student_x = sampling.sample_student(result.student, x, cfg.n, afs)
    plain_x = sampling.sample_solver(blobs.model, x, nfe, "dpmpp3m", afs=afs)
    fd_student, fd_solver = metrics.latent_fd(student_x, *ref), metrics.latent_fd(plain_x, *ref)
    assert fd_student < 0.2 * fd_solver, (fd_student, fd_solver)      # measured 0.20 vs 2.28, 0.03 vs 0.71
    exact = blobs.mixture.sample(4000, 5)
    assert MX.sliced_w2(student_x.numpy(), exact) < 0.5 * MX.sliced_w2(plain_x.numpy(), exact)


def test_algorithm1_starts_from_teacher_states_algorithm2_from_its_own(blobs):
    x = sampling.noise(16, 2, seed=2)
    states = distill.teacher_states(networks.conditioned(blobs.model, None), x, 4, 3, "dpmpp3m")
    grid = solvers.time_grid(4)
    starts = {}
    for alg in ("alg1", "sfd"):
        student = copy.deepcopy(blobs.model).requires_grad_(True)
        opt = torch.optim.SGD(student.parameters(), lr=0.0)   # lr 0: the student stays the teacher
        losses, starts[alg] = distill.sfd_iteration(student, states, grid, alg, False, opt)
        assert len(losses) == 3
    for i in range(3):
        torch.testing.assert_close(starts["alg1"][i], states[i])
    own = x
    for i in range(3):                      # Algorithm 2: the student's own Euler states
        torch.testing.assert_close(starts["sfd"][i], own)
        own = distill.student_step(blobs.model, own, grid[i], grid[i + 1], None, False).detach()
    assert not torch.allclose(starts["sfd"][2], states[2], atol=1e-3)


def test_sfd_v_one_model_serves_nfe_2_to_5(blobs):
    """One SFD-v student beats the plain solver (same teacher, same noise) at every NFE it serves."""
    cfg = distill.DistillConfig(nfe=3, algorithm="sfd-v", afs=True, budget=SFDV_BUDGET, lr=1e-3)
    result = distill.distill(blobs.model, cfg, device="cpu")
    x = sampling.noise(4000, 2, seed=3)
    exact = blobs.mixture.sample(4000, 4)
    assert [cfg.steps_for(k) for k in distill.SFDV_NFE] == [4, 5, 6, 7]
    for nfe in distill.SFDV_NFE:
        student = sampling.sample_student(result.student, x, cfg.steps_for(nfe), True,
                                          conditioned_on_n=True)
        plain = sampling.sample_solver(blobs.model, x, nfe, "dpmpp3m", afs=True)
        w2_student, w2_plain = MX.sliced_w2(student.numpy(), exact), MX.sliced_w2(plain.numpy(), exact)
        assert w2_student < 0.8 * w2_plain, (nfe, w2_student, w2_plain)     # measured: 0.12–0.22 vs 0.29–0.65
        fd_student, fd_plain = (metrics.latent_fd(v, blobs.ref_mean, blobs.ref_cov)
                                for v in (student, plain))
        assert fd_student < 0.5 * fd_plain, (nfe, fd_student, fd_plain)
    assert any(block.step_film.weight.abs().sum() > 0 for block in result.student.residual.blocks)


def test_cancel_stops_training(blobs):
    cancel = threading.Event()
    cancel.set()
    seen = []
    with pytest.raises(Cancelled):
        distill.distill(blobs.model, distill.DistillConfig(nfe=2, budget=10_000), device="cpu",
                        progress=lambda *a: seen.append(a), cancel=cancel)
    assert seen == []                      # stopped before the first iteration
    with pytest.raises(Cancelled):
        teachers.train_teacher(np.random.default_rng(0).standard_normal((10, 2)),
                               teachers.TeacherTraining(steps=5, width=8, blocks=1), device="cpu",
                               progress=lambda *a: seen.append(a), cancel=cancel)
    assert seen == []


def test_mlp_teacher_learns_the_gaussian_denoiser():
    data = np.random.default_rng(0).standard_normal((4000, 2)) * np.sqrt([0.25, 2.0])
    seen = []
    net = teachers.train_teacher(data, teachers.TeacherTraining(steps=300, batch=256, width=64, blocks=2),
                                 device="cpu", progress=lambda *a: seen.append(a))
    assert len(seen) == 300 and seen[-1][:2] == (300, 300) and seen[-1][2]["loss"] > 0
    x = torch.tensor(np.random.default_rng(1).standard_normal((256, 2)), dtype=torch.float32)
    lam = torch.tensor([0.25, 2.0])
    for t in (0.3, 1.0, 5.0):
        err = (net(x * (lam + t * t).sqrt(), t) - lam / (lam + t * t) * x * (lam + t * t).sqrt()).abs().mean()
        assert err < 0.1, (t, float(err))


def test_teacher_save_load_round_trip(tmp_path):
    data = np.random.default_rng(0).standard_normal((100, 3))
    net = networks.MLPDenoiser(3, 1.0, width=16, blocks=1, data_mean=data.mean(0))
    teachers.save_teacher(net, tmp_path / teachers.TEACHER_FILE, data)
    teacher = teachers.load_teacher("latent-mlp", assets=str(tmp_path))
    x = torch.randn(4, 3)
    torch.testing.assert_close(teacher.model(x, 2.0), net(x, 2.0))
    np.testing.assert_allclose(teacher.ref_cov, np.cov(data.T))
    MX.save_gmm(MX.preset("two-blobs"), tmp_path / teachers.GMM_FILE)
    assert teachers.load_teacher("latent-gmm", assets=str(tmp_path)).model.dim == 2


@pytest.mark.parametrize("kwargs,match", [
    (dict(nfe=0), "NFE"), (dict(nfe=6), "NFE"), (dict(nfe=1, algorithm="sfd-v"), "NFE"),
    (dict(solver="rk4"), "unknown solver"), (dict(algorithm="progressive"), "unknown algorithm"),
    (dict(M=-1), "M"), (dict(budget=0), "budget"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distill.DistillConfig(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0), "teacher steps"), (dict(batch=10**5), "batch"), (dict(lr=0), "lr"),
    (dict(width=2), "width"), (dict(blocks=0), "blocks"), (dict(seed=-1), "seed"),
])
def test_bad_teacher_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        teachers.TeacherTraining(**kwargs)


def test_bad_teacher_and_grid(tmp_path):
    with pytest.raises(ValueError, match="unknown teacher"):
        teachers.load_teacher("latent-unet")
    with pytest.raises(ValueError, match="missing teacher weights"):
        teachers.load_teacher("latent-mlp", assets=str(tmp_path))
    with pytest.raises(ValueError, match="missing teacher file"):
        teachers.load_teacher("latent-gmm", assets=str(tmp_path))
    (tmp_path / teachers.TEACHER_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        teachers.load_teacher("latent-mlp", assets=str(tmp_path))
    with pytest.raises(ValueError, match=r"\(M\+1\)\(n-1\)\+1"):
        distill.check_steps(4, 3, solvers.time_grid(12))


def test_cli_sfd_train_json_and_run_store(capsys, tmp_path, monkeypatch):
    import json

    from opmerge_core.cli import main
    from opmerge_core.store.runstore import RunStore

    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    code = main(["sfd", "train", "--teacher", "mixture-2d", "--preset", "two-blobs", "--nfe", "2",
                 "--budget", "1024", "--n-eval", "500", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"latent_fd", "latent_fd_solver", "finetune_seconds", "run_id", "latent_fd_floor", "latent_fd_sd",
            "latent_fd_teacher", "latent_fd_teacher_sd", "nfe_solver"} <= out.keys()
    assert out["nfe_solver"] == 2 and out["lower_order_final"] == "sfd" and len(out["eval_seeds"]) >= 3
    # the floor of 500 exact samples against the exact moments of a 2-D mixture: small, and below the teacher
    assert 0 < out["latent_fd_floor"] < out["latent_fd_teacher"] and out["latent_fd_sd"] > 0
    row = RunStore(tmp_path / "runs.sqlite").get(out["run_id"])
    assert row["status"] == "done" and row["params"]["teacher"] == "mixture-2d"
    assert row["metrics"]["latent_fd"] == out["latent_fd"]
    from opmerge_core.sfd import history

    table = history.runs_table(RunStore(tmp_path / "runs.sqlite"))
    assert [(r["method"], r["nfe"]) for r in table] == [("sfd", 2), ("solver", out["nfe_solver"])]
    code = main(["sfd", "train", "--teacher", "mixture-2d", "--nfe", "2", "--budget", "256",
                 "--n-eval", "100", "--no-store", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["run_id"] is None
    bad = (["--nfe", "9"], ["--teacher", "unet"], ["--solver", "rk4"], ["--M", "-2"], ["--budget", "0"])
    for argv in bad:
        teacher = [] if "--teacher" in argv else ["--teacher", "mixture-2d"]
        code = main(["sfd", "train", *teacher, *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, (argv, err)


def test_fd_floor_matches_the_sampling_noise_of_a_gaussian_fit():
    """n exact samples of N(0, I_d) against the exact moments: E FD ≈ d/n (mean error) + d(d+1)/(4n)
    (‖Σ̂^½ − I‖² ≈ ‖Σ̂ − I‖²/4, E‖Σ̂ − I‖² = d(d+1)/n); against a second fit of n samples, twice that."""
    d, n = 4, 2000
    want = d / n + d * (d + 1) / (4 * n)
    mean, sd = metrics.fd_floor(np.zeros(d), np.eye(d), n, None, seeds=tuple(range(20)))
    assert mean == pytest.approx(want, rel=0.3) and sd > 0
    both, _ = metrics.fd_floor(np.zeros(d), np.eye(d), n, n, seeds=tuple(range(20)))
    assert both == pytest.approx(2 * want, rel=0.3)
    assert metrics.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0) and metrics.mean_sd([5.0]) == (5.0, 0.0)


def test_split_latents_is_fixed_and_disjoint():
    from opmerge_core.sfd import assets as sfd_assets

    z = np.arange(200.0).reshape(100, 2)
    train, held = sfd_assets.split_latents(z, 30)
    _, held2 = sfd_assets.split_latents(z, 30)
    assert train.shape == (70, 2) and held.shape == (30, 2) and np.array_equal(held, held2)
    assert not set(train[:, 0]) & set(held[:, 0]) and set(train[:, 0]) | set(held[:, 0]) == set(z[:, 0])
    with pytest.raises(ValueError, match="held-out"):
        sfd_assets.split_latents(z, 99)


@pytest.mark.parametrize("solver,nfe,afs,used", [("heun", 3, False, 4), ("heun", 4, False, 4),
                                                  ("heun", 2, True, 3), ("dpmpp3m", 3, False, 3),
                                                  ("euler", 2, True, 2)])
def test_same_nfe_baseline_reports_the_nfe_it_used(blobs, solver, nfe, afs, used):
    counter = solvers.CountingDenoiser(networks.conditioned(blobs.model, None))
    grid = sampling.solver_grid(nfe, solver, afs)
    solvers.solve(counter, sampling.noise(4, 2), grid, solver, afs=afs)
    assert counter.nfe == sampling.solver_nfe(nfe, solver, afs) == used


def test_teacher_build_trains_on_the_split_and_refers_to_the_held_out(tmp_path):
    from opmerge_core.sfd import assets as sfd_assets

    z = np.random.default_rng(0).standard_normal((400, 3)) * [1.0, 0.5, 2.0]
    np.save(tmp_path / "z.npy", z)
    out = sfd_assets.build(tmp_path / "z.npy", tmp_path, steps=20, batch=64, width=16, blocks=1, gmm_k=2,
                           gmm_iters=5, n_held_out=100, n_fd=200, device="cpu", log=lambda m: None)
    assert (out["n_train"], out["n_held_out"], out["split_seed"]) == (300, 100, 0)
    teacher = teachers.load_teacher("latent-mlp", assets=str(tmp_path))
    _, held = sfd_assets.split_latents(z, 100)
    np.testing.assert_allclose(teacher.ref_mean, held.mean(0))            # the reference is held out
    assert teacher.ref_n == 100 and teacher.meta["reference"] == "held-out split"
    assert teachers.load_teacher("latent-gmm", assets=str(tmp_path)).ref_n == 100
    for key in ("teacher_32nfe", "gmm", "floor_real", "floor"):
        assert out[f"latent_fd_{key}"] > 0 and out[f"latent_fd_{key}_sd"] >= 0
