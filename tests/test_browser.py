"""The app in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

The server runs in this process on a free port; the browser opens it as http://localhost (a
secure context, which the webcam needs). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from app_helpers import fake_metrics, make_release, serve, write_y4m
from gradio import utils as gradio_utils
from PIL import Image

import app
from fer_demo.model import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ASTRONAUT = EXAMPLES / "astronaut.jpg"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FIRST_RESULT_MS = 120_000  # the first analysis loads lazily and the CPU may be shared
UI_MS = 30_000
OUTPUT_GRACE_S = 3  # result images are deleted this long after the page got them (the app's is longer)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def url(release_weights, tmp_path_factory, chromium):
    """The app: the real predictor on the shipped weights; the model page from a generated release."""
    from fer_demo.pipeline import Predictor

    page_release = make_release(tmp_path_factory.mktemp("release"), release_weights)
    demo = app.build_demo(Predictor(weights_path=release_weights), weights=page_release,
                          output_grace_s=OUTPUT_GRACE_S)
    with serve(demo) as address:
        yield address.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch(playwright_instance, chromium: Path, *extra_args: str):
    return playwright_instance.chromium.launch(executable_path=str(chromium), headless=True,
                                               args=["--no-sandbox", *extra_args])


@pytest.fixture(scope="module")
def browser(playwright_instance, chromium):
    b = launch(playwright_instance, chromium)
    yield b
    b.close()


@pytest.fixture
def page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.locator("#analyze-button").wait_for(timeout=UI_MS)
    yield page
    context.close()


def upload(page, path: Path) -> None:
    page.locator("#photo input[type=file]").set_input_files(str(path))
    page.locator("#photo img").first.wait_for(timeout=UI_MS)  # the preview of the upload


def analyze_and_wait(page, after: dict | None = None) -> dict:
    """Press Analyze, wait for the outputs, return the downloadable result JSON.

    ``after``: the previous result on this page; waits until a different one is offered.
    """
    old_href = page.locator("#result-file a[href]").first.get_attribute("href") if after else None
    page.locator("#analyze-button").click()
    page.locator("#faces-gallery img").first.wait_for(timeout=FIRST_RESULT_MS)
    link = page.locator("#result-file a[href]").first
    link.wait_for(state="attached", timeout=UI_MS)
    if old_href:
        page.wait_for_function("old => { const a = document.querySelector('#result-file a[href]');"
                               " return a && a.getAttribute('href') !== old; }", arg=old_href,
                               timeout=FIRST_RESULT_MS)
    href = link.get_attribute("href")
    response = httpx.get(href if href.startswith("http") else page.url.rstrip("/") + "/" + href.lstrip("/"),
                         timeout=30)
    response.raise_for_status()
    return json.loads(response.text)


def check_face_shown(page, result: dict) -> None:
    assert len(result["faces"]) == 1, result
    face = result["faces"][0]
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    caption = f"face 1: {face['label']} {face['confidence']:.0%}"
    assert caption in page.locator("#annotated").inner_text()  # the box's label in the legend
    bars = page.locator("#probabilities").inner_text()
    assert all(e in bars for e in EMOTIONS)
    assert "1 face found" in page.locator("#summary").inner_text()
    assert page.locator("#faces-gallery img").count() == 3  # input, heatmap, heatmap in the photo
    table = page.locator("#faces-table").inner_text()
    assert all(e in table for e in EMOTIONS) and face["label"] in table


def test_analyze_an_uploaded_photo(page, artifacts):
    upload(page, ASTRONAUT)
    result = analyze_and_wait(page)
    check_face_shown(page, result)
    assert result["image_size"] == list(Image.open(ASTRONAUT).size)
    for img in page.locator("#annotated img").all():  # photo and box mask actually decoded
        assert img.evaluate("el => el.complete && el.naturalWidth > 0")
    legend = page.locator("#heatmap-legend").inner_text()  # the heatmaps' colour scale, in words
    assert "less evidence" in legend and "more evidence" in legend
    page.screenshot(path=str(artifacts / "app_analyze.png"), full_page=True)


def test_group_photo_every_face_and_gallery_click(page, artifacts):
    upload(page, EXAMPLES / "group_three_faces.jpg")
    result = analyze_and_wait(page)
    faces = result["faces"]
    assert len(faces) == 3
    legend = page.locator("#annotated").inner_text()
    assert all(f"face {i + 1}: {f['label']} {f['confidence']:.0%}" in legend for i, f in enumerate(faces))
    assert page.locator("#faces-gallery img").count() == 9
    assert page.locator("#faces-table [role=row]").count() == 1 + 3  # header and one row per face
    # Clicking face 3's thumbnail shows face 3's probabilities.
    page.locator("#faces-gallery button.thumbnail-item, #faces-gallery .thumbnail-item").nth(6).click()
    page.locator("#probabilities").get_by_text("face 3: probabilities").wait_for(timeout=UI_MS)
    # Faces are numbered left to right, as people count them.
    lefts = [f["box"][0] for f in faces]
    assert lefts == sorted(lefts)
    # The results gallery is read-only: no drop zone, no delete button.
    gallery_text = page.locator("#faces-gallery").inner_text()
    assert "Drop" not in gallery_text and page.locator("#faces-gallery button[aria-label*='Clear']").count() == 0
    page.screenshot(path=str(artifacts / "app_group.png"), full_page=True)
    # Clear empties every output and puts the summary and the table back as they started.
    page.get_by_role("button", name="Clear").click()
    page.locator("#summary").get_by_text("Upload a photo").wait_for(timeout=UI_MS)
    assert "faces found" not in page.locator("#summary").inner_text()
    header = page.locator("#faces-table").inner_text()
    assert "label" in header and "happy" in header and "1\t2\t3" not in header
    assert page.locator("#faces-gallery img").count() == 0


def test_no_face_and_bad_file_keep_the_app_usable(page, artifacts, tmp_path):
    upload(page, EXAMPLES / "no_face_cat.jpg")
    page.locator("#analyze-button").click()
    page.get_by_text("No face found in this photo").first.wait_for(timeout=FIRST_RESULT_MS)
    page.locator("#summary").get_by_text("No face found").wait_for(timeout=UI_MS)

    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is a text file, not a photo\n")
    page.locator("#photo button[aria-label='Remove Image']").first.click()
    page.locator("#photo input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(1000)
    page.locator("#analyze-button").click()
    page.get_by_text("not an image (or an unsupported format)").first.wait_for(timeout=FIRST_RESULT_MS)
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=str(artifacts / "app_bad_file.png"), full_page=True)

    page.locator("#photo button[aria-label='Remove Image']").first.click()
    upload(page, ASTRONAUT)
    check_face_shown(page, analyze_and_wait(page))


def server_paths(page, selector: str) -> list[Path]:
    """Server-side paths of the images shown in ``selector`` (from their /file= URLs)."""
    srcs = page.locator(selector).evaluate_all("els => els.map(e => e.src)")
    return [Path(unquote(src.split("/file=", 1)[1].split("?")[0])) for src in srcs if "/file=" in src]


def test_photo_and_result_images_do_not_stay_on_the_server(page, artifacts, tmp_path):
    """The upload is deleted once analysed, result images soon after display; re-runs still work."""
    photo = tmp_path / f"privacy-{os.urandom(4).hex()}.png"
    image = Image.open(ASTRONAUT).convert("RGB")
    image.paste((255, 0, 0), (0, 0, 8, 8))  # new bytes: nothing cached under this hash yet
    image.save(photo)
    upload(page, photo)
    uploads = Path(gradio_utils.get_upload_folder())
    assert len(list(uploads.rglob(photo.name))) == 1  # uploaded, not yet analysed
    first = analyze_and_wait(page)
    assert list(uploads.rglob(photo.name)) == []
    shown = server_paths(page, "#annotated img") + server_paths(page, "#faces-gallery img")
    assert len(shown) >= 1 + 3  # photo (+ box masks) and three gallery images
    page.wait_for_timeout(OUTPUT_GRACE_S * 1000 + 2000)
    assert [p for p in shown if p.exists()] == []
    for img in page.locator("#annotated img, #faces-gallery img").all():  # still on screen
        assert img.evaluate("el => el.complete && el.naturalWidth > 0")
    # Other settings on the same photo without uploading it again (from the server's memory).
    page.locator("#photo").scroll_into_view_if_needed()
    page.get_by_label("flip").check()
    second = analyze_and_wait(page, after=first)
    assert second["settings"]["tta"] == "flip" and second["faces"][0]["box"] == first["faces"][0]["box"]
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
    browser = launch(playwright_instance, chromium, "--use-fake-ui-for-media-stream",
                     "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
        page = context.new_page()
        page.goto(url)
        page.locator("#analyze-button").wait_for(timeout=UI_MS)
        page.locator("#photo button[aria-label='Capture from camera']").click()
        page.get_by_text("Click to Access Webcam").click()
        page.locator("#photo video").wait_for(timeout=UI_MS)
        page.wait_for_function("() => { const v = document.querySelector('#photo video');"
                               " return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=UI_MS)
        page.locator("#photo button[aria-label='capture photo']").click()
        page.locator("#photo img").first.wait_for(timeout=UI_MS)
        result = analyze_and_wait(page)
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


@pytest.fixture(scope="module")
def cached_url(release_weights, tmp_path_factory, chromium, monkeypatch_module):
    """The app as ``python app.py`` runs it: examples cached at launch (here only the astronaut)."""
    from fer_demo.pipeline import Predictor

    monkeypatch_module.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path_factory.mktemp("examples-cache")))
    demo = app.build_demo(Predictor(weights_path=release_weights), weights=release_weights, examples=[str(ASTRONAUT)],
                          cache_examples=True, output_grace_s=OUTPUT_GRACE_S)
    with serve(demo) as address:
        yield address.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def all_images_loaded(page, selector: str) -> list[str]:
    """The src of every image under ``selector`` that did not load (empty when all did)."""
    imgs = page.locator(selector)
    imgs.first.wait_for(timeout=FIRST_RESULT_MS)
    page.wait_for_timeout(500)
    return imgs.evaluate_all("els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.src)")


EXAMPLE = ".gallery-item, [data-testid='examples'] button, .example"  # an example thumbnail


def visit(browser, url: str):
    """A new visitor (own browser context) on the app: (context, page), the page ready."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.locator("#analyze-button").wait_for(timeout=UI_MS)
    return context, page


