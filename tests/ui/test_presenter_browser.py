"""The lesson on a projector, in Debian's chromium at 1280×720 (`?lesson=1&present=1`): every step shows the chart
or view it talks about, and the controls it asks for, without scrolling (each one's bounding box inside the
viewport); the presenter's keys move the lesson (→, PageDown, Space forward; ←, PageUp back), and a key typed
while a control has the focus stays with that control. Screenshots go to test-output/lesson/."""

from __future__ import annotations

import pytest

from benchmarks.lesson_steps import OUTPUT, PROJECTOR, named, on_screen, wait_for_step
from benchmarks.live_app import CHROMIUM_ARGS, IDLE
from obd.teach import lesson

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.timeout(1500)  # a step's first visit may compute its curves (obs, obd) on the test's fresh cache
def test_every_lesson_step_shows_its_chart_and_controls_at_1280x720_and_keys_move_it(server, chromium):
    from playwright.sync_api import sync_playwright

    forward = ["ArrowRight", "PageDown", " "]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PROJECTOR)
            page.goto(f"{server.url}/?lesson=1&present=1", timeout=60_000)
            off = {}
            for n in range(1, len(lesson.STEPS) + 1):
                if n > 1:
                    page.keyboard.press(forward[n % len(forward)])  # each key in turn
                    page.wait_for_url(f"**lesson={n}**", timeout=30_000)
                wait_for_step(page, n)
                # the step as after `warm`: its view's curves computed (while they run, the chart redraws itself)
                page.wait_for_function(
                    "() => !document.querySelector(\"[data-testid='stTabPanel'] [data-testid='stProgress']\")",
                    timeout=600_000,
                )
                page.wait_for_selector(IDLE, timeout=120_000)
                page.wait_for_timeout(300)  # plotly's layout pass after the run
                OUTPUT.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(OUTPUT / f"test-step{n}.png"))
                missing = [what for what, selector in named(lesson.STEPS[n - 1]) if not on_screen(page, selector)[0]]
                if missing:
                    off[n] = missing
                assert page.locator("[data-testid='stException']").count() == 0, f"step {n} raised"
            assert not off, f"not on screen at 1280x720: {off}"
            last = len(lesson.STEPS)
            page.keyboard.press("ArrowLeft")
            page.wait_for_url(f"**lesson={last - 1}**", timeout=30_000)
            wait_for_step(page, last - 1)
            page.keyboard.press("PageUp")
            page.wait_for_url(f"**lesson={last - 2}**", timeout=30_000)
            wait_for_step(page, last - 2)
            slider = page.get_by_role("slider").first  # a control's own arrow keys stay with it
            slider.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(1500)
            assert f"lesson={last - 2}" in page.url
        finally:
            browser.close()


def test_a_shared_link_on_a_phone_shows_the_slider_and_the_accuracy_on_its_first_screen(server, chromium):
    from playwright.sync_api import sync_playwright

    phone = {"width": 390, "height": 844}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=phone, is_mobile=True, has_touch=True)
            page.goto(f"{server.url}/?mode=unit&sparsity=90", timeout=60_000)
            page.wait_for_selector("[data-testid='stMetricValue']", timeout=240_000)
            page.wait_for_selector(IDLE, timeout=240_000)
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "phone.png"))
            slider, accuracy = ".st-key-phone [data-testid='stSlider']", "[data-testid='stMetric']:has-text('accuracy')"
            for what in (slider, accuracy):
                box = page.locator(what).first.bounding_box()
                assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= phone["height"], (what, box)
                assert box["x"] >= 0 and box["x"] + box["width"] <= phone["width"] + 0.5, (what, box)
            assert "90" in page.locator(slider).inner_text()
            folded = page.locator("[data-testid='stSidebar']").bounding_box()  # slid off the screen's left edge
            assert folded is None or folded["x"] + folded["width"] <= 1, ("the sidebar starts folded", folded)
        finally:
            browser.close()
