"""Accessibility in a real browser (Chromium): axe-core on every tab before and after a result, alt
text on every result image, faces told apart by number, and the page used with the keyboard alone.

axe-core comes bundled in ``axe-playwright-python`` (requirements-dev.txt): nothing is downloaded
when the tests run. Issue 22's floor: no violation of impact "serious" or "critical" from the app's
own markup. What remains in Gradio's own components (gradio 6.31.0, the newest release when this was
written) is excluded below, selector by selector, each with what is wrong.
"""

from __future__ import annotations

import re

import pytest
from browser_helpers import EXAMPLES, FIRST_RESULT_MS, UI_MS, visit, wait_for_result
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from video_clips import astronaut_frames, write_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

# Gradio's own markup that axe-core flags, excluded by exactly these selectors:
GRADIO_EXCLUDED = [
    # aria-prohibited-attr (serious): an output with no value yet (gr.Video, gr.Plot, gr.File, gr.JSON)
    # shows Gradio's placeholder <div class="empty" aria-label="Empty value">, a div without a role,
    # on which aria-label is not allowed.
    ['.empty[aria-label="Empty value"]'],
    # button-name (critical): a static gr.Image wraps its picture in a <button> (it opens the
    # fullscreen view) that has no text or aria-label; the <img> inside has its alt from the label.
    ["#reliability-diagram .image-container > button"],
]
SERIOUS = ("serious", "critical")


def axe_violations(page) -> list[str]:
    """Serious and critical axe-core violations on what the page shows now, as "rule: selector" lines."""
    from axe_playwright_python.sync_playwright import Axe

    response = Axe().run(page, context={"exclude": GRADIO_EXCLUDED},
                         options={"resultTypes": ["violations"]}).response
    return [f"{v['id']} ({v['impact']}): {node['target']} {node['any'][0].get('data') if node['any'] else ''}"
            for v in response["violations"]
            if v["impact"] in SERIOUS for node in v["nodes"]]


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.get_by_role("tab", name=name, selected=True).wait_for(timeout=UI_MS)


def test_axe_finds_nothing_serious_on_any_tab_before_and_after_a_result(browser, url, tmp_path, artifacts):
    context, page = visit(browser, url, {"width": 1366, "height": 900})
    try:
        found = {"Analyze, before": axe_violations(page)}
        page.locator("#photo input[type=file]").set_input_files(str(EXAMPLES / "group_three_faces.jpg"))
        wait_for_result(page)
        found["Analyze, a result"] = axe_violations(page)
        page.locator("#summary").get_by_text("test-time augmentation").wait_for(timeout=UI_MS)
        for tab in ("Live", "About"):
            open_tab(page, tab)
            found[tab] = axe_violations(page)
        open_tab(page, "Model")
        reliability = page.locator("#reliability-diagram img").first
        reliability.wait_for(timeout=UI_MS)
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=reliability.element_handle(),
                               timeout=UI_MS)
        found["Model"] = axe_violations(page)
        open_tab(page, "Video")
        found["Video, before"] = axe_violations(page)
        clip = write_clip(tmp_path / "clip.mp4", astronaut_frames(10), fps=10)
        page.locator("#video-input input[type=file]").set_input_files(str(clip))
        page.locator("#video-input video").first.wait_for(timeout=UI_MS)
        page.locator("#video-analyze").click()
        page.locator("#video-files a[href]").first.wait_for(timeout=FIRST_RESULT_MS)
        found["Video, a result"] = axe_violations(page)
        assert {k: v for k, v in found.items() if v} == {}
    finally:
        context.close()


def test_every_result_image_has_alt_text_and_faces_are_numbered(page):
    """Alt text on every result image, naming its face; a face is told apart by its number, not
    only by its colour (the number on its box, in its card's badge and in every alt text)."""
    page.locator("#photo input[type=file]").set_input_files(str(EXAMPLES / "group_three_faces.jpg"))
    result = wait_for_result(page)
    n = len(result["faces"])
    assert n == 3
    photo_alt = page.locator("#annotated img").get_attribute("alt")
    assert photo_alt.startswith("The photo with 3 numbered face boxes")
    assert all(f"face {i + 1}: {f['label']}" in photo_alt for i, f in enumerate(result["faces"]))
    cards = page.locator("#face-cards .fer-card")
    for i in range(n):
        card = cards.nth(i)
        assert card.locator(".fer-badge").inner_text() == str(i + 1)
        alts = card.locator("img").evaluate_all("els => els.map(e => e.getAttribute('alt') || '')")
        assert len(alts) == 5, alts  # seen by the network; face and heatmap; photo region and heatmap
        assert all(re.search(rf"\bface {i + 1}\b", alt) for alt in alts), alts
        assert sum("heatmap" in alt for alt in alts) == 2 and any("48 by 48" in alt for alt in alts), alts


def focus(page, selector: str, text: str | None = None, presses: int = 80) -> None:
    """Press Tab until the focused element matches ``selector`` (and shows ``text``): keys only."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("([sel, text]) => { const e = document.activeElement;"
                         " return !!e && e.matches(sel) && (text === null || e.innerText.trim() === text); }",
                         [selector, text]):
            return
    raise AssertionError(f"{selector} never got the focus in {presses} presses of Tab")


def test_the_page_works_with_the_keyboard_alone(browser, url, artifacts):
    """Issue 22: upload (the file chooser opened by a key), an example, options and tabs, keys only."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    try:
        page.goto(url)
        page.locator("#analyze-button").wait_for(timeout=UI_MS)
        page.wait_for_function("() => [...document.querySelectorAll('#examples img')].length >= 5 &&"
                               " [...document.querySelectorAll('#examples img')].every(i => i.complete)", timeout=UI_MS)
        # Upload: Enter on the drop zone opens the system's file chooser (on a busy machine the first
        # press may come before the page is ready for it: press again, as a person would).
        focus(page, "#photo button[aria-label^='Drop an image']")
        chooser = None
        for _ in range(3):
            try:
                with page.expect_file_chooser(timeout=10_000) as opened:
                    page.keyboard.press("Enter")
                chooser = opened.value
                break
            except PlaywrightTimeout:
                continue
        assert chooser is not None, "Enter on the photo's drop zone never opened the file chooser"
        chooser.set_files(str(EXAMPLES / "astronaut.jpg"))
        page.locator("#summary").get_by_text("1 face found").wait_for(timeout=FIRST_RESULT_MS)
        # An example: Enter on its thumbnail.
        focus(page, "#examples button[aria-label^='Thumbnail 4']")  # "3 faces"
        page.keyboard.press("Enter")
        page.locator("#summary").get_by_text("3 faces found").wait_for(timeout=FIRST_RESULT_MS)
        # Options: a radio button with Space, a dropdown by typing and Enter.
        focus(page, "#tta input[value='flip']")
        page.keyboard.press("Space")
        page.locator("#summary").get_by_text("test-time augmentation: flip").wait_for(timeout=FIRST_RESULT_MS)
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.closest('#target') !== null")
        page.keyboard.type("sad")
        page.keyboard.press("Enter")
        page.locator("#summary").get_by_text("heatmaps explain: sad").wait_for(timeout=FIRST_RESULT_MS)
        assert page.locator("#face-cards .fer-card").count() == 3
        # Tabs: Enter on a tab shows its page.
        page.keyboard.press("Escape")
        focus(page, "#tabs [role=tab]", "About")
        page.keyboard.press("Enter")
        page.locator("#about").get_by_text("Responsible use").wait_for(timeout=UI_MS)
        page.screenshot(path=str(artifacts / "keyboard_about.png"))
    finally:
        context.close()
