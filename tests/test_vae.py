"""VAE: image loading, model shapes, training with checkpoints/resume, latent statistics.

Uses the Olivetti faces fixture (AT&T Laboratories Cambridge) and a tiny VAE so the whole file runs in
a few seconds: train → encode → spectrum → decode end to end.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opmerge_core.basics.device import pick_device
from opmerge_core.basics.progress import Cancelled
from opmerge_core.cli import main as cli_main
from opmerge_core.latent import images as im
from opmerge_core.latent import latents as lt
from opmerge_core.latent import vae

FIXTURE = Path(__file__).parent / "fixtures" / "olivetti_faces_uint8.npz"
TINY = {"channels": (4, 8, 8, 16, 16), "latent_dim": 8}
TRAINED_EPOCHS = 8      # enough for the tiny VAE to clear the untrained level on the fixture (~5 s)


def tiny_config(out: Path, **kw) -> vae.VAEConfig:
    base = {"out": str(out), "epochs": 1, "max_minutes": 5.0, "batch_size": 16, **TINY}
    return vae.VAEConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return im.load_npz_faces(FIXTURE)[:96]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, faces) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    report = vae.train(faces, tiny_config(out, epochs=TRAINED_EPOCHS, lr=1e-2))
    return out, report


# ---- images -------------------------------------------------------------------------------------
def _write(path: Path, arr: np.ndarray, fmt: str = "PNG") -> None:
    Image.fromarray(arr).save(path, format=fmt)


def test_fixture_is_greyscale_olivetti_made_rgb(faces):
    assert faces.shape == (96, 64, 64, 3) and faces.dtype == np.uint8
    assert np.array_equal(faces[..., 0], faces[..., 2])          # grey -> 3 equal channels


def test_folder_crop_resize_skip_and_count(tmp_path):
    # 100 wide × 80 high: centre square = columns 10..90; the outer 10 columns are red and must vanish
    arr = np.zeros((80, 100, 3), np.uint8)
    arr[:, :10] = arr[:, 90:] = (255, 0, 0)
    arr[:, 10:90] = (0, 0, 255)
    _write(tmp_path / "a.png", arr)
    _write(tmp_path / "b.jpg", np.full((64, 64), 200, np.uint8), fmt="JPEG")   # greyscale jpg
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    s = im.load_images(tmp_path)
    assert s.images.shape == (2, 64, 64, 3) and s.skipped == 1 and s.names == ["a.png", "b.jpg"]
    assert s.images[0, :, :, 0].max() <= 2 and s.images[0, :, :, 2].min() >= 250   # red border cropped
    assert np.all(np.abs(s.images[1].astype(int) - 200) <= 2)
    assert len(im.load_images(tmp_path, max_images=1).images) == 1


def test_zip_source_and_errors(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.full((178, 218, 3), 90, np.uint8)).save(buf, format="JPEG")
    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as zf:
        zf.writestr("img_align_celeba/000001.jpg", buf.getvalue())
        zf.writestr("img_align_celeba/000002.jpg", b"\xff\xd8 truncated")
    s = im.load_images(tmp_path / "faces.zip")
    assert s.images.shape == (1, 64, 64, 3) and s.skipped == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no readable"):
        im.load_images(empty)
    (empty / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"no readable .*1 unreadable"):
        im.load_images(empty)
    with pytest.raises(ValueError, match="does not exist"):
        im.load_images(tmp_path / "nope")
    (tmp_path / "plain.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match=r"folder or a \.zip"):
        im.load_images(tmp_path / "plain.bin")
    with pytest.raises(ValueError, match="max_images"):
        im.load_images(tmp_path / "faces.zip", max_images=0)


# ---- model --------------------------------------------------------------------------------------
def test_default_model_shapes_range_and_size():
    m = vae.VAE().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        mu, logvar = m.encode(x)
        x_hat = m.decode(mu)
    assert mu.shape == logvar.shape == (2, 128) and x_hat.shape == (2, 3, 64, 64)
    assert 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1
    convs = [mod.out_channels for mod in m.encoder if isinstance(mod, torch.nn.Conv2d)]
    assert convs == [32, 64, 128, 256, 512]
    assert 2 * vae.n_parameters(m) <= 20e6                      # fp16 export fits the 20 MB budget


def test_msssim_at_64_and_kl_closed_form():
    x = torch.rand(3, 3, 64, 64)
    assert float(vae.msssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(vae.msssim(x, torch.rand(3, 3, 64, 64))) < 0.5
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, np.log(2.0)]])
    _, _, kl = vae.loss_fn(x[:1], x[:1], mu, logvar, beta=1.0)
    assert float(kl) == pytest.approx(0.5 * (1.0 + (2.0 - 1.0 - np.log(2.0))), rel=1e-6)


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")


# ---- training, checkpoints, resume --------------------------------------------------------------
def test_train_writes_checkpoint_export_and_report(trained, faces):
    out, report = trained
    assert report["epochs_completed"] == TRAINED_EPOCHS
    assert report["n_train"] + report["n_heldout"] == len(faces)
    assert report["n_heldout"] == round(0.05 * len(faces))
    # a level only training reaches: an untrained tiny VAE scores MS-SSIM 0.28, PSNR 15.8–16.3 dB here
    # (seeds 0, 1); 8 epochs reach 0.61 / 17.6 dB
    held = faces[vae.split_indices(len(faces))[1]]
    torch.manual_seed(0)
    untrained = vae.evaluate(vae.VAE(**TINY), held)
    assert report["heldout_msssim"] > max(0.5, untrained["msssim"] + 0.2), (report, untrained)
    assert report["heldout_psnr"] > untrained["psnr"] + 1.0, (report, untrained)
    assert report["history"][1]["epoch"] == 2
    ck = torch.load(out / "last.pt", weights_only=True)            # plain tensors and containers only
    assert set(ck) == {"state_dict", "optimizer", "config", "state"}
    exported = torch.load(out / "vae_fp16.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in exported["state_dict"].values() if v.is_floating_point())
    a, b = vae.load_vae(out / "vae_fp16.pt"), vae.load_vae(out / "last.pt")
    x = vae.to_tensor(faces[:4])
    with torch.no_grad():
        assert torch.allclose(a.encode(x)[0], b.encode(x)[0], atol=5e-2)   # fp16 rounding only


def test_resume_continues_from_checkpoint(tmp_path, faces):
    events: list[dict] = []
    vae.train(faces, tiny_config(tmp_path, epochs=1), progress=lambda done, total, info: events.append(info))
    first = torch.load(tmp_path / "last.pt", weights_only=True)["state_dict"]
    report = vae.train(faces, tiny_config(tmp_path, epochs=2),
                       progress=lambda done, total, info: events.append(info))
    assert any(i["event"] == "resumed" and i["epoch"] == 1 for i in events)
    assert report["epochs_completed"] == 2 and len(report["history"]) == 2
    second = torch.load(tmp_path / "last.pt", weights_only=True)["state_dict"]
    assert not torch.equal(first["fc_mu.weight"], second["fc_mu.weight"])
    # a run interrupted by the time budget mid-epoch resumes at the saved batch
    mid = tmp_path / "mid"
    r1 = vae.train(faces, tiny_config(mid, max_minutes=1e-9))
    assert r1["epochs_completed"] == 0 and r1["batches_into_epoch"] == 1
    r2 = vae.train(faces, tiny_config(mid, max_minutes=5.0))
    assert r2["epochs_completed"] == 1 and r2["batches_into_epoch"] == 0


def test_progress_counts_batches_and_cancel_keeps_a_checkpoint(tmp_path, faces):
    seen: list[tuple[int, int, dict]] = []

    class AfterThreeBatches:                     # any object with is_set() cancels
        def is_set(self) -> bool:
            return sum(info["event"] == "batch" for _, _, info in seen) >= 3

    with pytest.raises(Cancelled):
        vae.train(faces, tiny_config(tmp_path, epochs=2), progress=lambda *call: seen.append(call),
                  cancel=AfterThreeBatches())
    n_batches = (len(faces) - round(0.05 * len(faces))) // 16
    assert [done for done, _, _ in seen] == [1, 2, 3] and {t for _, t, _ in seen} == {2 * n_batches}
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["batch"] == 3
    assert not (tmp_path / "vae_fp16.pt").exists()                     # no result from a cancelled run
    seen.clear()
    report = vae.train(faces, tiny_config(tmp_path, epochs=2), progress=lambda *call: seen.append(call))
    events = [info["event"] for _, _, info in seen]
    assert events[0] == "resumed" and seen[0][2]["batch"] == 3 and seen[0][0] == 3
    assert events.count("batch") == 2 * n_batches - 3 and events.count("epoch") == 2
    assert events[-1] == "done" and seen[-1][2]["heldout_msssim"] == report["heldout_msssim"]
    dones = [done for done, _, _ in seen]
    assert dones == sorted(dones) and dones[-1] == seen[-1][1] == 2 * n_batches


def test_bad_checkpoints_and_configs(tmp_path, faces):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"corrupt")
    with pytest.raises(ValueError, match=r"checkpoint .*last.pt is corrupt"):
        vae.train(faces, tiny_config(tmp_path))
    with pytest.raises(ValueError, match=r"vae_fp16.pt is missing; regenerate"):
        vae.load_vae(tmp_path / "vae_fp16.pt")
    cfg = {"latent_dim": 8, "channels": [4, 8, 8, 16, 16]}
    torch.save({"state_dict": {"x": torch.zeros(1)}, "config": cfg}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not match the model"):
        vae.load_vae(tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="batch_size"):
        vae.train(faces, tiny_config(tmp_path / "b", batch_size=0))
    with pytest.raises(ValueError, match="uint8"):
        vae.train(faces.astype(np.float32), tiny_config(tmp_path / "c"))
    for bad, match in [({"threads": 0}, "threads"), ({"heldout_fraction": 0.5}, "heldout_fraction"),
                       ({"channels": ()}, "channels"), ({"device": "tpu"}, "unknown device"),
                       ({"max_minutes": float("nan")}, "max_minutes must be finite")]:
        with pytest.raises(ValueError, match=match):
            tiny_config(tmp_path, **bad)
    config = tiny_config(tmp_path, epochs="3", lr="1e-2")            # CLI strings are converted
    assert (config.epochs, config.lr) == (3, 0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 4  # type: ignore[misc]


# ---- latents: encode → spectrum → decode --------------------------------------------------------
def test_stats_match_brute_force_covariance():
    z = np.random.default_rng(1).standard_normal((500, 6)) @ np.diag([3.0, 2.0, 1.0, 0.5, 0.2, 0.1]) + 4.0
    s = lt.compute_stats(z)
    cov = np.cov(z, rowvar=False)
    assert np.all(np.diff(s.eigvals) <= 0)
    assert np.allclose(s.eigvecs @ np.diag(s.eigvals) @ s.eigvecs.T, cov, atol=1e-10)
    assert np.allclose(s.eigvecs.T @ s.eigvecs, np.eye(6), atol=1e-12)
    y = s.to_eigen(z)
    assert np.allclose(np.cov(y, rowvar=False), np.diag(s.eigvals), atol=1e-10)
    assert np.allclose(s.from_eigen(y), z, atol=1e-12)


def test_end_to_end_encode_spectrum_decode_assets(trained, faces, tmp_path):
    out, _ = trained
    lat_file = tmp_path / "lat.npy"
    summary = lt.build_assets(faces, out / "vae_fp16.pt", tmp_path / "assets", latents_out=lat_file)
    assert summary["n"] == len(faces) and summary["d"] == 8
    model, stats = lt.load_assets(tmp_path / "assets")
    z = np.load(lat_file, allow_pickle=False)
    assert z.shape == (len(faces), 8)
    assert np.allclose(stats.mean, z.mean(0), atol=1e-5)
    assert np.allclose(stats.eigvals.sum(), np.trace(np.cov(z.astype(np.float64), rowvar=False)), rtol=1e-6)
    rec = lt.decode(model, z[:5])
    assert rec.shape == (5, 64, 64, 3) and rec.dtype == np.uint8
    assert np.allclose(lt.encode(model, faces[:5]), z[:5], atol=1e-5)


def test_missing_or_corrupt_assets_name_the_file_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("OPMERGE_ASSETS", str(tmp_path))
    assert lt.assets_dir() == tmp_path
    with pytest.raises(ValueError, match=r"celeba_latent_stats\.npz are missing; regenerate .*opmerge vae"):
        lt.load_assets()
    (tmp_path / lt.STATS_FILE).write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"celeba_latent_stats\.npz are corrupt"):
        lt.load_stats()
    np.savez(tmp_path / lt.STATS_FILE, mean=np.zeros(3), eigvals=np.ones(2), eigvecs=np.eye(3))
    with pytest.raises(ValueError, match="inconsistent"):
        lt.load_stats()
    np.savez(tmp_path / lt.STATS_FILE, mean=np.zeros(3), eigvals=np.ones(3), eigvecs=np.eye(3))
    (tmp_path / lt.VAE_FILE).write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"vae_celeba64_fp16.pt is corrupt .*regenerate"):
        lt.load_assets()


# ---- CLI ----------------------------------------------------------------------------------------
def test_cli_vae_train_errors_and_tiny_run(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["vae", "train", "--images", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no readable" in capsys.readouterr().err
    assert cli_main(["vae", "train", "--images", str(FIXTURE), "--max-images", "0"]) == 2
    assert "max-images" in capsys.readouterr().err
    args = ["vae", "train", "--images", str(FIXTURE), "--out", str(tmp_path / "o")]
    assert cli_main([*args, "--device", "tpu"]) == 2
    assert cli_main([*args, "--batch-size", "0"]) == 2
    assert "batch_size must be an integer in [1, 4096]" in capsys.readouterr().err
    # the default model, 20 images, a budget of a few batches: progress lines, the report, JSON last
    assert cli_main([*args, "--max-images", "20", "--batch-size", "8", "--max-minutes", "1e-6",
                     "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("loaded 20 images") and lines[1].startswith("held-out reconstruction")
    assert json.loads(lines[-1])["epochs_completed"] == 0 and (tmp_path / "o" / "vae_fp16.pt").is_file()
