"""End-to-end: the dashboard on a 1280×720 projector — presentation mode, predict-then-reveal, and
first views that are never empty (the shipped reference runs)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e

PROJECTOR = {"width": 1280, "height": 720}


def metric_value(page, label: str) -> str:
    card = page.get_by_test_id("stMetric").filter(has_text=label).first
    return card.get_by_test_id("stMetricValue").inner_text().strip()


def plotly_font_sizes(page) -> list[float]:
    return page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                         ".map(p => p._fullLayout && p._fullLayout.font.size)")


def test_stage_slider_moves_lambda_across_one(page, app_url, artifacts, idle, shoot) -> None:
    page.set_viewport_size(PROJECTOR)
    page.goto(f"{app_url}/?present=1&lam=0.5&T=32")
    idle(page)
    stage = page.locator(".st-key-stage")
    assert stage.is_visible()
    assert stage.get_by_role("slider").count() == 3                     # λ, T, S on the page itself
    assert metric_value(page, "Optimal plan") == "Sequential BOOT"
    assert set(plotly_font_sizes(page)) == {22}                         # every figure at stage size
    page.screenshot(path=str(artifacts / "present_1280x720_lam0.5.png"))
    slider = stage.get_by_role("slider").first
    thumb = stage.get_by_test_id("stSliderThumbValue").first
    for _ in range(40):                          # 0.5 → 3 on the λ grid, one arrow key at a time
        if thumb.inner_text().strip() == "3":
            break
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(150)
    idle(page)
    assert thumb.inner_text().strip() == "3"
    assert metric_value(page, "Optimal plan") == "Vanilla"
    # the URL follows the widget after its rerun: poll it (a loaded machine may lag behind the thumb)
    page.wait_for_function(r"() => /[?&]lam=3(\.0)?(&|$)/.test(location.search)", timeout=30_000)
    assert re.search(r"[?&]lam=3(\.0)?(&|$)", page.url) and "present=1" in page.url, page.url
    page.screenshot(path=str(artifacts / "present_1280x720_lam3.png"))
    shoot(page, "present_1280_full_lam3")                              # the whole page, 1280 wide


def test_predict_then_reveal(page, app_url, artifacts, idle) -> None:
    page.set_viewport_size(PROJECTOR)
    page.goto(f"{app_url}/?predict=1&lam=5&T=32")
    idle(page)
    assert page.get_by_test_id("stMetric").count() == 0                 # the answer is hidden
    assert page.locator(".js-plotly-plot").count() == 0
    assert "predict=1" in page.url, page.url                             # the link keeps the mode
    page.screenshot(path=str(artifacts / "predict_question.png"))
    page.get_by_text("Sequential BOOT — merge one teacher step at a time").click()
    idle(page)
    page.get_by_role("button", name="Reveal the answer").click()
    idle(page)
    text = " ".join(page.get_by_test_id("stAlert").all_inner_texts())
    assert "Not quite" in text and "Vanilla" in text and "undershoots" in text, text
    assert metric_value(page, "Optimal plan") == "Vanilla"
    page.screenshot(path=str(artifacts / "predict_revealed.png"))


@pytest.mark.parametrize("path", ["/sfd", "/celeba"])
def test_first_view_shows_the_reference_run(page, app_url, shoot, idle, path: str) -> None:
    page.set_viewport_size(PROJECTOR)
    page.goto(app_url + path)
    idle(page)
    assert page.get_by_test_id("stException").count() == 0
    assert "Reference run" in page.inner_text("body")
    assert page.get_by_test_id("stSidebar").get_by_role("slider").count() == (0 if path == "/sfd" else 2)
    shoot(page, f"reference_{path.strip('/')}_1280")
