"""Playwright fixtures: a `streamlit run` server on 127.0.0.1 and Debian chromium (DASHBOARD.md §1.11).

No browser is ever downloaded: the tests use the system chromium (``CHROMIUM_PATH``, default
/usr/bin/chromium) and skip with a clear reason when it is absent — except under ``CI=true``, where a
missing browser (or pytest-playwright) fails the run instead of silently skipping the browser tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = f"chromium not found at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)"
    else:
        try:
            import pytest_playwright  # noqa: F401
        except ImportError:
            reason = "pytest-playwright is not installed (pip install -e '.[e2e]')"
    if not reason:
        return
    e2e = [item for item in items if "e2e" in item.keywords]
    if e2e and on_ci():
        raise pytest.UsageError(f"CI=true but the browser tests cannot run: {reason}")
    for item in e2e:
        item.add_marker(pytest.mark.skip(reason=reason))


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):  # overrides pytest-playwright's fixture
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1000}}


@pytest.fixture(scope="session")
def app_url(free_port):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless=true",
         f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none", "--global.developmentMode=false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("streamlit did not become healthy within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def idle():
    """The ``wait_idle`` helper as a fixture (test modules need not import this conftest)."""
    return wait_idle


def wait_idle(page, timeout: float = 60_000) -> None:
    """Connected, script finished, no skeletons, Plotly drawn (Streamlit's own e2e conditions)."""
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(timeout=timeout)
    page.wait_for_timeout(300)
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=timeout)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=timeout)
    page.wait_for_timeout(700)


@pytest.fixture
def shoot(artifacts):
    """Screenshot of the whole page: Streamlit scrolls inside its main container, so grow the
    viewport to the content's height first (capped at 9000 px)."""
    def _shoot(page, name: str) -> Path:
        height = page.evaluate("""() => Math.max(document.body.scrollHeight,
            ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"],'
                + '[data-testid="stMainBlockContainer"]')].map(e => e.scrollHeight))""")
        width = page.viewport_size["width"] if page.viewport_size else 1500
        page.set_viewport_size({"width": width, "height": min(int(height) + 80, 9000)})
        page.wait_for_timeout(1200)
        path = artifacts / f"{name}.png"
        page.screenshot(path=str(path))
        return path
    return _shoot
