"""The browser tests' shared set-up: Debian's Chromium through Playwright (never a downloaded
browser), the app served in the test process, and the page helpers every browser test module uses.

The fixtures are registered for the whole test folder by ``conftest.py``; the app (and Gradio) is
imported only when a browser test asks for the ``url`` fixture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ASTRONAUT = EXAMPLES / "astronaut.jpg"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FIRST_RESULT_MS = 120_000  # the first analysis loads lazily and the CPU may be shared
UI_MS = 30_000


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
    from app_helpers import make_release, serve

    import app
    from fer_demo.pipeline import Predictor

    page_release = make_release(tmp_path_factory.mktemp("release"), release_weights)
    demo = app.build_demo(Predictor(weights_path=release_weights), weights=page_release)
    with serve(demo) as address:
        yield address.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def monitored_url(release_weights, tmp_path_factory, chromium):
    """The app with monitoring on (what ``FER_MONITOR_LOG`` turns on): (address, the log's path).

    The log gets one record per analysed face, so a test can count the analyses the server ran.
    """
    from app_helpers import serve

    import app
    from fer_demo.monitor import MonitorLog
    from fer_demo.pipeline import Predictor

    log = tmp_path_factory.mktemp("monitor") / "monitor.jsonl"
    demo = app.build_demo(Predictor(weights_path=release_weights), weights=release_weights, monitor=MonitorLog(log))
    with serve(demo) as address:
        yield address.replace("127.0.0.1", "localhost"), log


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
    ready(page)
    yield page
    context.close()


RESULT_ACCORDION = "The result as JSON (boxes and probabilities, no pixels)"


def ready(page) -> None:
    """Wait for the app, then open the accordion with the result's download link (the tests read the
    result from there)."""
    page.locator("#analyze-button").wait_for(timeout=UI_MS)
    page.get_by_text(RESULT_ACCORDION).click()
    page.locator("#result-file").wait_for(timeout=UI_MS)


def upload(page, path: Path) -> None:
    """Put a photo in the Photo input (which starts its analysis)."""
    page.locator("#photo input[type=file]").set_input_files(str(path))
    page.locator("#photo img").first.wait_for(timeout=UI_MS)  # the preview of the upload


def current_result_href(page) -> str | None:
    link = page.locator("#result-file a[href]")
    return link.first.get_attribute("href") if link.count() else None


def wait_for_result(page, old_href: str | None = None) -> dict:
    """Wait until the page offers a result (a different one than ``old_href``); return its JSON."""
    page.wait_for_function("old => { const a = document.querySelector('#result-file a[href]');"
                           " return a && a.getAttribute('href') !== old; }", arg=old_href, timeout=FIRST_RESULT_MS)
    href = current_result_href(page)
    response = httpx.get(href if href.startswith("http") else page.url.rstrip("/") + "/" + href.lstrip("/"),
                         timeout=30)
    response.raise_for_status()
    return json.loads(response.text)


def fake_camera_page(playwright_instance, chromium: Path, url: str, video: Path):
    """A Chromium whose webcam plays ``video`` (Y4M), with camera permission: (browser, context, page)."""
    browser = launch(playwright_instance, chromium, "--use-fake-ui-for-media-stream",
                     "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.goto(url)
    return browser, context, page


def visit(browser, url: str, viewport: dict | None = None):
    """A new visitor (own browser context) on the app: (context, page), the page ready."""
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    ready(page)
    return context, page
