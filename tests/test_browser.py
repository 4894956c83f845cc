"""The app in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

The server runs in this process on a free port; the browser opens it as http://localhost (a
secure context, which the webcam needs). Screenshots go to test-artifacts/. The fixtures
(``chromium``, ``url``, ``browser``, ``page``) and page helpers are ``browser_helpers``'.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from app_helpers import fake_metrics, write_y4m
from browser_helpers import (
    ASTRONAUT,
    EXAMPLES,
    FIRST_RESULT_MS,
    UI_MS,
    current_result_href,
    fake_camera_page,
    ready,
    upload,
    visit,
    wait_for_result,
)
from gradio import utils as gradio_utils
from PIL import Image

from fer_demo.model import EMOTIONS
from fer_demo.ui.options import DEFAULT_CAM

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


def remove_photo(page) -> None:
    page.locator("#photo button[aria-label='Remove Image']").first.click()


def analyze_and_wait(page) -> dict:
    """Press Analyze (runs the current photo again) and return the new result."""
    old = current_result_href(page)
    page.locator("#analyze-button").click()
    return wait_for_result(page, old)


def broken_images(page, selector: str) -> list[str]:
    """The src (cut short) of every image under ``selector`` that did not load; [] when all did."""
    page.wait_for_function("sel => [...document.querySelectorAll(sel)].every(e => e.complete)", arg=selector,
                           timeout=UI_MS)
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.src.slice(0, 80))")


def check_cards(page, result: dict) -> None:
    """One card per face, in order, saying what the result says, every image loaded and readable."""
    faces = result["faces"]
    cards = page.locator("#face-cards .fer-card")
    assert cards.count() == len(faces)
    for i, face in enumerate(faces):
        card = cards.nth(i)
        text = card.inner_text()
        verdict = f"face {i + 1}: {face['label']} {face['confidence']:.0%}"
        if face["close_call"] and face["runner_up"]:  # a close call names both classes
            verdict += f" or {face['runner_up']} {face['probabilities'][face['runner_up']]:.0%}"
        assert verdict in text, (verdict, text)
        assert all(e in text for e in EMOTIONS)  # the probability bars, every class
        # Full captions, not cut off: every caption's text fits its box.
        assert card.locator("figcaption").evaluate_all(
            "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)") == []
        # A readable size: the face images are at least ~100 px wide on screen.
        widths = card.locator(".fer-stack").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
        assert widths and min(widths) >= 100, widths
        # Nothing sticks out of the card (cut off on a narrow screen).
        right = card.evaluate("e => e.getBoundingClientRect().right")
        edges = card.locator("figure, .fer-bars").evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
        assert max(edges) <= right + 0.5, (edges, right)
    assert broken_images(page, "#annotated img, #face-cards img") == []
    # The numbered photo names every verdict in its alt text; no image is a file on the server.
    assert page.locator("#annotated img").count() == 1
    srcs = page.locator("#annotated img, #face-cards img").evaluate_all("els => els.map(e => e.src)")
    assert all(src.startswith("data:image/") for src in srcs)


def check_face_shown(page, result: dict) -> None:
    assert len(result["faces"]) == 1, result
    face = result["faces"][0]
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    check_cards(page, result)
    assert "1 face found" in page.locator("#summary").inner_text()
    assert page.locator("#face-cards figure").count() == 3  # what the network sees, heatmap, in the photo
    table = page.locator("#faces-table").inner_text()
    assert all(e in table for e in EMOTIONS) and face["label"] in table


def test_an_uploaded_photo_is_analysed_at_once_with_a_card_per_face(page, artifacts):
    upload(page, ASTRONAUT)
    result = wait_for_result(page)  # no button pressed
    check_face_shown(page, result)
    assert result["image_size"] == list(Image.open(ASTRONAUT).size)
    legend = page.locator("#heatmap-legend").inner_text()  # the heatmaps' colour scale, in words
    assert "less evidence" in legend and "more evidence" in legend
    page.screenshot(path=str(artifacts / "app_analyze.png"), full_page=True)
    # The opacity slider changes the heatmaps in the browser (no new analysis).
    href = current_result_href(page)
    for value, expected in (("0", "0"), ("100", "1"), ("40", "0.4")):
        page.locator("#cam-opacity input[type=range]").fill(value)
        page.wait_for_function("v => getComputedStyle(document.querySelector('#face-cards .fer-heat')).opacity === v",
                               arg=expected, timeout=UI_MS)
    assert current_result_href(page) == href


def test_group_photo_numbered_left_to_right_each_face_its_colour(page, artifacts):
    upload(page, EXAMPLES / "group_three_faces.jpg")
    result = wait_for_result(page)
    faces = result["faces"]
    assert len(faces) == 3
    check_cards(page, result)
    lefts = [f["box"][0] for f in faces]
    assert lefts == sorted(lefts)  # numbered left to right, as people count them
    colours = page.locator("#face-cards .fer-card").evaluate_all(
        "els => els.map(e => getComputedStyle(e).borderLeftColor)")
    assert len(set(colours)) == 3  # a colour per face, also for two faces with the same label
    alt = page.locator("#annotated img").get_attribute("alt")
    assert all(f"face {i + 1}: {f['label']}" in alt for i, f in enumerate(faces))
    assert page.locator("#faces-table [role=row]").count() == 1 + 3  # header and one row per face
    page.screenshot(path=str(artifacts / "app_group.png"), full_page=True)
    # Clear empties every output and puts the summary and the table back as they started.
    page.get_by_role("button", name="Clear").click()
    page.locator("#summary").get_by_text("Upload a photo").wait_for(timeout=UI_MS)
    assert "faces found" not in page.locator("#summary").inner_text()
    header = page.locator("#faces-table").inner_text()
    assert "label" in header and "happy" in header and "1\t2\t3" not in header
    assert page.locator("#face-cards .fer-card").count() == 0 and page.locator("#annotated img").count() == 0
    assert current_result_href(page) is None


def record_card_counts(page) -> None:
    """From now on, note the number of face cards each time #face-cards changes (window.cardCounts)."""
    page.evaluate("""() => {
        window.cardCounts = [document.querySelectorAll('#face-cards .fer-card').length];
        new MutationObserver(() => window.cardCounts.push(document.querySelectorAll('#face-cards .fer-card').length))
            .observe(document.querySelector('#face-cards'), {childList: true, subtree: true});
    }""")


