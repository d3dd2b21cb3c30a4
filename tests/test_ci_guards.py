"""Under CI=true a missing browser fails the run (tests/e2e/conftest.py, ./dev), never a silent skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def collect_e2e(ci: str | None, chromium: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHROMIUM_PATH": chromium}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co",
                           str(ROOT / "tests" / "e2e")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_e2e_missing_browser_fails_under_ci(tmp_path):
    """(Without CI the same collection succeeds and the browser tests are skipped: the local default.)"""
    missing = str(tmp_path / "no-chromium")
    ci = collect_e2e("true", missing)
    assert ci.returncode != 0 and "CI=true but the browser tests cannot run" in ci.stdout + ci.stderr
    assert "chromium not found at " + missing in ci.stdout + ci.stderr


def fake_apt(tmp_path: Path, ok: bool) -> dict:
    """A PATH whose apt-get only records its calls (and succeeds or fails)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "apt.log"
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nexit {0 if ok else 1}\n")
    (bin_dir / "apt-get").chmod(0o755)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "sudo").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}


def dev_browser(env: dict, **extra: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "CHROMIUM_PATH")}
    full.update(PATH=env["PATH"], **extra)
    return subprocess.run(["bash", str(ROOT / "dev"), "browser"], env=full, capture_output=True,
                          text=True, timeout=60)


def test_dev_does_not_trust_a_stale_chromium_path(tmp_path):
    env = fake_apt(tmp_path, ok=False)
    stale = str(tmp_path / "gone" / "chromium")
    r = dev_browser(env, CI="true", CHROMIUM_PATH=stale)
    assert r.returncode != 0 and "could not install chromium" in r.stderr          # CI: fails
    assert "update -qq" in Path(env["LOG"]).read_text()                            # it did try
    r = dev_browser(env, CHROMIUM_PATH=stale)
    assert r.returncode == 0                                                       # locally: tests skip
    Path(env["LOG"]).unlink()
    real = tmp_path / "chromium"
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    assert dev_browser(env, CI="true", CHROMIUM_PATH=str(real)).returncode == 0
    assert not Path(env["LOG"]).exists()                                           # a valid path: no install


def test_every_package_is_in_the_wheel_list():
    """pyproject.toml lists the packages explicitly (the app's folder dashboard/ installs as
    opmerge_dashboard): a new subpackage missing from the list would be missing from the wheel."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"opmerge_core": ROOT / "opmerge_core", "opmerge_dashboard": ROOT / "dashboard"}
    found = {"opmerge_core.assets"}
    for name, folder in folders.items():
        inits = folder.rglob("__init__.py")
        found |= {".".join((name, *init.parent.relative_to(folder).parts)) for init in inits}
    assert set(setuptools["packages"]) == found
    assert setuptools["package-dir"] == {"opmerge_dashboard": "dashboard", "opmerge_core.assets": "assets"}