def test_a_later_visitor_still_sees_the_cached_example_after_someone_analysed_it(browser, cached_url, artifacts,
                                                                                 tmp_path):
    """Issue 13's defect: result images are named by content, and a visitor's analysis of the
    astronaut writes the very files its cached example serves; deleting them after the grace
    period broke the example (HTTP 403) for everyone after. (Failed 2 of 3 runs before the fix.)"""
    import time

    first, page = visit(browser, cached_url)
    # Visitor 1 clicks the example (its cached result shows), then analyses it (the same result files)...
    page.locator(EXAMPLE).first.click()
    assert all_images_loaded(page, "#faces-gallery img") == []
    analyze_and_wait(page)
    # ... and an upload of the same bytes (the same files again).
    page.locator("#photo button[aria-label='Remove Image']").first.click()
    copy = tmp_path / "astronaut.jpg"
    copy.write_bytes(ASTRONAUT.read_bytes())
    upload(page, copy)
    analyze_and_wait(page)
    first.close()
    time.sleep(OUTPUT_GRACE_S + 3)  # the first visitor's result images are past their grace period
    later, page = visit(browser, cached_url)
    for attempt in ("first visit", "after a reload"):
        page.locator(EXAMPLE).first.click()
        assert all_images_loaded(page, "#annotated img") == [], attempt
        assert all_images_loaded(page, "#faces-gallery img") == [], attempt
        page.screenshot(path=str(artifacts / "app_cached_example_later_visitor.png"), full_page=True)
        page.reload()
        page.locator("#analyze-button").wait_for(timeout=UI_MS)
    later.close()