def test_options_photos_and_examples_rerun_and_no_stale_result_stays(page, artifacts):
    upload(page, ASTRONAUT)
    first = wait_for_result(page)
    # A changed option re-runs the photo (from the server's memory: the upload itself is gone).
    page.get_by_label("flip").check()
    flipped = wait_for_tta(page, "flip")
    assert flipped["faces"][0]["box"] == first["faces"][0]["box"]
    # A new photo: the astronaut's card goes before the three new ones come; never both, never stale.
    record_card_counts(page)
    remove_photo(page)
    upload(page, EXAMPLES / "group_three_faces.jpg")
    group = wait_for_result(page)
    page.wait_for_function("() => document.querySelectorAll('#face-cards .fer-card').length === 3", timeout=UI_MS)
    counts = page.evaluate("window.cardCounts")
    assert counts[0] == 1 and counts[-1] == 3 and set(counts) <= {0, 1, 3}, counts
    assert counts.index(3) > counts.index(0), counts  # emptied before the new result arrived
    assert len(group["faces"]) == 3
    # An example click shows that example's result; its thumbnails say which photo is which.
    thumbs = page.locator("#examples .thumbnail-item, #examples button.gallery-item")
    captions = page.locator("#examples").inner_text()
    assert "rotated" in captions and "Hopper" in captions
    # Read-only: no drop zone, no delete button.
    assert "Drop" not in captions and page.locator("#examples button[aria-label*='Clear']").count() == 0
    old = current_result_href(page)
    page.locator("#examples").get_by_text("astronaut", exact=True).click()
    example = wait_for_result(page, old)
    assert len(example["faces"]) == 1 and thumbs.count() >= 5
    check_cards(page, example)
    # The example's file survives being analysed: clicking it again still works.
    old = current_result_href(page)
    page.locator("#examples").get_by_text("3 faces", exact=True).click()
    assert len(wait_for_result(page, old)["faces"]) == 3
    old = current_result_href(page)
    page.locator("#examples").get_by_text("astronaut", exact=True).click()
    assert len(wait_for_result(page, old)["faces"]) == 1
    assert broken_images(page, "#examples img, #photo img") == []
    page.screenshot(path=str(artifacts / "app_example_clicked.png"), full_page=True)


def wait_for_tta(page, tta: str) -> dict:
    """Wait for a result made with test-time augmentation ``tta``; return it."""
    page.wait_for_function("tta => (document.querySelector('#summary') || {innerText: ''})"
                           ".innerText.includes('test-time augmentation: ' + tta)", arg=tta, timeout=FIRST_RESULT_MS)
    result = wait_for_result(page)
    assert result["settings"]["tta"] == tta
    return result


