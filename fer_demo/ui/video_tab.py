"""The Video tab: a video file in; its annotated copy, a timeline plot, CSV/JSON records and a summary out.

``build_video_tab(predictor, keep)`` lays the tab out inside the caller's ``gr.Tab`` and wires its
events: the page's "Analyze video" button and the ``/predict_video`` API (the records as JSON).
``VideoHandler`` does the request: it checks the options, runs ``fer_demo.video.analyze_video`` with a
progress bar, deletes the upload once analysed, and writes the outputs into a private temp folder
whose files are deleted ``RESULT_FILE_TTL_S`` after Gradio copied them into its cache (where the
app's ``delete_cache`` policy removes them). Errors are said once, in the summary (``fer-error``).
"""

from __future__ import annotations

import html
import logging
import shutil
import uuid
from pathlib import Path

import gradio as gr

from fer_demo import limits
from fer_demo.explain import CAM_METHODS
from fer_demo.ui.handler import ResultFiles
from fer_demo.ui.options import NO_CAM
from fer_demo.ui.render import error_html
from fer_demo.uploads import discard
from fer_demo.video import (
    ACCEPTED,
    PLOT_MAX_FACES,
    InvalidVideoError,
    VideoAnalysis,
    VideoLimits,
    analyze_video,
    check_fps,
    probe_video,
)

log = logging.getLogger(__name__)

VIDEO_CAM_CHOICES = [NO_CAM, *CAM_METHODS]
# HTML, not Markdown: the summary is a gr.HTML (issue 22 saw "**Analyze video**" on the page).
START_TEXT = "Upload a video (or record one with the webcam), then press <strong>Analyze video</strong>."
NO_VIDEO_TEXT = "Upload a video first."

# Video codecs that browsers play (in MP4, WebM or MOV). Others (MPEG-4 Part 2, what OpenCV's "mp4v"
# and older cameras write; ProRes; ...) are analysed all the same, but the upload has no preview.
BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})
CODEC_NAMES = {"mpeg4": "MPEG-4 Part 2", "hevc": "H.265", "prores": "ProRes", "mjpeg": "Motion JPEG"}


def no_preview_text(codec: str) -> str:
    """What the summary says for an upload whose codec the browser cannot play (HTML)."""
    name = html.escape(CODEC_NAMES.get(codec, codec))
    return (f"No preview: browsers cannot play this video's codec ({name}). It is analysed all the same: "
            "press <strong>Analyze video</strong>; the annotated video comes back in a format they play.")


# gr.Video calls a preview its browser cannot play an error ("Video not playable" toast, "Error"
# badge). Its <video> element's error event is stopped before it gets there (a capturing listener on
# the document runs first); the summary says instead that there is no preview (``VideoHandler.uploaded``).
# (The summary's js_on_load: it runs when the tab renders, before any upload.)
NO_PREVIEW_ERROR_JS = """if (!window.ferNoPreviewError) {
    window.ferNoPreviewError = true;
    document.addEventListener('error', (e) => {
        const t = e.target;
        if (t instanceof HTMLMediaElement && t.closest('#video-input')) { e.stopImmediatePropagation(); }
    }, true);
}"""


LIMITS_TEXT = (
    f"**Limits:** {ACCEPTED} videos up to {limits.megabytes(limits.VIDEO_MAX_UPLOAD_BYTES, 0)} and {limits.VIDEO_MAX_SECONDS} s; "
    f"{limits.VIDEO_DEFAULT_FPS} frames a second are analysed by default, at most {limits.VIDEO_MAX_FPS}; "
    f"frames larger than {limits.VIDEO_MAX_SIDE} px are scaled down. Faces are detected about every "
    f"{limits.VIDEO_DETECT_EVERY_S:g} s and followed in between; probabilities are smoothed over time. "
    "The upload is deleted once analysed; the results are deleted within "
    f"{round(limits.DELETE_AFTER_S / 60)} minutes."
)


ERROR_HEADING = "Could not analyse this video."


