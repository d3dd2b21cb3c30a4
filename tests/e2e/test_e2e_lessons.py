"""End-to-end: a lesson in Debian chromium — open a step by URL, move with → and the Next button, answer
the question and see the reveal; ←/→ on a focused slider still move the slider; a 1280×720 screenshot
of a step in presentation mode (test-artifacts/lesson_present.png)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def where(page) -> str:
    return page.locator(".st-key-lesson_bar .lesson-where").inner_text().strip()


def press_with_nothing_focused(page, key: str) -> None:
    """Blur any control, wait for the lesson's key listener (its hidden iframe mounts after the page is
    idle: a key pressed before that goes nowhere, as for a user), then press ``key``."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.wait_for_function("() => !!window.__opmergeLessonKeys", timeout=30_000)
    page.keyboard.press(key)


def answer_and_reveal(page, idle, choice: str):
    """Pick ``choice`` in the step's question, press Reveal; returns the question's box."""
    box = page.locator(".st-key-lesson_question")
    for target in (box.get_by_text(choice), box.get_by_role("button", name="Reveal the answer")):
        target.click()
        page.wait_for_timeout(300)
        idle(page)
    return box


def test_lesson_navigation_question_and_reveal(page, app_url, artifacts, idle) -> None:
    page.goto(f"{app_url}/?lesson=phase-transition&step=3")
    idle(page)
    assert where(page).endswith("step 3 of 9")
    assert page.locator("h1").filter(has_text="Plan playground").count() == 1
    press_with_nothing_focused(page, "ArrowRight")
    page.wait_for_timeout(500)
    idle(page)
    assert where(page).endswith("step 4 of 9")
    assert "lesson=phase-transition" in page.url and "step=4" in page.url
    assert page.locator("h1").filter(has_text="The phase transition of operator merging").count() == 1
    thumbs = page.get_by_test_id("stSidebar").get_by_test_id("stSliderThumbValue").all_inner_texts()
    assert thumbs[:2] == ["0.5", "32"], thumbs                      # the step's λ and T

    # the question of step 4 asks about λ = 3: pick, reveal, see the answer and its figure
    box = answer_and_reveal(page, idle, "Sequential BOOT — merge one teacher step at a time")
    revealed = box.get_by_test_id("stAlert").inner_text()
    assert "Answer: Vanilla" in revealed and "Not quite" in revealed and "undershoots" in revealed
    assert box.locator(".js-plotly-plot").count() == 1

    # ←/→ on a focused slider move the slider, not the lesson
    slider = page.get_by_test_id("stSidebar").get_by_role("slider").first
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(500)
    idle(page)
    assert where(page).endswith("step 4 of 9")
    assert page.get_by_test_id("stSidebar").get_by_test_id("stSliderThumbValue").first.inner_text() == "0.6"

    page.locator(".st-key-lesson_next button").click()
    page.wait_for_timeout(300)
    idle(page)
    assert where(page).endswith("step 5 of 9")
    assert page.get_by_test_id("stSidebar").get_by_test_id("stSliderThumbValue").first.inner_text() == "3"
    press_with_nothing_focused(page, "ArrowLeft")
    page.wait_for_timeout(500)
    idle(page)
    assert where(page).endswith("step 4 of 9")
    assert page.get_by_test_id("stException").count() == 0


def test_a_revealed_reason_renders_its_math(page, app_url, artifacts, idle) -> None:
    """The reason is markdown with inline LaTeX: symbols such as A*_t and r_{t-1} are typeset, never
    eaten by markdown emphasis."""
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{app_url}/?lesson=phase-transition&step=1")
    idle(page)
    alert = answer_and_reveal(page, idle, "the teacher shrinks the signal").get_by_test_id("stAlert")
    assert "Right!" in alert.inner_text()
    assert alert.locator(".katex").count() >= 4 and alert.locator("em").count() == 0
    alert.screenshot(path=str(artifacts / "lesson_revealed_reason.png"))


def test_lesson_step_in_presentation_mode(browser, app_url, artifacts, idle) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.goto(f"{app_url}/?lesson=phase-transition&step=5&present=1")
    idle(page)
    assert where(page).endswith("step 5 of 9")
    assert "present=1" in page.url
    size = page.evaluate("""() => parseFloat(getComputedStyle(document.querySelector(
        '.st-key-lesson_bar [data-testid="stMarkdownContainer"] p')).fontSize)""")
    assert size >= 26, size                                          # large narrative on stage
    page.screenshot(path=str(artifacts / "lesson_present.png"))
    page.goto(f"{app_url}/lessons?present=1")
    idle(page)
    assert page.get_by_text("Few-step distillation in practice").count() >= 1
    page.screenshot(path=str(artifacts / "lesson_index_present.png"))
    context.close()
