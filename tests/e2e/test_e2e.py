"""End-to-end: the dashboard in Debian chromium against a real `streamlit run`."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e

PAGES = ["phase", "operators", "playground", "spectrum", "experiments", "train", "celeba", "sfd", "mixtures",
         "practice", "about"]


def metric_value(page, label: str) -> str:
    card = page.get_by_test_id("stMetric").filter(has_text=label).first
    return card.get_by_test_id("stMetricValue").inner_text().strip()


def test_lambda_slider_flips_the_optimal_plan_and_updates_the_url(page, app_url, artifacts, idle) -> None:
    page.goto(f"{app_url}/?lam=0.5&T=32")
    idle(page)
    assert metric_value(page, "Optimal plan") == "Sequential BOOT"
    page.screenshot(path=str(artifacts / "e2e_home_lam0.5.png"), full_page=True)
    slider = page.get_by_test_id("stSidebar").get_by_role("slider").first
    slider.focus()
    for _ in range(16):                     # 0.5 → 3 on the λ grid, one keyboard step at a time
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(500)
    idle(page)
    assert metric_value(page, "Optimal plan") == "Vanilla"
    assert re.search(r"[?&]lam=3(\.0)?(&|$)", page.url), page.url
    assert "T=" not in page.url or "T=32" in page.url       # T = 32 is the default: a link may omit it
    page.screenshot(path=str(artifacts / "e2e_home_lam3.png"), full_page=True)


def test_a_value_at_the_start_of_a_sliders_range_stays_in_the_url(page, app_url, idle) -> None:
    """λ = 0.05 and T = 2 are the sliders' first values: the address keeps them (a bound widget drops
    only its own default, which is the parameter's default), so the link reloads as shown."""
    page.goto(f"{app_url}/?lam=0.05&T=2")
    idle(page)
    assert "lam=0.05" in page.url and "T=2" in page.url, page.url
    page.reload()
    idle(page)
    sidebar = page.get_by_test_id("stSidebar")
    assert sidebar.get_by_role("slider").first.get_attribute("aria-valuetext") == "0.05"


def test_shared_url_restores_state(page, app_url, idle) -> None:
    page.goto(f"{app_url}/?lam=5&T=16")
    idle(page)
    assert metric_value(page, "Optimal plan") == "Vanilla"
    assert page.locator(".js-plotly-plot").count() >= 3


def test_bad_url_shows_a_warning(page, app_url, idle) -> None:
    page.goto(f"{app_url}/?lam=-1&T=abc")
    idle(page)
    text = page.get_by_test_id("stAlert").all_inner_texts()
    assert any("lam" in t for t in text) and any("T" in t for t in text)
    assert metric_value(page, "Optimal plan") == "Sequential BOOT"


@pytest.mark.parametrize("name", PAGES)
def test_screenshot_every_page(page, app_url, idle, shoot, name: str) -> None:
    path = {"phase": "/", "playground": "/playground?T=6"}.get(name, f"/{name}")
    page.goto(app_url + path)
    idle(page)
    assert page.get_by_test_id("stException").count() == 0
    assert "Page not found" not in page.inner_text("body")
    shoot(page, f"page_{name}")


def test_presentation_mode(page, app_url, artifacts, idle) -> None:
    page.goto(f"{app_url}/?present=1")
    idle(page)
    assert metric_value(page, "Optimal plan") == "Sequential BOOT"
    page.screenshot(path=str(artifacts / "present_home.png"), full_page=False)


def test_preset_button_sets_state_and_url(page, app_url, idle) -> None:
    page.goto(app_url + "/")
    idle(page)
    page.get_by_test_id("stSidebar").get_by_text("Far above", exact=True).click()
    page.wait_for_timeout(500)
    idle(page)
    assert metric_value(page, "Optimal plan") == "Vanilla"
    assert "preset=" in page.url and "lam=5" in page.url, page.url
    page.locator(".st-key-reset button").click()
    page.wait_for_timeout(500)
    idle(page)
    assert metric_value(page, "Optimal plan") == "Sequential BOOT"
    assert "preset=" not in page.url and "lam=5" not in page.url, page.url
