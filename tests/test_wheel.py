"""The wheel: built from the tree, it holds every page and the assets (package data), and the CLI run
from the *installed* wheel finds the assets without OPMERGE_ASSETS and serves every page.

By default the wheel is installed with ``pip install --no-deps --target`` next to this environment's
dependencies; CI (``.ci/run``) sets ``OPMERGE_WHEEL_PYTHON`` to a clean venv where ``pip install
dist/*.whl`` was run, and the same checks run against that interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".ci"))
import check_wheel  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out)], check=True, capture_output=True)
    return next(out.glob("opmerge-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[str, dict]:
    """(python, env) running the installed wheel from a folder outside the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPMERGE_ASSETS", "PYTHONPATH")}
    env["OPMERGE_HOME"] = str(tmp_path_factory.mktemp("home"))
    python = os.environ.get("OPMERGE_WHEEL_PYTHON")
    if not python:
        target = tmp_path_factory.mktemp("site")
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                        str(wheel)], check=True, capture_output=True)
        python, env["PYTHONPATH"] = sys.executable, str(target)
    return python, env


def run(installed, code: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    python, env = installed
    return subprocess.run([python, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_wheel_contents(wheel) -> None:
    assert check_wheel.problems(wheel) == []
    assert any(n.startswith("opmerge_core/assets/reference_") for n in check_wheel.required())


def test_installed_package_finds_its_assets(installed, tmp_path) -> None:
    proc = run(installed, f"""
        import json, {check_wheel.APP_PACKAGE}, opmerge_core
        from opmerge_core.latent.latents import assets_dir
        print(json.dumps([opmerge_core.__file__, {check_wheel.APP_PACKAGE}.__file__, str(assets_dir())]))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    core, app, assets = map(Path, json.loads(proc.stdout))
    assert ROOT not in core.parents and ROOT not in app.parents, "imported from the repository"
    assert assets == core.parent / "assets" and (assets / "vae_celeba64_fp16.pt").is_file()


def test_installed_cli_runs(installed, tmp_path) -> None:
    python, env = installed
    proc = subprocess.run([python, "-m", "opmerge_core", "celeba", "compare", "--T", "8", "--samples", "2",
                           "--out", str(tmp_path / "grid.png"), "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert 0 < json.loads(proc.stdout)["frac_below_1"] < 1
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_installed_app_renders_every_page(installed, tmp_path) -> None:
    proc = run(installed, f"""
        from importlib.resources import files
        from streamlit.testing.v1 import AppTest
        app = files("{check_wheel.APP_PACKAGE}")
        at = AppTest.from_file(str(app / "app.py"), default_timeout=120).run()
        assert not at.exception, at.exception
        for page in sorted(p.name for p in (app / "app_pages").iterdir() if p.name.endswith(".py")):
            at.switch_page(f"app_pages/{{page}}").run()
            assert not at.exception, (page, at.exception)
            assert at.title, page
            print(page, "ok")
    """, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" ok") >= 10, proc.stdout