def choose(page, dropdown: str, option: str) -> None:
    """Pick ``option`` in the Gradio dropdown ``#dropdown`` as a visitor does."""
    page.locator(f"#{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_explaining_another_class_or_nothing_reruns_and_says_what_it_shows(page, artifacts):
    upload(page, ASTRONAUT)
    first = wait_for_result(page)
    # Another class to explain: the card says which, and an empty map is said in words, not drawn.
    choose(page, "target", "sad")
    page.locator("#face-cards figcaption", has_text="sad").first.wait_for(timeout=FIRST_RESULT_MS)
    sad = wait_for_result(page)
    assert sad["settings"]["target"] == "sad" and sad["faces"][0]["label"] == first["faces"][0]["label"]
    caption = page.locator("#face-cards figcaption").nth(1).inner_text()
    empty = page.locator("#face-cards .fer-heat").count() == 0
    assert caption == (f"{DEFAULT_CAM}: no evidence for sad in this face" if empty else f"{DEFAULT_CAM}: why sad"), caption
    page.screenshot(path=str(artifacts / "app_target_sad.png"), full_page=True)
    # No explanation: just the face (at a modest size) and the bars.
    choose(page, "cam", "none")
    page.wait_for_function("() => document.querySelectorAll('#face-cards figure').length === 1", timeout=FIRST_RESULT_MS)
    assert wait_for_result(page)["settings"]["cam"] is None
    width = page.locator("#face-cards .fer-stack").evaluate("e => e.getBoundingClientRect().width")
    assert 100 <= width <= 168
    assert page.locator("#face-cards img").count() == 1
    page.screenshot(path=str(artifacts / "app_no_explanation.png"), full_page=True)


def test_no_face_and_bad_file_say_so_once_and_the_app_stays_usable(page, artifacts, tmp_path):
    upload(page, EXAMPLES / "no_face_cat.jpg")
    page.locator("#summary").get_by_text("No face found").wait_for(timeout=FIRST_RESULT_MS)
    summary = page.locator("#summary").inner_text()
    assert "crop" in summary and "0.0 s" not in summary  # issue 22: "No face found (0.0 s)"
    assert re.search(r"No face found \(in (\d+ ms|\d+\.\d s)\)", summary), summary
    assert page.locator(".toast-body").count() == 0  # said on the page, not in a toast that follows the visitor

    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is a text file, not a photo\n")
    remove_photo(page)
    page.locator("#photo input[type=file]").set_input_files(str(bad))
    error = page.locator("#summary .fer-error")
    error.wait_for(timeout=FIRST_RESULT_MS)
    # One sentence after the heading, starting upper case (issue 22: "...photo. not an image").
    assert "Could not analyse this photo. Not an image (or an unsupported format)" in error.inner_text()
    # One message in one place: no error badge on the other outputs, nothing of an older result.
    assert page.get_by_text("not an image (or an unsupported format)").count() == 1
    for panel in ("#annotated", "#face-cards", "#faces-table", "#result-file"):
        assert "Error" not in page.locator(panel).inner_text(), panel
    assert page.locator("#face-cards .fer-card").count() == 0 and current_result_href(page) is None
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=str(artifacts / "app_bad_file.png"), full_page=True)

    remove_photo(page)
    upload(page, ASTRONAUT)
    check_face_shown(page, wait_for_result(page))
    assert page.locator("#summary .fer-error").count() == 0


def test_the_photo_does_not_stay_on_the_server_and_results_are_no_files(page, artifacts, tmp_path):
    """The upload is deleted once analysed; result images travel inside the page; re-runs still work."""
    photo = tmp_path / f"privacy-{os.urandom(4).hex()}.png"
    image = Image.open(ASTRONAUT).convert("RGB")
    image.paste((255, 0, 0), (0, 0, 8, 8))  # new bytes: nothing cached under this hash yet
    image.save(photo)
    uploads = Path(gradio_utils.get_upload_folder())
    upload(page, photo)
    first = wait_for_result(page)
    assert list(uploads.rglob(photo.name)) == []
    check_cards(page, first)  # every result image a data: URI
    # Analyze again (other settings too) without uploading it again: from the server's memory.
    again = analyze_and_wait(page)
    assert again["faces"][0]["box"] == first["faces"][0]["box"]
    page.screenshot(path=str(artifacts / "app_rerun_after_delete.png"), full_page=True)


