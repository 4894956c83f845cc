"""The Live tab: the webcam streams frames, each comes back with its faces boxed and labelled.

``build_live_tab(predictor)`` lays the tab out inside the caller's ``gr.Tab`` and wires its stream
event; it returns the ``LiveHandler``, whose ``forget_session`` the page's unload must call.
``LiveHandler`` turns a ``fer_demo.live.LiveFrame`` into the tab's three outputs: the annotated
frame, the followed face's bars and plot, and a status line. Everything is HTML with the image
inline (a JPEG ``data:`` URI): a ``gr.Image`` output would save every frame as a file in Gradio's
cache, and the webcam input is decoded in memory (``type="numpy"``), so no frame touches the disk.

Queue settings (``limits``): a frame every ``LIVE_STREAM_EVERY_S`` s; ``LIVE_CONCURRENCY`` stream(s)
at a time in their own concurrency group ("live"), apart from the photos' ("inference"), so a stream
never blocks a photo analysis; streams take turns of ``LIVE_TIME_LIMIT_S`` s (Gradio's
``time_limit`` ends the queue event; the browser, still recording, joins the queue again at once,
behind any visitor already waiting).
"""

from __future__ import annotations

import html

import gradio as gr
import numpy as np

from fer_demo import limits
from fer_demo.colours import expression_colour
from fer_demo.frames import track_colour
from fer_demo.live import (
    HISTORY_S,
    LIVE_CAM,
    SMOOTHING_S,
    SWITCH_MARGIN,
    LiveFrame,
    LiveSession,
    LiveSessions,
)
from fer_demo.ui.cards import bars_html, data_uri

# The concurrency group of live streams (the photo analyses use "inference").
LIVE_CONCURRENCY_ID = "live"
# JPEG quality of the frames sent back: ~35 KB for a 640x480 frame, ~3 ms to encode.
JPEG_QUALITY = 80
PLOT_W, PLOT_H = 360, 130

LIVE_CSS = """
/* Gradio (6.31) shows its progress timer ("0.0s", "processing | 0.1s") on a stream's inputs and
   outputs at every frame, show_progress="hidden" notwithstanding: it flickered above the status line. */
#live-webcam .progress-text, #live-cam .progress-text, #live-follow .progress-text, #live-frame .progress-text,
#live-face .progress-text, #live-status .progress-text { display: none !important; }
/* On a phone the answer comes right below the camera, the options and limits after it. */
@media (max-width: 768px) {
  #live-row { flex-direction: column; }
  #live-controls { display: contents; }
  #live-controls > * { order: 2; }
  #live-controls > #live-webcam { order: 0; } #live-results { order: 1; } #live-controls > #live-limits { order: 3; }
}
#live-frame img { display: block; width: 100%; max-width: 640px; border-radius: 6px; }
.fer-live-face header { display: flex; gap: 0.5em; align-items: baseline; margin-bottom: 6px; }
.fer-live-face .fer-badge { background: var(--fer-face); }
.fer-live-face svg { width: 100%; max-width: 480px; height: auto; display: block; margin-top: 8px; }
.fer-live-legend { display: flex; flex-wrap: wrap; gap: 2px 10px; font-size: 0.85em; }
.fer-live-legend i { display: inline-block; width: 0.9em; height: 0.25em; vertical-align: middle; margin-right: 3px; }
"""

START_TEXT = ("Press **Click to Access Webcam**, allow the camera, then **Record**: the frames are analysed as "
              "they come.")
NO_FACE_TEXT = "No face in view."


def smoothing_text() -> str:
    """How labels are kept steady, in words, from the tracker's real settings."""
    return (f"Labels are averaged over about {SMOOTHING_S:g} s, and a label changes only when another expression "
            f"leads it by {SWITCH_MARGIN * 100:.0f} points, so they do not flicker. Each face keeps its number "
            "while it stays in view.")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(n: int) -> str:
    return "one visitor" if n == 1 else f"{n} visitors"


