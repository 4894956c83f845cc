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

import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from fer_demo import limits
from fer_demo.model import EMOTIONS
from fer_demo.ui.about import about_markdown, page_address
from fer_demo.ui.handler import AnalyzeHandler, select_face
from fer_demo.ui.model_page import ModelInfo, build_model_tab
from fer_demo.ui.options import (CAM_CHOICES, CAM_HELP, DEFAULT_CAM, LIMITS_TEXT, PREDICTED, TARGET_CHOICES,
                                 TTA_CHOICES)
from fer_demo.ui.render import heatmap_legend_html, probability_table

if TYPE_CHECKING:  # the app only needs the Predictor's interface; main() builds one
    from fer_demo.pipeline import Predictor

ROOT = Path(__file__).resolve().parent
WEIGHTS = ROOT / "weights" / "fer_vgg19.safetensors"
EXAMPLES_DIR = ROOT / "examples"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# Privacy (see fer_demo/uploads.py and the limits in fer_demo/limits.py): Gradio stores every
# upload and webcam snapshot in its cache (GRADIO_TEMP_DIR, default <tmp>/gradio) and writes every
# output image there for the browser to fetch. The handler deletes an upload as soon as it has read
# it (the bytes stay in memory for re-runs with other settings, see RecentUploads); result images
# are deleted OUTPUT_GRACE_S after the page received them. ``delete_cache=(every, age)`` is the
# backstop for the rest (an upload never analysed, the JSON download): every ``every`` seconds
# Gradio deletes this app's files older than ``age``, and all of them when the server stops.
# Example photos and their cached results are exempt.
DELETE_CACHE = (limits.DELETE_EVERY_S, limits.DELETE_AFTER_S)

THEME = gr.themes.Default(
    primary_hue="indigo",
    secondary_hue="amber",
    # System fonts: the default theme fetches Google Fonts, a third-party request per visitor.
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)
CSS = """
#summary { min-height: 4em; }
.fer-note { font-size: 0.9em; opacity: 0.8; }
.fer-warning { border-left: 4px solid #E69F00; padding-left: 0.75em; }
"""


START_TEXT = "Upload a photo, take one with the webcam or pick an example, then press **Analyze**."


