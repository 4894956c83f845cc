"""The web app: find every face in a photo, name its expression, show what the model looked at.

    python app.py                  # serves http://localhost:7860 (PORT or GRADIO_SERVER_PORT to change)
    FER_WEIGHTS=path/to/model.safetensors python app.py

The UI only wires: ``fer_demo.pipeline.Predictor`` does the work (detect, align, classify, explain),
``fer_demo.ui`` turns its ``Prediction`` into Gradio outputs (``handler``, ``render``) and builds
the Model and About pages; this file lays the page out and launches. No model is loaded at import
time: ``build_demo`` takes a ready ``Predictor``, so tests can build the UI without a server (or
with a fake predictor).

Use from code (the API endpoint is ``/predict``; it returns the result as a dict):

    from gradio_client import Client, handle_file
    client = Client("http://localhost:7860/")
    result = client.predict(handle_file("examples/astronaut.jpg"), "gradcam", "predicted", "none",
                            api_name="/predict")
    result["faces"][0]["label"], result["faces"][0]["probabilities"]
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from fer_demo import limits
from fer_demo.monitor import NOTICE as MONITOR_NOTICE
from fer_demo.monitor import REFERENCE_NAME, MonitorLog
from fer_demo.ui.about import about_markdown, page_address
from fer_demo.ui.cards import CARDS_CSS, DEFAULT_OPACITY
from fer_demo.ui.handler import AnalyzeHandler
from fer_demo.ui.live_tab import LIVE_CSS, build_live_tab
from fer_demo.ui.model_page import MODEL_CSS, ModelInfo, build_model_tab
from fer_demo.ui.monitor_tab import build_monitor_tab
from fer_demo.ui.options import (CAM_CHOICES, CAM_HELP, DEFAULT_CAM, LIMITS_TEXT, PREDICTED, START_TEXT,
                                 TARGET_CHOICES, TTA_CHOICES)
from fer_demo.ui.render import heatmap_legend_html, probability_table
from fer_demo.ui.video_tab import build_video_tab

if TYPE_CHECKING:  # the app only needs the Predictor's interface; main() builds one
    from fer_demo.pipeline import Predictor

ROOT = Path(__file__).resolve().parent
WEIGHTS = ROOT / "weights" / "fer_vgg19.safetensors"
EXAMPLES_DIR = ROOT / "examples"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# Privacy (see fer_demo/uploads.py and the limits in fer_demo/limits.py): Gradio stores every
# upload and webcam snapshot in its cache (GRADIO_TEMP_DIR, default <tmp>/gradio). The handler
# deletes an upload as soon as it has read it (the bytes stay in memory for re-runs with other
# settings, see RecentUploads); result images are never files (they travel inside the page's
# HTML, see fer_demo/ui/cards.py). ``delete_cache=(every, age)`` is the backstop for the rest (an
# upload never analysed, the JSON download): every ``every`` seconds Gradio deletes this app's
# files older than ``age``, and all of them when the server stops. Example photos are exempt.
DELETE_CACHE = (limits.DELETE_EVERY_S, limits.DELETE_AFTER_S)

THEME = gr.themes.Default(
    primary_hue="indigo",
    secondary_hue="amber",
    # System fonts: the default theme fetches Google Fonts, a third-party request per visitor.
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
).set(
    # Readable contrast (WCAG AA, 4.5:1; axe-core checks it in tests/test_browser_a11y.py): the default
    # theme's grey help texts (#bbbbc2 on white, 1.9:1), white on indigo-500 buttons (4.46:1)
    # and amber-600 links (3.2:1).
    body_text_color_subdued="*neutral_600",
    button_primary_background_fill="*primary_600",
    button_primary_background_fill_hover="*primary_700",
    link_text_color="*secondary_800", link_text_color_hover="*secondary_700",
    link_text_color_visited="*secondary_800", link_text_color_active="*secondary_800",
)
CSS = """
#summary { min-height: 4em; }
.fer-note { font-size: 0.9em; opacity: 0.8; }
.fer-warning { border-left: 4px solid #E69F00; padding-left: 0.75em; }
@media (max-width: 640px) { #heatmap-controls { flex-direction: column; } }
.fer-error { border-left: 4px solid #D55E00; padding: 0.4em 0.75em; background: rgba(213, 94, 0, 0.08); }
/* The code snippet's strings and comments in colours readable on the light code background (4.5:1). */
.prose .token.string { color: #3f6212; } .prose .token.comment { color: #4b5563; }
""" + CARDS_CSS + LIVE_CSS + MODEL_CSS


# Example thumbnails get captions (the two Grace Hopper photos look the same on screen).
# Short: the gallery cuts captions at the thumbnail's width.
EXAMPLE_CAPTIONS = {
    "astronaut": "astronaut",
    "grace_hopper": "Hopper",
    "grace_hopper_exif_rotated": "rotated",  # stored sideways, upright by its EXIF tag
    "group_three_faces": "3 faces",
    "no_face_cat": "no face",
}
# On a phone the results are below the controls: scroll to them once they are there.
SCROLL_TO_RESULTS_JS = ("() => { if (window.innerWidth < 768) { const el = document.getElementById('summary');"
                        " if (el) el.scrollIntoView({behavior: 'smooth', block: 'start'}); } }")
OPACITY_JS = "(v) => { document.documentElement.style.setProperty('--fer-cam-opacity', String(v / 100)); }"


def example_photos(folder: str | Path = EXAMPLES_DIR) -> list[str]:
    """Image files in ``folder`` (the astronaut first: it is the one that shows everything)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files.sort(key=lambda p: p.stem != "astronaut")
    return [str(p) for p in files]


def example_caption(path: str | Path) -> str:
    """The caption under an example's thumbnail (``EXAMPLE_CAPTIONS``, else the file name in words)."""
    stem = Path(path).stem
    return EXAMPLE_CAPTIONS.get(stem, stem.replace("_", " "))


def build_demo(predictor: Predictor, weights: str | Path = WEIGHTS, examples: list[str] | None = None,
               monitor: MonitorLog | None = None) -> gr.Blocks:
    """The whole app as a ``gr.Blocks`` (not launched, not queued).

    ``weights``: the model file whose release folder (card, metrics.json, plots) feeds the Model
    page. ``examples``: example photo paths (default: every image in ``examples/``).
    ``monitor``: where to log statistics of every analysed face (opt-in, see ``fer_demo.monitor``;
    the page then says so and gets a Monitor tab); None (the default): nothing is logged.
    """
    blocks: list[gr.Blocks] = []  # the demo, once built: which cached files Gradio must keep
    handler = AnalyzeHandler(predictor, keep=lambda: kept_files(blocks[0]) if blocks else (), monitor=monitor)
    examples = example_photos() if examples is None else examples
    info = ModelInfo.load(weights)
    with gr.Blocks(title="Facial expression recognition", delete_cache=DELETE_CACHE,
                   analytics_enabled=False) as demo:
        gr.Markdown("# Facial expression recognition\n"
                    "Finds every face in a photo, names its expression (one of seven FER2013 categories) "
                    "and shows which parts of the face the answer came from. *An expression is not a "
                    "feeling: do not use this to judge people* (see **About**).")
        if monitor is not None:
            gr.Markdown(MONITOR_NOTICE, elem_classes=["fer-warning"], elem_id="monitor-notice")
        if info.metrics is None:
            gr.Markdown("**These weights come without evaluation results: treat their answers as untested** "
                        "(see **Model**).", elem_classes=["fer-warning"])
        # Five tabs do not fit a phone's width: wrap them onto two lines rather than hide some
        # behind a "more" menu (the Model and About pages would be out of sight).
        with gr.Tabs(overflow_behavior="wrap", elem_id="tabs"):
            with gr.Tab("Analyze", id="analyze"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1):
                        image = gr.Image(
                            sources=["upload", "webcam", "clipboard"], type="filepath", image_mode=None,
                            label="Photo", height=320, elem_id="photo",
                            # Mirrored like a mirror, as people expect of a selfie preview; the snapshot is
                            # mirrored too, which changes nothing that matters (expressions are
                            # left-right symmetric; the classifier trains with horizontal flips).
                            webcam_options=gr.WebcamOptions(mirror=True),
                        )
                        # Right below the photo, one row: in view on a 1366x900 screen without scrolling.
                        example_gallery = gr.Gallery(
                            value=[(p, example_caption(p)) for p in examples], label="Examples (click one)",
                            columns=5, rows=1, height=150, allow_preview=False, interactive=False, buttons=[],
                            object_fit="cover", elem_id="examples", visible=bool(examples))
                        with gr.Row():
                            cam = gr.Dropdown(CAM_CHOICES, value=DEFAULT_CAM, label="Explanation (CAM method)",
                                              info=CAM_HELP, elem_id="cam")
                            target = gr.Dropdown(TARGET_CHOICES, value=PREDICTED, label="Explain which class",
                                                 info="e.g. 'happy' shows why (not) happy", elem_id="target")
                        tta = gr.Radio(TTA_CHOICES, value="none", label="Test-time augmentation", elem_id="tta",
                                       info="flip: 2 views per face; tencrop: 10 views (slower, a bit more accurate)")
                        with gr.Row():
                            clear = gr.ClearButton(value="Clear", elem_id="clear-button")
                            run = gr.Button("Analyze", variant="primary", elem_id="analyze-button")
                        gr.Markdown(LIMITS_TEXT, elem_classes=["fer-note"])
                    with gr.Column(scale=2):
                        summary = gr.Markdown(START_TEXT, elem_id="summary")
                        annotated = gr.HTML(elem_id="annotated", js_on_load=None)
                        with gr.Row(equal_height=True, elem_id="heatmap-controls"):
                            gr.HTML(heatmap_legend_html(), elem_id="heatmap-legend", js_on_load=None, min_width=280)
                            opacity = gr.Slider(0, 100, value=DEFAULT_OPACITY, step=5, label="Heatmap opacity (%)",
                                                elem_id="cam-opacity", scale=0, min_width=220)
                        cards = gr.HTML(elem_id="face-cards", js_on_load=None)
                        table = gr.Dataframe(value=probability_table([]), label="All faces: probabilities (%)",
                                             interactive=False, elem_id="faces-table")
                        with gr.Accordion("The result as JSON (boxes and probabilities, no pixels)", open=False):
                            result_file = gr.File(label="Download", interactive=False, elem_id="result-file",
                                                  height=70)
                            result = gr.JSON(label="Result", elem_id="result-json")
                outputs = [annotated, cards, table, summary, result, result_file]
                page_inputs = [image, cam, target, tta]
                # The screen stays true to the photo: a new photo (upload, webcam, paste, example) first
                # clears every output (a TIFF, which browsers do not show, gets a PNG copy in the Photo
                # box: handler.new_photo), then is analysed (~0.3 s); a changed option re-runs it; the
                # button runs it again. The photo's ``input`` event (what the visitor did), not ``change``:
                # Gradio's Image fires ``change`` twice when an upload replaces a photo, which ran
                # every photo after the first twice (issue 22); an example click, which sets the photo
                # from the server, starts its own analysis. preprocess=False: the handler gets the
                # uploaded file as sent (Gradio still checks it is an upload of this server):
                # gr.Image's preprocessing would decode it
                # with PIL first, so a file that is not an image would fail inside Gradio with a bare
                # "Error"; fer_demo.io.load_image decodes it once, honours EXIF orientation, checks the
                # size limits and says what is wrong. Everything shares one concurrency slot
                # ("inference"): the CPU runs one analysis at a time. On a phone the results sit below
                # the controls, so the page scrolls to them.
                analysis = dict(inputs=page_inputs, outputs=outputs, concurrency_id="inference", preprocess=False,
                                api_visibility="private")
                image.input(handler.new_photo, inputs=[image], outputs=[*outputs, image], queue=False,
                            preprocess=False, api_visibility="private", trigger_mode="always_last",
                            ).then(handler.refresh, **analysis).then(None, js=SCROLL_TO_RESULTS_JS)
                gr.on([cam.change, target.change, tta.change], handler.refresh, trigger_mode="always_last",
                      **analysis).then(None, js=SCROLL_TO_RESULTS_JS)
                run.click(handler, api_name="analyze", **analysis).then(None, js=SCROLL_TO_RESULTS_JS)
                example_gallery.select(pick_example(examples), outputs=[image], queue=False, api_visibility="private",
                                       ).then(handler.clear, outputs=outputs, queue=False, api_visibility="private",
                                       ).then(handler.refresh, **analysis).then(None, js=SCROLL_TO_RESULTS_JS)
                # The heatmaps' opacity is a CSS variable: the slider changes it in the browser, no re-run.
                opacity.change(None, inputs=[opacity], js=OPACITY_JS)
                # The API gets its own endpoint that returns just the result dict (the page's outputs
                # are display components, awkward to consume from code).
                api_button = gr.Button(visible=False)
                api_button.click(handler.api, inputs=page_inputs, outputs=[result], api_name="predict",
                                 api_description="Find the faces in a photo, classify each face's expression and "
                                                 "explain it. Returns the result as JSON.",
                                 concurrency_id="inference", preprocess=False)
                # Clear empties the photo (whose change then resets every output) and the outputs
                # themselves (an error shown for no photo has no photo change to reset it).
                clear.add([image])
                clear.click(handler.clear, outputs=outputs, queue=False, api_visibility="private")
                clear.click(handler.forget_session, queue=False, api_visibility="private")
            with gr.Tab("Live", id="live"):
                live = build_live_tab(predictor)  # webcam frames streamed, answered as they come (fer_demo.live)
            with gr.Tab("Video", id="video"):
                # a video file analysed frame by frame; also the /predict_video API (fer_demo.video)
                build_video_tab(predictor, keep=lambda: kept_files(blocks[0]) if blocks else ())
            with gr.Tab("Model", id="model"):
                build_model_tab(info, weights)
            if monitor is not None:
                with gr.Tab("Monitor", id="monitor") as monitor_tab:
                    reference = Path(weights).parent / REFERENCE_NAME
                    show, monitor_inputs, monitor_outputs = build_monitor_tab(monitor, reference)
                monitor_tab.select(show, inputs=monitor_inputs, outputs=monitor_outputs, queue=False,
                                   api_visibility="private")
            with gr.Tab("About", id="about"):
                monitored = monitor is not None
                about = gr.Markdown(about_markdown(info, page_address(), monitored), elem_id="about")

                def about_for(request: gr.Request) -> str:  # the client snippet names the address in use
                    return about_markdown(info, page_address(request), monitored)

                demo.load(about_for, outputs=[about], queue=False, api_visibility="private")
        demo.unload(handler.forget_session)
        demo.unload(live.forget_session)
    blocks.append(demo)
    return demo


def pick_example(examples: list[str]):
    """The example gallery's click handler: the clicked photo goes into the Photo input."""
    def pick(evt: gr.SelectData) -> str:
        return examples[evt.index]

    return pick


def kept_files(demo: gr.Blocks) -> set[str]:
    """Files in Gradio's cache that must stay: the example photos and other component defaults."""
    kept: set[str] = set()
    for block in demo.blocks.values():
        kept.update(getattr(block, "keep_in_cache", ()))
    return kept


# A 2-vCPU Space: one analysis already keeps both cores busy (torch intra-op threads), so a second
# concurrent one would only halve the speed of both and double the peak memory. One at a time;
# up to 16 requests wait in line (at ~0.2-0.4 s each, the last waits a few seconds), more are told
# the app is busy. benchmarks/load.py measures it.
QUEUE = dict(default_concurrency_limit=1, max_size=16)


def launch_settings() -> dict:
    """``demo.launch`` keyword arguments: where to listen, upload limit, look."""
    return dict(
        server_name="0.0.0.0",
        server_port=int(os.environ.get("PORT", os.environ.get("GRADIO_SERVER_PORT", 7860))),
        # Gradio refuses bigger uploads before they reach the app (HTTP 413): the video limit, the
        # larger one; photos over MAX_UPLOAD_BYTES are refused by the app (fer_demo.io.read_bytes).
        max_file_size=max(limits.MAX_UPLOAD_BYTES, limits.VIDEO_MAX_UPLOAD_BYTES),
        # Example photos and the release plots are copied into Gradio's cache when the page is
        # built, so no folder needs to be opened to the web.
        allowed_paths=[],
        theme=THEME,  # Gradio 6: theme and css are launch() arguments, no longer Blocks()'s
        css=CSS,
        footer_links=["api", "gradio"],
    )


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would) unless the environment sets it.

    Gradio runs each request on one of many worker threads; glibc gives each thread its own
    arena, and tensors freed in one arena are not reused by the next request on another thread,
    so the resident memory crept up by ~45 MB per 240 requests in benchmarks/load.py. With two
    arenas it stays flat (+25 MB over 1,200 requests after warm-up), at no measured cost in
    latency. True if the cap was set.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-8, arenas))  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def main() -> None:
    from fer_demo.pipeline import Predictor

    limit_malloc_arenas()

    logging.basicConfig()  # warnings and errors (an analysis that failed) to stderr; no request logging
    weights = Path(os.environ.get("FER_WEIGHTS", WEIGHTS))
    predictor = Predictor(weights_path=weights)
    monitor = MonitorLog.from_env()  # FER_MONITOR_LOG=path turns monitoring on (off by default)
    examples = example_photos()
    if examples:  # warm up (first-call allocations, the CAM hooks) so the first visitor waits ~0.3 s
        predictor.analyze(examples[0], cam=DEFAULT_CAM)
    demo = build_demo(predictor, weights=weights, examples=examples, monitor=monitor)
    demo.queue(**QUEUE)
    # Hosts stop containers with SIGTERM; turn it into the Ctrl-C that Gradio handles, so the
    # cache of uploads and results is deleted on the way out (and the atexit clean-ups run).
    signal.signal(signal.SIGTERM, _interrupt)
    demo.launch(**launch_settings())


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