def test_model_page_shows_metrics_confusion_and_per_class_table(page, artifacts):
    page.get_by_role("tab", name="Model").click()
    confusion = page.locator("#confusion-matrix img").first
    confusion.wait_for(timeout=UI_MS)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=confusion.element_handle(),
                           timeout=UI_MS)
    m = fake_metrics()
    headline = page.locator("#model-metrics").inner_text()
    assert f"Accuracy {m['accuracy']:.1%}" in headline and f"{m['num_images']:,}" in headline
    table = page.locator("#per-class-table")
    table.wait_for(timeout=UI_MS)
    text = table.inner_text()
    assert all(e in text for e in EMOTIONS)
    assert all(str(c["support"]) in text for c in m["per_class"].values())
    # Calibration: the reliability diagram loads, the text says what "80%" means.
    reliability = page.locator("#reliability-diagram img").first
    reliability.wait_for(timeout=UI_MS)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=reliability.element_handle(),
                           timeout=UI_MS)
    assert 'What "80%" means' in page.locator("#calibration-text").inner_text()
    # Faithfulness table with every method, and the model card (in its accordion).
    faith = page.locator("#faithfulness").inner_text()
    assert all(f in faith for f in ("gradcam", "hirescam", "random")) and "measures best" in faith
    page.get_by_text("Model card", exact=True).click()
    card = page.locator("#model-card")
    card.wait_for(timeout=UI_MS)
    card_text = card.inner_text()
    assert "Intended use" in card_text and "Out of scope" in card_text and "Known failure modes" in card_text
    # Honest about the split (one name, used to choose the epoch) and the model's weaknesses.
    assert "FER2013 PublicTest" in headline and "validation set rather than an unseen test" in headline
    assert "Known weaknesses" in headline
    assert "Confusion matrix (PublicTest)" in page.locator("#confusion-title").inner_text()
    page.get_by_text("Training curves", exact=True).click()
    history = page.locator("#history-table")
    history.wait_for(state="attached", timeout=UI_MS)
    cells = history.locator("td").evaluate_all("els => els.map(e => e.textContent.trim())")
    assert "1.7000" in cells and "1.00e-03" in cells, cells  # numbers for people: no 4.189053934176135e-08
    assert [c for c in cells if re.search(r"\.\d{5,}", c)] == []
    page_text = page.locator("body").inner_text()
    assert "shared/data" not in page_text and "fer-runs" not in page_text  # no path of the training machine
    page.screenshot(path=str(artifacts / "app_model.png"), full_page=True)


def test_about_page_has_limits_responsible_use_and_client_snippet(page):
    page.get_by_role("tab", name="About").click()
    about = page.locator("#about")
    about.get_by_text("Responsible use").wait_for(timeout=UI_MS)
    text = about.inner_text()
    assert "not a felt emotion" in text and "Privacy" in text and 'api_name="/predict"' in text
    # The client snippet names the address this page came from (not a hard-coded port).
    served = page.url.split("?")[0].rstrip("/") + "/"
    assert f'Client("{served}")' in text, (served, text[text.find("Client("):][:80])


