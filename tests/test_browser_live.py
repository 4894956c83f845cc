"""The Live tab in a real browser: Chromium's fake webcam streams a numbered video of the astronaut.

The server, browser and helpers are tests/browser_helpers.py's; the video and the way to start
streaming are benchmarks/live.py's (its frames carry their number, so every frame differs).
"""

from __future__ import annotations

import re
import time

import pytest
from browser_helpers import (
    ASTRONAUT,
    FIRST_RESULT_MS,
    UI_MS,
    fake_camera_page,
    upload,
    visit,
    wait_for_result,
)

from benchmarks.live import COUNT_SENT_JS, start_streaming, write_counter_y4m
from fer_demo.model import EMOTIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


def shown_frame(page) -> int | None:
    """The number (``data-frame``) of the annotated frame on screen; None before the first."""
    value = page.evaluate("() => { const e = document.querySelector('#live-frame .fer-live-frame');"
                          " return e ? e.dataset.frame : null; }")
    return None if value is None else int(value)


def frames_seen(page, n: int, timeout_s: float) -> list[int]:
    """Poll the shown frame until ``n`` different ones were seen (or ``timeout_s`` passed)."""
    seen: list[int] = []
    end = time.monotonic() + timeout_s
    while len(seen) < n and time.monotonic() < end:
        frame = shown_frame(page)
        if frame is not None and (not seen or frame != seen[-1]):
            seen.append(frame)
        time.sleep(0.05)
    return seen


def test_live_stream_answers_labelled_frames_while_photos_are_still_served(
        playwright_instance, chromium, url, artifacts, tmp_path):  # noqa: F811 (test_browser's fixtures)
    video = tmp_path / "counter.y4m"
    write_counter_y4m(ASTRONAUT, video, frames=40)
    browser, context, page = fake_camera_page(playwright_instance, chromium, url, video)
    try:
        page.get_by_role("tab", name="Live").wait_for(timeout=UI_MS)
        start_streaming(page, UI_MS)
        page.locator("#live-frame .fer-live-frame").wait_for(timeout=FIRST_RESULT_MS)
        seen = frames_seen(page, 5, FIRST_RESULT_MS / 1000)
        assert len(seen) >= 5 and seen == sorted(seen), seen  # new frames keep coming, in order
        alt = page.locator("#live-frame img").get_attribute("alt")
        assert re.fullmatch(r"The webcam frame, each face boxed with its number and expression: face \d+: \w+ \d+%",
                            alt), alt  # one face, boxed and labelled
        assert page.locator("#live-frame img").evaluate("e => e.src.startsWith('data:image/jpeg')")
        face = page.locator("#live-face").inner_text()
        assert all(e in face for e in EMOTIONS), face  # the bars
        assert page.locator("#live-face svg polyline").count() == len(EMOTIONS)  # the plot
        assert "frames/s answered" in page.locator("#live-status").inner_text()
        page.screenshot(path=str(artifacts / "app_live.png"), full_page=True)

        # Another visitor's photo is analysed while this one streams (separate concurrency groups).
        other, photo_page = visit(browser, url)
        upload(photo_page, ASTRONAUT)
        assert len(wait_for_result(photo_page)["faces"]) == 1
        other.close()
        assert len(frames_seen(page, 2, FIRST_RESULT_MS / 1000)) == 2  # and the stream still runs

        # Stop: the frame settles (a running stream shows a new one several times a second; the frame in
        # flight may still land, however slow the machine), then no new frame comes.
        page.locator("#live-webcam button[aria-label='capture photo']").click()
        last, since, deadline = shown_frame(page), time.monotonic(), time.monotonic() + 120
        while time.monotonic() - since < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
            now = shown_frame(page)
            if now != last:
                last, since = now, time.monotonic()
        assert time.monotonic() - since >= 5, "frames kept coming after Stop"
        time.sleep(5)
        assert shown_frame(page) == last
        context.close()
    finally:
        browser.close()


def test_with_the_heatmap_the_stream_keeps_answering_the_newest_frames(
        playwright_instance, chromium, url, tmp_path):  # noqa: F811 (test_browser's fixtures)
    """The page posts on its own timer (``limits.LIVE_STREAM_EVERY_S``) and the server answers the newest
    frame each time: with the slower heatmap on, answers keep coming, in order (never an older frame
    after a newer one), and the page posts at least as many frames as the server analyses."""
    video = tmp_path / "counter.y4m"
    write_counter_y4m(ASTRONAUT, video, frames=40)
    browser, context, page = fake_camera_page(playwright_instance, chromium, url, video)
    try:
        context.add_init_script(COUNT_SENT_JS)  # counts the frames the page posts
        page.reload()
        page.get_by_role("tab", name="Live").wait_for(timeout=UI_MS)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-cam input[type=checkbox]").check()
        start_streaming(page, UI_MS)
        page.locator("#live-frame .fer-live-frame").wait_for(timeout=FIRST_RESULT_MS)
        first = shown_frame(page)
        seen = frames_seen(page, 10, FIRST_RESULT_MS / 1000)
        assert len(seen) >= 10 and seen == sorted(seen), seen  # new frames keep coming, in order
        assert "frames/s answered" in page.locator("#live-status").inner_text()
        answered = seen[-1] - first + 1  # data-frame counts the frames the server analysed
        assert len(page.evaluate("window.__live.sent")) >= answered
        page.locator("#live-webcam button[aria-label='capture photo']").click()
        context.close()
    finally:
        browser.close()
