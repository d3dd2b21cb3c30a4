"""End-to-end: the "Theory vs practice" page in Debian chromium, screenshots at 1280×720 and full length."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("name", "query"), [("latent", ""), ("mixture", "?tp_teacher=mixture-2d")])
def test_practice_page_screenshots(page, app_url, artifacts, idle, shoot, name, query):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{app_url}/practice{query}")
    idle(page)
    page.get_by_text("Verdict.", exact=False).first.wait_for(timeout=60_000)
    if name == "latent":      # the faces are decoded on the compute backend
        page.get_by_test_id("stImage").first.wait_for(timeout=120_000)
        idle(page)
    assert page.get_by_test_id("stException").count() == 0
    assert "Reference run" in page.inner_text("body")
    page.screenshot(path=str(artifacts / f"practice_{name}_1280x720.png"))
    shoot(page, f"practice_{name}_full")
