"""AppTest for the "CelebA latents" dashboard page, on tiny assets in a tmp folder."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from opmerge_core.cli import celeba as celeba_cli
from opmerge_core.latent import latents as lt
from opmerge_core.latent import vae

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "app_pages/celeba.py"
LAM = np.geomspace(0.05, 20.0, 10)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("assets")
    torch.manual_seed(0)
    vae.save_fp16(vae.VAE(latent_dim=LAM.size, channels=(4, 8, 8, 16, 16)), folder / lt.VAE_FILE)
    lt.save_stats(lt.LatentStats(np.zeros(LAM.size), LAM[::-1].copy(), np.eye(LAM.size), 50),
                  folder / lt.STATS_FILE)
    return folder


def open_page(monkeypatch, folder: Path, **query) -> AppTest:
    monkeypatch.setenv("OPMERGE_ASSETS", str(folder))
    monkeypatch.setenv("OPMERGE_HOME", str(folder / "home"))     # the compute backend records runs there
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(PAGE)
    return at.run()


def test_page_renders_from_url_state(assets, monkeypatch):
    at = open_page(monkeypatch, assets, T="8", S="2")
    assert not at.exception
    assert at.title[0].value == "CelebA latents"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["latent directions"] == "10"
    assert metrics["fraction of λ below 1"] == f"{np.mean(LAM < 1):.0%}"
    assert "Sequential BOOT" in metrics["optimal regimes"] and "Vanilla" in metrics["optimal regimes"]
    assert at.session_state["T"] == 8 and at.session_state["S"] == 2.0
    command = next(c.value for c in at.code if "--T 8 --shrinkage 2" in c.value)
    spec = celeba_cli.parse(shlex.split(command, comments=True)[1:])   # the real CLI reads it back
    assert (spec.setting.T, spec.setting.S, spec.samples) == (8, 2.0, 6)
    assert len(at.get("image")) == 1                                  # the face grid
    table = at.dataframe[0].value
    assert len(table) == 9 and "DP shared plan" in set(table["method"])
    assert table["W2 (all)"].iloc[0] == 0.0                            # teacher vs its own composite


def test_trainer_runs_in_the_job_runner(assets, monkeypatch):
    at = open_page(monkeypatch, assets, T="4")
    at.button(key="celeba_train").click().run()
    deadline = time.monotonic() + 180          # generous: the run may queue behind other tests' jobs
    while time.monotonic() < deadline:
        if any("Trained every strategy" in s.value for s in at.success):
            break
        time.sleep(0.25)
        at.run()
    assert not at.exception
    assert any("Trained every strategy" in s.value for s in at.success)
    trained = at.dataframe[1].value
    assert len(trained) == 7 and (trained["w2 (trained)"] > 0).all()
    assert np.allclose(trained["w2 (trained)"], trained["W2 (theory)"], rtol=0.1)
    assert any("trained** students" in c.value for c in at.caption)     # the grid shows the students
    assert len(at.get("image")) == 1


def test_missing_assets_and_bad_url_keep_the_app_alive(tmp_path, assets, monkeypatch):
    at = open_page(monkeypatch, tmp_path)
    assert not at.exception
    assert any("celeba_latent_stats.npz" in e.value and "opmerge vae train" in e.value for e in at.error)
    at = open_page(monkeypatch, assets, T="abc")
    assert not at.exception
    assert any("`T`" in w.value for w in at.warning)
