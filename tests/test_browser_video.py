"""The Video tab in a real browser: upload a generated clip, get a video that plays, a plot, records.

The server, browser and helpers are tests/browser_helpers.py's; the clip is made here with PyAV.
"""

from __future__ import annotations

import pytest
from browser_helpers import FIRST_RESULT_MS, UI_MS
from video_clips import astronaut_frames, write_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def video_page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-analyze").wait_for(timeout=UI_MS)
    yield page
    context.close()


def analyze(page, path) -> str:
    page.locator("#video-input input[type=file]").set_input_files(str(path))
    page.locator("#video-input video").first.wait_for(timeout=UI_MS)  # the upload's preview
    page.locator("#video-analyze").click()
    page.wait_for_function("() => { const s = document.querySelector('#video-summary');"
                           " return s && /frames analysed|Could not/.test(s.innerText); }", timeout=FIRST_RESULT_MS)
    return page.locator("#video-summary").inner_text()


def test_the_tab_starts_with_words_not_markdown(video_page):
    """Issue 22, defect 5: the summary (HTML) showed "then press **Analyze video**."."""
    summary = video_page.locator("#video-summary")
    assert "then press Analyze video." in summary.inner_text() and "**" not in summary.inner_text()
    assert summary.locator("strong", has_text="Analyze video").count() == 1


def test_a_clip_gives_an_annotated_video_that_plays_a_plot_and_records(video_page, tmp_path, artifacts):
    clip = write_clip(tmp_path / "clip.mp4", astronaut_frames(20), fps=10)
    summary = analyze(video_page, clip)
    assert summary.startswith("10 frames analysed at 5 frames/s") and "mostly happy" in summary, summary
    player = video_page.locator("#video-annotated video")
    player.wait_for(timeout=UI_MS)
    # The browser decodes it (H.264 in MP4): its metadata loads and it lasts as long as the clip.
    duration = player.evaluate("v => new Promise(ok => { if (v.readyState >= 1) ok(v.duration);"
                               " v.addEventListener('loadedmetadata', () => ok(v.duration)); })")
    assert duration == pytest.approx(2.0, abs=0.3)
    video_page.locator("#video-timeline img, #video-timeline svg, #video-timeline canvas").first.wait_for(timeout=UI_MS)
    links = video_page.locator("#video-files a[href]")
    names = sorted(links.nth(i).get_attribute("href").rsplit("/", 1)[-1] for i in range(links.count()))
    assert names == ["fer_video.csv", "fer_video.json"]
    video_page.screenshot(path=str(artifacts / "video_tab.png"), full_page=True)


def test_a_file_that_is_not_a_video_is_said_once_in_the_summary(video_page, tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_text("not a video\n")
    video_page.locator("#video-input input[type=file]").set_input_files(str(bad))
    video_page.locator("#video-analyze").click()
    video_page.locator("#video-summary .fer-error").wait_for(timeout=FIRST_RESULT_MS)
    text = video_page.locator("#video-summary").inner_text()
    assert "Could not analyse this video." in text and "not a video" in text
    # Said once: no toast repeats it (gr.Video's own preview may toast "Video not playable").
    toasts = video_page.locator(".toast-body")
    assert not any("not a video" in toasts.nth(i).inner_text() for i in range(toasts.count()))


def test_a_codec_the_browser_cannot_preview_is_no_error(video_page, tmp_path, artifacts):
    """Issue 22, defect 4: an MP4 with MPEG-4 Part 2 video (OpenCV's "mp4v") got a red "Video not
    playable" toast and an "Error" badge on upload, which stayed after the analysis succeeded."""
    clip = write_clip(tmp_path / "mp4v.mp4", astronaut_frames(20), fps=10, codec="mpeg4")
    video_page.locator("#video-input input[type=file]").set_input_files(str(clip))
    video_page.locator("#video-summary").get_by_text("No preview").wait_for(timeout=UI_MS)
    assert "MPEG-4 Part 2" in video_page.locator("#video-summary").inner_text()
    video_page.locator("#video-analyze").click()
    video_page.wait_for_function("() => /frames analysed|Could not/.test("
                                 "document.querySelector('#video-summary').innerText)", timeout=FIRST_RESULT_MS)
    assert video_page.locator("#video-summary").inner_text().startswith("10 frames analysed")
    # Nothing on the page calls it an error: no toast, no badge on the input.
    assert video_page.locator(".toast-body").all_inner_texts() == []
    assert "Error" not in video_page.locator("#video-input").inner_text()
    video_page.screenshot(path=str(artifacts / "video_mp4v.png"), full_page=True)