class VideoHandler:
    """Runs ``analyze_video`` for the page (``handler(...)``) and the API (``handler.api``).

    ``InvalidVideoError`` (not a video, too long, ...) and bad options become ``gr.Error`` with their
    message; any other failure is logged (without the video) and becomes a generic ``gr.Error``. The
    page shows it in the summary; the API raises it. A video without faces is a result, not an error.
    """

    def __init__(self, predictor, result_files: ResultFiles | None = None,
                 upload_folder: str | Path | None = None, keep=lambda: ()) -> None:
        self.predictor = predictor
        self.result_files = result_files or ResultFiles()
        self.upload_folder = Path(upload_folder or gr.utils.get_upload_folder())
        self.keep = keep

    def run(self, video: str | dict | None, fps: float, cam: str, progress=None,
            annotate: bool = True) -> tuple[VideoAnalysis, Path]:
        """Check the request and analyse it: (analysis, the request's output folder)."""
        if isinstance(video, dict):  # a FileData payload: only its server-side path matters
            video = video.get("path")
        if video is None:
            raise gr.Error(NO_VIDEO_TEXT, print_exception=False)
        path = Path(video)
        try:
            return self._analyze(path, fps, cam, progress, annotate)
        finally:  # the upload goes once analysed or refused (example files are kept)
            discard(path, self.upload_folder, self.keep())

    def _analyze(self, path: Path, fps: float, cam: str, progress, annotate: bool) -> tuple[VideoAnalysis, Path]:
        if cam not in VIDEO_CAM_CHOICES:
            raise gr.Error(f"Unknown explanation method {cam!r}. Choose one of {VIDEO_CAM_CHOICES}.",
                           print_exception=False)
        try:
            fps = check_fps(fps)
        except (TypeError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from None
        if not path.is_file():
            raise gr.Error("This video is no longer on the server: uploads are deleted once analysed. "
                           "Please upload it again.", print_exception=False)
        self.result_files.prune()
        folder = self.result_files.root / uuid.uuid4().hex
        folder.mkdir()
        try:
            analysis = analyze_video(self.predictor, path, fps=fps, cam=None if cam == NO_CAM else cam,
                                     annotated_path=folder / "fer_annotated.mp4" if annotate else None,
                                     progress=progress, bounds=VideoLimits.web())
        except InvalidVideoError as e:  # the message is for the user
            shutil.rmtree(folder, ignore_errors=True)
            raise gr.Error(str(e), print_exception=False) from None
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            log.exception("video analysis failed")
            raise gr.Error("Something went wrong while analysing this video. The error has been logged; "
                           "please try another video.", print_exception=False) from None
        return analysis, folder

    def __call__(self, video: str | dict | None, fps: float = limits.VIDEO_DEFAULT_FPS, cam: str = NO_CAM,
                 progress=gr.Progress()) -> tuple:
        """The page: (annotated video, timeline figure, [CSV, JSON] files, summary HTML)."""
        if video is None:
            return None, None, None, error_html(NO_VIDEO_TEXT)

        def report(fraction: float) -> None:
            progress(fraction, desc="Analysing frames")

        try:
            analysis, folder = self.run(video, fps, cam, progress=report)
        except gr.Error as e:
            return None, None, None, error_html(e.message, ERROR_HEADING)
        files = [str(analysis.write_csv(folder / "fer_video.csv")), str(analysis.write_json(folder / "fer_video.json"))]
        return str(analysis.annotated), analysis.timeline_figure(), files, html.escape(analysis.summary())

    def api(self, video: str | dict | None, fps: float = limits.VIDEO_DEFAULT_FPS, cam: str = NO_CAM) -> dict:
        """The ``/predict_video`` endpoint: the analysis as a JSON-able dict (``VideoAnalysis.to_dict``)."""
        analysis, folder = self.run(video, fps, cam, annotate=False)
        shutil.rmtree(folder, ignore_errors=True)
        return analysis.to_dict()

    @staticmethod
    def clear() -> tuple:
        return None, None, None, START_TEXT

    @staticmethod
    def uploaded(video: str | dict | None) -> str:
        """A new upload: the summary's first words (no preview for a codec browsers cannot play).

        Only the container's header is read; a file that is no video is said by the analysis.
        """
        if isinstance(video, dict):
            video = video.get("path")
        if video is None:
            return START_TEXT
        try:
            codec = probe_video(video).codec
        except InvalidVideoError:
            return START_TEXT
        return START_TEXT if codec in BROWSER_CODECS else no_preview_text(codec)


def build_video_tab(predictor, keep=lambda: ()) -> VideoHandler:
    """Lay out the Video tab in the current ``gr.Tab`` and wire it; returns its handler.

    ``keep()``: files in Gradio's cache that must not be deleted (the app's example files).
    """
    handler = VideoHandler(predictor, keep=keep)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            video = gr.Video(sources=["upload", "webcam"], label="Video", height=320, elem_id="video-input",
                             include_audio=True)
            fps = gr.Slider(0.5, limits.VIDEO_MAX_FPS, value=limits.VIDEO_DEFAULT_FPS, step=0.5,
                            label="Frames analysed per second", elem_id="video-fps",
                            info="more is smoother and slower")
            cam = gr.Dropdown(VIDEO_CAM_CHOICES, value=NO_CAM, label="Explanation (CAM method)",
                              info="none is fastest; a method tints each face with its heatmap", elem_id="video-cam")
            with gr.Row():
                clear = gr.ClearButton(value="Clear", elem_id="video-clear")
                run = gr.Button("Analyze video", variant="primary", elem_id="video-analyze")
            gr.Markdown(LIMITS_TEXT, elem_classes=["fer-note"])
        with gr.Column(scale=2):
            summary = gr.HTML(START_TEXT, elem_id="video-summary", js_on_load=NO_PREVIEW_ERROR_JS)
            annotated = gr.Video(label="Annotated video", interactive=False, elem_id="video-annotated")
            timeline = gr.Plot(label=f"Expressions over time (smoothed), one panel per face (at most {PLOT_MAX_FACES})", elem_id="video-timeline")
            files = gr.File(label="Records (CSV, JSON): frame, time, face, box, probabilities, label",
                            file_count="multiple", interactive=False, elem_id="video-files")
    outputs = [annotated, timeline, files, summary]
    # preprocess=False: the handler gets the upload as sent and PyAV reads it (gr.Video's preprocessing
    # would call FFmpeg, which the app does not need). One CPU-heavy job at a time ("inference").
    run.click(handler, inputs=[video, fps, cam], outputs=outputs, concurrency_id="inference",
              preprocess=False, api_visibility="private")
    api_button = gr.Button(visible=False)
    api_button.click(handler.api, inputs=[video, fps, cam], outputs=[gr.JSON(visible=False)],
                     api_name="predict_video", concurrency_id="inference", preprocess=False,
                     api_description="Find and follow the faces in a video file, classify each face's expression "
                                     "in every sampled frame (smoothed over time). Returns the records as JSON.")
    video.upload(handler.uploaded, inputs=[video], outputs=[summary], queue=False, preprocess=False,
                 api_visibility="private")
    clear.add([video])
    clear.click(handler.clear, outputs=outputs, queue=False, api_visibility="private")
    return handler
