"""The Live tab's page while it streams, on a phone: the answer right below the camera, no Gradio timer
flickering, a tag on the frame big enough to read (issue 22, defect 10). Chromium's fake webcam plays
benchmarks/live.py's numbered video of the astronaut, as in test_browser_live.py.
"""

from __future__ import annotations

import time

import pytest
from browser_helpers import ASTRONAUT, FIRST_RESULT_MS, UI_MS, fake_camera_page

from benchmarks.live import start_streaming, write_counter_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

PHONE = {"width": 390, "height": 844}
# Every visible progress text (Gradio's "0.0s", "processing | 0.1s") in the Live tab, as it appears.
RECORD_TIMERS_JS = """() => { window.ferTimers = [];
    new MutationObserver(() => document.querySelectorAll('[id^="live-"] .progress-text').forEach(e => {
        if (e.offsetParent !== null && e.innerText.trim()) window.ferTimers.push(e.innerText.trim()); }))
      .observe(document.body, {childList: true, subtree: true, characterData: true}); }"""


def test_on_a_phone_the_live_answer_is_below_the_camera_without_timers(playwright_instance, chromium, url,
                                                                       artifacts, tmp_path):
    video = tmp_path / "counter.y4m"
    write_counter_y4m(ASTRONAUT, video, frames=40)
    browser, context, page = fake_camera_page(playwright_instance, chromium, url, video)
    try:
        page.set_viewport_size(PHONE)
        page.get_by_role("tab", name="Live").wait_for(timeout=UI_MS)
        start_streaming(page, UI_MS)
        page.evaluate(RECORD_TIMERS_JS)
        page.locator("#live-frame .fer-live-frame img").wait_for(timeout=FIRST_RESULT_MS)
        time.sleep(3)  # a few dozen frames: any timer would have shown by now
        assert page.evaluate("window.ferTimers") == []
        # Camera, then the annotated frame and the face right after it (not 1.5 screens down).
        top = page.evaluate("sel => document.querySelector(sel).getBoundingClientRect().top + window.scrollY",
                            "#live-webcam")
        camera_bottom = page.evaluate("() => document.querySelector('#live-webcam').getBoundingClientRect().bottom"
                                      " + window.scrollY")
        frame_top = page.evaluate("() => document.querySelector('#live-frame').getBoundingClientRect().top"
                                  " + window.scrollY")
        options_top = page.evaluate("() => document.querySelector('#live-cam').getBoundingClientRect().top"
                                    " + window.scrollY")
        assert top < camera_bottom <= frame_top < camera_bottom + 60 < options_top, (top, camera_bottom, frame_top,
                                                                                     options_top)
        # The frame is shown the phone's width; its tag is drawn big enough to read there (tested in
        # pixels by test_frames); no sideways scrolling.
        alt = page.locator("#live-frame img").get_attribute("alt")
        assert alt.startswith("The webcam frame, each face boxed with its number and expression: face 1: "), alt
        width = page.locator("#live-frame img").evaluate("e => e.getBoundingClientRect().width")
        assert 300 <= width <= PHONE["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(artifacts / "live_phone.png"), full_page=True)
        context.close()
    finally:
        browser.close()