def test_webcam_snapshot_is_analysed(playwright_instance, chromium, url, artifacts, tmp_path):
    video = tmp_path / "astronaut.y4m"
    write_y4m(ASTRONAUT, video)  # astronaut against the LEFT edge of a 640x480 frame
    browser, context, page = fake_camera_page(playwright_instance, chromium, url, video)
    try:
        ready(page)
        page.locator("#photo button[aria-label='Capture from camera']").click()
        page.get_by_text("Click to Access Webcam").click()
        page.locator("#photo video").wait_for(timeout=UI_MS)
        page.wait_for_function("() => { const v = document.querySelector('#photo video');"
                               " return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=UI_MS)
        page.locator("#photo button[aria-label='capture photo']").click()
        page.locator("#photo img").first.wait_for(timeout=UI_MS)
        result = wait_for_result(page)  # the snapshot is analysed at once
        check_face_shown(page, result)
        assert result["image_size"] == [640, 480]  # the camera frame, not a resized copy
        x1, _, x2, _ = result["faces"][0]["box"]
        # Gradio mirrors webcam snapshots by default (WebcamOptions(mirror=True)): the face that
        # is on the left of the camera frame arrives on the right.
        assert (x1 + x2) / 2 > 320
        page.screenshot(path=str(artifacts / "app_webcam.png"), full_page=True)
        context.close()
    finally:
        browser.close()


def test_every_image_still_loads_for_a_visitor_who_reloads_later(browser, url, artifacts, tmp_path):
    """Issue 13's defect: result images were content-named files deleted 30 s after display, the
    very files the cached examples served, so the page broke (HTTP 403) for later visitors. Result
    images are no files now; examples and an upload of an example's bytes, then time passes: rather
    than sleeping through the retention (files older than ``limits.DELETE_AFTER_S`` are deleted every
    ``DELETE_EVERY_S``), Gradio's own deletion pass runs as if every file were past its age."""
    import gc
    from urllib.parse import urlparse

    import gradio as gr
    from gradio.route_utils import delete_files_created_by_app

    first, page = visit(browser, url)
    old = current_result_href(page)
    page.locator("#examples").get_by_text("astronaut", exact=True).click()
    wait_for_result(page, old)
    copy = tmp_path / "astronaut.jpg"  # the same bytes as the example, uploaded
    copy.write_bytes(ASTRONAUT.read_bytes())
    remove_photo(page)
    upload(page, copy)
    wait_for_result(page)
    first.close()
    port = urlparse(url).port
    [served] = [b for b in gc.get_objects() if isinstance(b, gr.Blocks) and b.is_running and b.server_port == port]
    delete_files_created_by_app(served, age=None)  # age None: every file this app made, however new
    later, page = visit(browser, url)
    for attempt in ("first visit", "after a reload"):
        assert broken_images(page, "#examples img") == [], attempt
        old = current_result_href(page)
        page.locator("#examples").get_by_text("astronaut", exact=True).click()
        wait_for_result(page, old)
        assert broken_images(page, "#photo img, #annotated img, #face-cards img, #examples img") == [], attempt
        page.screenshot(path=str(artifacts / "app_later_visitor.png"), full_page=True)
        page.reload()
        ready(page)
    later.close()


PHONE = {"width": 390, "height": 844}


def test_on_a_phone_the_page_scrolls_to_readable_results(browser, url, artifacts):
    context, page = visit(browser, url, PHONE)
    try:
        page.evaluate("window.scrollTo(0, 0)")  # ready() opened the result accordion, far down
        page.wait_for_function("() => window.scrollY === 0", timeout=UI_MS)
        upload(page, EXAMPLES / "group_three_faces.jpg")
        result = wait_for_result(page)
        check_cards(page, result)
        # The results start ~1,300 px down, below the controls: the page scrolls to them.
        page.wait_for_function("() => Math.abs(document.querySelector('#summary').getBoundingClientRect().top) < 40",
                               timeout=UI_MS)
        assert page.evaluate("window.scrollY") > 500
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
        page.screenshot(path=str(artifacts / "app_phone_result.png"))  # what the phone shows, not the full page
        page.locator("#face-cards .fer-card").nth(2).scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "app_phone_cards.png"))
        # The Model page: the row-normalised confusion matrix fits the screen, its title is the page's.
        page.evaluate("window.scrollTo(0, 0)")
        page.get_by_role("tab", name="Model").click()
        plot = page.locator("#confusion-matrix img").first
        plot.wait_for(timeout=UI_MS)
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=plot.element_handle(), timeout=UI_MS)
        box = plot.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1
        assert "Confusion matrix (PublicTest)" in page.locator("#confusion-title").inner_text()
        plot.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "app_phone_model.png"))
    finally:
        context.close()