def example_photos(folder: str | Path = EXAMPLES_DIR) -> list[str]:
    """Image files in ``folder`` (the astronaut first: it is the one that shows everything)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files.sort(key=lambda p: p.stem != "astronaut")
    return [str(p) for p in files]


def build_demo(predictor: Predictor, weights: str | Path = WEIGHTS, examples: list[str] | None = None,
               cache_examples: bool = False, output_grace_s: float | None = None) -> gr.Blocks:
    """The whole app as a ``gr.Blocks`` (not launched, not queued).

    ``weights``: the model file whose release folder (card, metrics.json, plots) feeds the Model
    page. ``examples``: example photo paths (default: every image in ``examples/``).
    ``cache_examples``: run the examples once at launch so clicking one is instant.
    ``output_grace_s``: seconds before result images are deleted (default ``limits.OUTPUT_GRACE_S``).
    """
    blocks: list[gr.Blocks] = []  # the demo, once built: which cached files Gradio must keep
    handler = AnalyzeHandler(predictor, keep=lambda: kept_files(blocks[0]) if blocks else (),
                             output_grace_s=output_grace_s)
    examples = example_photos() if examples is None else examples
    info = ModelInfo.load(weights)
    with gr.Blocks(title="Facial expression recognition", delete_cache=DELETE_CACHE,
                   analytics_enabled=False) as demo:
        gr.Markdown("# Facial expression recognition\n"
                    "Finds every face in a photo, names its expression (one of seven FER2013 categories) "
                    "and shows which parts of the face the answer came from. *An expression is not a "
                    "feeling: do not use this to judge people* (see **About**).")
        if info.metrics is None:
            gr.Markdown("**These weights come without evaluation results: treat their answers as untested** "
                        "(see **Model**).", elem_classes=["fer-warning"])
        with gr.Tab("Analyze", id="analyze"):
            # The outputs are created first (render=False) so the examples, which need them, can sit
            # in the left column under the controls; they are placed in the right column below.
            annotated = gr.AnnotatedImage(label="Faces found", height=420, elem_id="annotated", render=False)
            summary = gr.Markdown(START_TEXT, elem_id="summary", render=False)
            probs = gr.Label(label="Probabilities", num_top_classes=len(EMOTIONS), scale=1,
                             elem_id="probabilities", render=False)
            gallery = gr.Gallery(label="Each face: what the model sees and the heatmap (click for its "
                                       "probabilities)", columns=3, height=290, object_fit="contain", scale=2,
                                 elem_id="faces-gallery", buttons=["fullscreen"], interactive=False, render=False)
            table = gr.Dataframe(value=probability_table([]), label="All faces: probabilities (%)",
                                 interactive=False, elem_id="faces-table", render=False)
            result = gr.JSON(label="Result", elem_id="result-json", render=False)
            result_file = gr.File(label="Download the result (JSON)", interactive=False, elem_id="result-file",
                                  height=70, render=False)
            owners = gr.State({"owners": [], "faces": []})
            outputs = [annotated, gallery, probs, table, summary, result, result_file, owners]
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    image = gr.Image(
                        sources=["upload", "webcam", "clipboard"], type="filepath", image_mode=None,
                        label="Photo", height=360, elem_id="photo",
                        # Mirrored like a mirror, as people expect of a selfie preview; the snapshot is
                        # mirrored too, which changes nothing that matters (expressions are
                        # left-right symmetric; the classifier trains with horizontal flips).
                        webcam_options=gr.WebcamOptions(mirror=True),
                    )
                    with gr.Row():
                        cam = gr.Dropdown(CAM_CHOICES, value=DEFAULT_CAM, label="Explanation (CAM method)",
                                          info=CAM_HELP)
                        target = gr.Dropdown(TARGET_CHOICES, value=PREDICTED, label="Explain which class",
                                             info="e.g. 'happy' shows why (not) happy")
                    tta = gr.Radio(TTA_CHOICES, value="none", label="Test-time augmentation",
                                   info="flip: 2 views per face; tencrop: 10 views (slower, a bit more accurate)")
                    with gr.Row():
                        clear = gr.ClearButton(value="Clear")
                        run = gr.Button("Analyze", variant="primary", elem_id="analyze-button")
                    if examples:
                        gr.Examples(
                            examples=[[p] for p in examples], inputs=[image], outputs=outputs,
                            fn=lambda path: handler(path, DEFAULT_CAM, PREDICTED, "none"),
                            cache_examples=cache_examples, run_on_click=True, label="Examples (click one)",
                            examples_per_page=8, api_visibility="private",
                        )
                    gr.Markdown(LIMITS_TEXT, elem_classes=["fer-note"])
                with gr.Column(scale=2):
                    annotated.render()
                    summary.render()
                    with gr.Row(equal_height=False):
                        probs.render()
                        with gr.Column(scale=2):
                            gallery.render()
                            gr.HTML(heatmap_legend_html(), elem_id="heatmap-legend")
                    table.render()
                    result_file.render()
                    with gr.Accordion("Result as JSON", open=False):
                        result.render()
            # The button drives the page; the API gets its own endpoint that returns just the result
            # dict (the page's outputs are display components, awkward to consume from code). Both
            # share one concurrency slot ("inference"): the CPU runs one analysis at a time.
            # preprocess=False: the handler gets the uploaded file as sent (Gradio still checks it
            # is an upload of this server). gr.Image's preprocessing would decode it with PIL first,
            # so a file that is not an image would fail inside Gradio with a bare "Error" before the
            # app sees it; fer_demo.io.load_image decodes it once, honours EXIF orientation, checks
            # the size limits and says what is wrong. The handler checks the option values itself.
            run.click(handler, inputs=[image, cam, target, tta], outputs=outputs, api_name="analyze",
                      api_visibility="private", concurrency_id="inference", preprocess=False,
                      ).success(handler.release_outputs, inputs=[annotated, gallery], preprocess=False, queue=False,
                                api_visibility="private")
            api_button = gr.Button(visible=False)
            api_button.click(handler.api, inputs=[image, cam, target, tta], outputs=[result], api_name="predict",
                             api_description="Find the faces in a photo, classify each face's expression and "
                                             "explain it. Returns the result as JSON.",
                             concurrency_id="inference", preprocess=False)
            gallery.select(select_face, inputs=[owners], outputs=[probs], api_visibility="private",
                           queue=False)
            # Clear empties every output; the summary and the table go back to their starting state.
            clear.add([image, annotated, gallery, probs, result, result_file])
            clear.click(lambda: (START_TEXT, probability_table([])), outputs=[summary, table], queue=False,
                        api_visibility="private")
            clear.click(handler.forget_session, queue=False, api_visibility="private")
        with gr.Tab("Model", id="model"):
            build_model_tab(info, weights)
        with gr.Tab("About", id="about"):
            about = gr.Markdown(about_markdown(info, page_address()), elem_id="about")

            def about_for(request: gr.Request) -> str:  # the client snippet names the address in use
                return about_markdown(info, page_address(request))

            demo.load(about_for, outputs=[about], queue=False, api_visibility="private")
        demo.unload(handler.forget_session)
    blocks.append(demo)
    return demo


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
        # Gradio refuses bigger uploads before they reach the app (HTTP 413).
        max_file_size=limits.MAX_UPLOAD_BYTES,
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
    # Cached example results go to a fresh folder per start: Gradio would otherwise reuse
    # .gradio/cached_examples from an older model without noticing the weights changed.
    examples_cache = tempfile.mkdtemp(prefix="fer-demo-examples-")
    atexit.register(shutil.rmtree, examples_cache, ignore_errors=True)
    os.environ.setdefault("GRADIO_EXAMPLES_CACHE", examples_cache)
    weights = Path(os.environ.get("FER_WEIGHTS", WEIGHTS))
    predictor = Predictor(weights_path=weights)
    demo = build_demo(predictor, weights=weights, cache_examples=True)
    demo.queue(**QUEUE)
    # Hosts stop containers with SIGTERM; turn it into the Ctrl-C that Gradio handles, so the
    # cache of uploads and results is deleted on the way out (and the atexit clean-ups run).
    signal.signal(signal.SIGTERM, _interrupt)
    demo.launch(**launch_settings())


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