def limits_text() -> str:
    """The tab's limits and queue settings, in words."""
    per_s = 1 / limits.LIVE_STREAM_EVERY_S
    w, h = limits.LIVE_CAPTURE
    return (f"Up to {per_s:.0f} frames a second are sent, the webcam at {w}x{h} (at most "
            f"{limits.LIVE_MAX_SIDE} px are analysed); when the server is "
            "slower, it skips to the newest frame rather than fall behind. The face detector runs on every "
            f"{ordinal(limits.LIVE_DETECT_EVERY)} frame, the frames between re-read the faces where it found them. "
            f"On this shared 2-core server {_count(limits.LIVE_CONCURRENCY)} streams at a time; others wait in line "
            f"(their place is shown) and streams take turns of {limits.LIVE_TIME_LIMIT_S} s. Photos on **Analyze** "
            "are still served meanwhile. Frames are analysed in memory and never stored: not on "
            "disk, not in a log.")


def frame_html(frame: LiveFrame) -> str:
    """The annotated frame as an ``<img>`` (alt: every face's tag); ``data-frame`` counts the frames."""
    faces = frame.result.faces
    tags = "; ".join(f"face {f.track_id}: {f.display_label}" if f.abstained else
                     f"face {f.track_id}: {f.label} {float(f.probabilities[frame.classes.index(f.label)]):.0%}"
                     for f in faces)
    tags = (f"The webcam frame, each face boxed with its number and expression: {tags}" if faces
            else f"The webcam frame: {NO_FACE_TEXT}")
    return (f'<div class="fer-live-frame" data-frame="{frame.result.index}" data-faces="{len(faces)}">'
            f'<img src="{data_uri(frame.image, "JPEG", JPEG_QUALITY)}" alt="{html.escape(tags)}"></div>')


def plot_svg(history: list[tuple[float, np.ndarray]], now: float, classes: tuple[str, ...],
             span_s: float = HISTORY_S) -> str:
    """Each class's smoothed probability over the last ``span_s`` seconds as an inline SVG line plot."""
    def x(t: float) -> float:
        return PLOT_W * (1 - (now - t) / span_s)

    def y(p: float) -> float:
        return PLOT_H * (1 - p)

    grid = "".join(f'<line x1="0" x2="{PLOT_W}" y1="{y(p):.1f}" y2="{y(p):.1f}" stroke="#8884" stroke-width="1"/>'
                   for p in (0.25, 0.5, 0.75))
    lines = []
    recent = [(t, p) for t, p in history if now - t <= span_s]
    if len(recent) >= 2:
        for k, name in enumerate(classes):
            points = " ".join(f"{x(t):.1f},{y(float(p[k])):.1f}" for t, p in recent)
            lines.append(f'<polyline fill="none" stroke="{expression_colour(name, k)}" stroke-width="2" '
                         f'points="{points}"><title>{html.escape(name)}</title></polyline>')
    labels = (f'<text x="3" y="11">100%</text><text x="3" y="{y(0.5) - 3:.0f}">50%</text>'
              f'<text x="0" y="{PLOT_H + 13}">-{span_s:g} s</text>'
              f'<text x="{PLOT_W}" y="{PLOT_H + 13}" text-anchor="end">now</text>')
    return (f'<svg viewBox="0 0 {PLOT_W} {PLOT_H + 16}" role="img" aria-label="probabilities over the last '
            f'{span_s:g} seconds" font-size="10" fill="currentColor"><rect width="{PLOT_W}" height="{PLOT_H}" '
            f'fill="none" stroke="#8886"/>{grid}{labels}{"".join(lines)}</svg>')


def face_html(frame: LiveFrame) -> str:
    """The followed face: its number and label, all probabilities as bars (fixed order), its plot."""
    face = frame.followed
    if face is None:
        return f'<div class="fer-live-face"><p>{NO_FACE_TEXT}</p></div>'
    classes = frame.classes
    colour = track_colour(face.track_id)
    legend = "".join(f'<span><i style="background:{expression_colour(n, k)}"></i>{html.escape(n)}</span>'
                     for k, n in enumerate(classes))
    more = f" ({len(frame.result.faces)} faces in view)" if len(frame.result.faces) > 1 else ""
    return (f'<div class="fer-live-face" style="--fer-face:{colour}" data-face="{face.track_id}">'
            f'<header><span class="fer-badge">{face.track_id}</span>'
            f'<span class="fer-verdict">{html.escape(face.display_label)}</span><span class="fer-sub">{more}</span></header>'
            f'{bars_html(zip(classes, face.probabilities), face.label, digits=0)}'
            f'{plot_svg(frame.history, frame.result.t, classes)}'
            f'<div class="fer-live-legend">{legend}</div>'
            f'<div class="fer-sub">the last {HISTORY_S:g} s, smoothed</div></div>')