def monitor_records(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_each_photo_is_analysed_once(browser, monitored_url):
    """Issue 22, defect 1: a photo that replaced another was analysed twice (Gradio's Image fires
    ``change`` twice then). The monitoring log gets one record per analysed face: count them."""
    url, log = monitored_url
    context, page = visit(browser, url)
    try:
        steps = [("upload", "astronaut.jpg", 1), ("upload", "grace_hopper.jpg", 1),
                 ("upload", "group_three_faces.jpg", 3), ("example", "astronaut", 1), ("example", "3 faces", 3)]
        for how, name, faces in steps:
            old = current_result_href(page)
            if how == "upload":  # onto the photo already there, as a visitor drops the next one
                page.locator("#photo input[type=file]").set_input_files(str(EXAMPLES / name))
            else:
                page.locator("#examples").get_by_text(name, exact=True).click()
            assert len(wait_for_result(page, old)["faces"]) == faces, name
        # One more analysis, queued behind anything still pending (one analysis at a time): once it
        # is back, every analysis the steps started has been logged.
        analyze_and_wait(page)
        expected = sum(faces for *_, faces in steps) + 3
        assert monitor_records(log) == expected
    finally:
        context.close()


def test_a_tiff_gets_a_preview_in_the_photo_box(page, tmp_path, artifacts):
    """Issue 22, defect 3: a TIFF was analysed but its preview was a broken image (browsers do not
    show TIFF): the Photo box shows a PNG copy, and the analysis is the TIFF's."""
    tiff = tmp_path / f"scan-{os.urandom(4).hex()}.tif"
    Image.open(ASTRONAUT).save(tiff, "TIFF")
    page.locator("#photo input[type=file]").set_input_files(str(tiff))
    result = wait_for_result(page)
    assert len(result["faces"]) == 1 and result["image_size"] == list(Image.open(ASTRONAUT).size)
    page.wait_for_function("() => { const i = document.querySelector('#photo img');"
                           " return i && /\\.png/.test(i.src); }", timeout=UI_MS)
    assert broken_images(page, "#photo img") == []
    assert page.locator("#photo img").first.evaluate("i => i.naturalWidth") == Image.open(ASTRONAUT).width
    # The upload and its copy are gone from the server once analysed; a re-run works from memory.
    uploads = Path(gradio_utils.get_upload_folder())
    assert list(uploads.rglob(tiff.name)) == [] and list(uploads.rglob(tiff.with_suffix(".png").name)) == []
    assert len(analyze_and_wait(page)["faces"]) == 1
    page.screenshot(path=str(artifacts / "app_tiff.png"), full_page=True)


LINES_PER_CELL_JS = """els => els.map(e => { const r = document.createRange(); r.selectNodeContents(e);
    return new Set([...r.getClientRects()].filter(b => b.width > 0).map(b => Math.round(b.top))).size; })"""


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1366, "height": 900}], ids=["phone", "desktop"])
def test_model_page_tables_and_plots_read_on_a_phone_and_a_desktop(browser, url, artifacts, viewport):
    """Issue 22, defect 6: the faithfulness table wrapped one letter a line on a phone ("gradca m" on a
    desktop); the reliability diagram's label covered the plot; "Model card" had two names."""
    context, page = visit(browser, url, viewport)
    try:
        page.get_by_role("tab", name="Model").click()
        table = page.locator("#faithfulness table")
        table.wait_for(timeout=UI_MS)
        cells = table.locator("th, td")
        assert cells.count() > 10
        lines = cells.evaluate_all(LINES_PER_CELL_JS)
        assert max(lines) == 1, list(zip(cells.all_inner_texts(), lines))
        # The table scrolls inside its box; the page itself never sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        # The reliability diagram: nothing floats over the plot, its title is in the page above it.
        plot = page.locator("#reliability-diagram img").first
        plot.wait_for(timeout=UI_MS)
        plot.scroll_into_view_if_needed()
        covered = plot.evaluate("""img => { const b = img.getBoundingClientRect();
            return [[0.1, 0.05], [0.3, 0.05], [0.1, 0.3], [0.5, 0.5]].map(([fx, fy]) =>
                document.elementFromPoint(b.left + fx * b.width, b.top + fy * b.height))
                .filter(e => e !== img).map(e => e.outerHTML.slice(0, 80)); }""")
        assert covered == []
        assert "Reliability diagram" in page.locator("#reliability-title").inner_text()
        # One name for the model card.
        accordions = page.locator("#tabs button, #tabs .label-wrap").all_inner_texts()
        assert sum(t.strip().startswith("Model card") for t in accordions) == 1, accordions
        plot.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / f"model_{viewport['width']}.png"))
    finally:
        context.close()


def test_the_examples_are_in_view_on_a_laptop_screen(browser, url, artifacts):
    """Issue 22, defect 10: at 1366x900 the examples were below the fold."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    try:
        page.goto(url)
        thumbs = page.locator("#examples button[aria-label^='Thumbnail']")
        thumbs.first.wait_for(timeout=UI_MS)
        page.wait_for_function("() => document.querySelectorAll('#examples img').length >= 5 && "
                               "[...document.querySelectorAll('#examples img')].every(i => i.complete)", timeout=UI_MS)
        bottoms = thumbs.evaluate_all("els => els.map(e => e.getBoundingClientRect().bottom)")
        assert len(bottoms) == 5 and max(bottoms) <= 900, bottoms
        assert page.evaluate("window.scrollY") == 0
        page.screenshot(path=str(artifacts / "app_first_view_1366.png"))
    finally:
        context.close()