def status_text(frame: LiveFrame) -> str:
    n = len(frame.result.faces)
    return (f"{frame.fps:.1f} frames/s answered, {frame.seconds * 1000:.0f} ms per frame; "
            f"{n} face{'s' if n != 1 else ''} in view; streaming for {frame.elapsed:.0f} s.")


class LiveHandler:
    """The stream event's function: one frame in, (frame HTML, face HTML, status) out.

    A frame dropped by the session's ``FrameGate`` (or no frame) changes nothing on the page
    (``gr.skip()``). State is per Gradio session (``LiveSessions``); ``forget_session`` frees it.
    """

    def __init__(self, predictor, sessions: LiveSessions | None = None) -> None:
        self.predictor = predictor
        self.sessions = sessions if sessions is not None else LiveSessions(lambda: LiveSession(predictor))

    def __call__(self, image: np.ndarray | None, show_cam: bool = False, follow: float | None = None,
                 request: gr.Request = None) -> tuple:
        if image is None:
            return gr.skip(), gr.skip(), gr.skip()
        session = self.sessions.get(_session(request))
        try:
            frame = session.process(image, show_cam=bool(show_cam), follow=int(follow or 0))
        except ValueError as e:  # not an RGB frame: say so, keep the stream going
            return gr.skip(), gr.skip(), f"This frame could not be analysed: {e}"
        if frame is None:
            return gr.skip(), gr.skip(), gr.skip()
        return frame_html(frame), face_html(frame), status_text(frame)

    def forget_session(self, request: gr.Request = None) -> None:
        """The page was closed: free this visitor's tracker."""
        self.sessions.drop(_session(request))


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def build_live_tab(predictor) -> LiveHandler:
    """Lay out the Live tab (inside the caller's ``gr.Tab``) and wire its stream; returns the handler."""
    handler = LiveHandler(predictor)
    gr.Markdown("Your webcam, live: every face boxed and numbered with its expression; the bars and the plot "
                f"follow one face. {smoothing_text()}", elem_id="live-intro")
    with gr.Row(equal_height=False, elem_id="live-row"):
        with gr.Column(scale=1, elem_id="live-controls"):
            # type="numpy": each streamed frame (a JPEG data URL) is decoded in memory, no file. Mirrored
            # like the Analyze tab's webcam: the frames sent are mirrored too, so the answer matches the preview.
            webcam = gr.Image(
                sources=["webcam"], streaming=True, type="numpy", image_mode="RGB", label="Webcam",
                elem_id="live-webcam", height=300,
                webcam_options=gr.WebcamOptions(mirror=True, constraints={
                    "video": {"width": {"ideal": limits.LIVE_CAPTURE[0]},
                              "height": {"ideal": limits.LIVE_CAPTURE[1]}}}))
            show_cam = gr.Checkbox(False, label=f"Show what the model looks at ({LIVE_CAM} heatmap, slower)",
                                   elem_id="live-cam")
            follow = gr.Number(0, precision=0, minimum=0, label="Follow face number",
                               info="the number on its box; 0: the largest face", elem_id="live-follow")
            gr.Markdown(limits_text(), elem_classes=["fer-note"], elem_id="live-limits")
        with gr.Column(scale=2, elem_id="live-results"):
            frame = gr.HTML(elem_id="live-frame", js_on_load=None)
            face = gr.HTML(elem_id="live-face", js_on_load=None)
            status = gr.Markdown(START_TEXT, elem_id="live-status")
    # One queue event per stream: Gradio hands the handler the newest frame each time (frames that
    # came in while it ran are replaced, not queued; see fer_demo.live). Its own concurrency group,
    # so photos are analysed while someone streams.
    webcam.stream(handler, inputs=[webcam, show_cam, follow], outputs=[frame, face, status],
                  stream_every=limits.LIVE_STREAM_EVERY_S, time_limit=limits.LIVE_TIME_LIMIT_S,
                  concurrency_limit=limits.LIVE_CONCURRENCY, concurrency_id=LIVE_CONCURRENCY_ID,
                  show_progress="hidden", api_visibility="private")
    return handler
