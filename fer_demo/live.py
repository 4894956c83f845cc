"""Live webcam mode: a visitor's camera frames in, each answered with its faces boxed and labelled.

The browser sends a webcam frame every ``limits.LIVE_STREAM_EVERY_S`` seconds (Gradio's streaming
``gr.Image`` and its ``.stream`` event), faster than a 2-core server answers: with the newest frame
winning (below), the frames answered per second are what the server sustains, not what the page
sends; ``LiveSession.process`` runs it through a
``fer_demo.frames.FrameAnalyzer`` (the detector on every ``detect_every``-th frame, the faces
followed and their probabilities smoothed by ``fer_demo.track.FaceTracker``) and returns a
``LiveFrame``: the frame with every face boxed and labelled, the followed face and its history.

**The newest frame wins.** When the server is slower than the camera, frames must be dropped, not
queued, or the picture falls further behind with every second. Gradio 6 does it for a stream: a
stream is one queue event; the browser posts each frame to ``/stream/{event_id}``, which *replaces*
the event's pending input (``event.data = body``) and wakes the handler, so after each call the
handler gets the newest frame and frames that came in meanwhile are gone (tests/test_live.py checks
it on a real server). ``FrameGate`` is the same rule inside the app, per session: one frame at a
time, and a frame that arrives while one is being analysed, or that is not newer than the last one
analysed, is dropped (``process`` returns None) instead of waiting.

**One visitor, one state.** ``LiveSessions`` keeps a ``LiveSession`` (analyzer, tracker, gate) per
Gradio session hash; the page's unload drops it, and a session not heard from for
``limits.LIVE_IDLE_S`` is dropped with the next visitor's frame. A pause longer than
``limits.LIVE_RESET_AFTER_S`` starts afresh (new track ids, a fresh detection).

**Privacy.** A frame is a numpy array for the length of one call: never written to disk, never
logged, not kept (the session keeps boxes and probabilities, no pixels).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fer_demo import limits
from fer_demo.align import check_rgb
from fer_demo.explain import DEFAULT_CAM
from fer_demo.frames import FrameAnalyzer, FrameFace, FrameResult, annotate_frame
from fer_demo.threads import check_count, intra_op_threads
from fer_demo.track import FaceTracker

# Labels are averaged over about this many seconds (the tracker's exponential moving average) ...
SMOOTHING_S = 0.5
# ... and change only when another class leads the shown one by this much (0.10: 10 points).
SWITCH_MARGIN = 0.10
# The followed face's probabilities over this many seconds feed the live plot.
HISTORY_S = 10.0
# The CAM method of the live overlay: the measured default (one backward pass per frame).
LIVE_CAM = DEFAULT_CAM
# The frame rate shown is measured over this many seconds.
FPS_WINDOW_S = 3.0


class FrameGate:
    """Newest frame wins, for one session: ``enter(t)`` admits a frame or says to drop it.

    A frame is dropped when another frame of this session is being processed (it would only wait,
    and be stale once its turn came) or when its time ``t`` is not after the last admitted one (an
    older frame that arrived late). Thread-safe. ``admitted`` and ``dropped`` count the decisions.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._last_t = -float("inf")
        self.admitted = 0
        self.dropped = 0

    def enter(self, t: float) -> bool:
        """True: process the frame taken at ``t`` (then call ``leave``); False: drop it."""
        with self._lock:
            if self._busy or t <= self._last_t:
                self.dropped += 1
                return False
            self._busy, self._last_t = True, t
            self.admitted += 1
            return True

    def leave(self) -> None:
        """The admitted frame is done: the next one may enter."""
        with self._lock:
            self._busy = False


@dataclass(eq=False)
class LiveFrame:
    """One answered webcam frame.

    Attributes:
        image: uint8 (H, W, 3) RGB, the frame (at most ``max_side`` px) with every face's box and
            "id label p%" tag, and the CAM of each face with ``show_cam``.
        result: the analyzer's ``FrameResult`` (times in seconds since the stream started).
        classes: the class names, in the order of the probabilities.
        followed: the face whose bars and plot are shown (the one asked for, else the largest);
            None when no face is in view.
        history: (seconds since the stream started, smoothed probabilities (C,)) of the followed
            face over the last ``HISTORY_S`` seconds, oldest first; [] without a face.
        seconds: time to analyse and draw this frame.
        fps: frames answered per second over the last ``FPS_WINDOW_S`` seconds.
        elapsed: seconds since the stream started.
    """

    image: np.ndarray
    result: FrameResult
    classes: tuple[str, ...]
    followed: FrameFace | None
    history: list[tuple[float, np.ndarray]]
    seconds: float
    fps: float
    elapsed: float


def pick_face(faces: Sequence[FrameFace], track_id: int | None = None) -> FrameFace | None:
    """The face with ``track_id`` if it is in view, else the largest; None when ``faces`` is empty."""
    if not faces:
        return None
    if track_id:
        chosen = next((f for f in faces if f.track_id == int(track_id)), None)
        if chosen is not None:
            return chosen
    return max(faces, key=lambda f: f.area)


def fit_frame(frame: np.ndarray, max_side: int) -> np.ndarray:
    """``frame`` scaled down (area interpolation) so its longer side is at most ``max_side`` px."""
    height, width = frame.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return frame
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


class LiveSession:
    """One visitor's stream: frames in, ``LiveFrame``s out (see the module docstring).

    Args:
        predictor: the loaded ``fer_demo.pipeline.Predictor`` (shared by every session).
        detect_every: the detector runs on every this-many-th frame (``FrameAnalyzer``).
        max_side: frames are scaled down to at most this many pixels on their longer side first.
        reset_after_s: a frame coming this long after the previous one starts a new stream.
        clock: seconds, monotonic (a fake one in tests).
        analyzer_factory: ``FrameAnalyzer``'s signature; a fake one in tests.
        threads: CPU threads a frame's analysis and drawing run on (``limits.LIVE_THREADS``), set for the
            calling thread only (``fer_demo.threads.intra_op_threads``). It is the outer scope, so it wins
            over the detector's and the network's own ``threads`` (``limits.ANALYSIS_THREADS``) inside it;
            None: the predictor's own.
    """

    def __init__(self, predictor, detect_every: int = limits.LIVE_DETECT_EVERY,
                 max_side: int = limits.LIVE_MAX_SIDE, reset_after_s: float = limits.LIVE_RESET_AFTER_S,
                 clock: Callable[[], float] = time.monotonic,
                 analyzer_factory: Callable[..., FrameAnalyzer] = FrameAnalyzer,
                 threads: int | None = limits.LIVE_THREADS) -> None:
        self.threads = check_count(threads, "the predictor's own")
        self.predictor = predictor
        self.detect_every, self.max_side, self.reset_after_s = int(detect_every), int(max_side), reset_after_s
        self.clock = clock
        self.analyzer_factory = analyzer_factory
        self.gate = FrameGate()
        self.tracker = FaceTracker(tau_s=SMOOTHING_S, switch_margin=SWITCH_MARGIN, history_s=HISTORY_S)
        self._analyzer: FrameAnalyzer | None = None
        self._cam: str | None = None
        self._start: float | None = None
        self._last_done: float | None = None  # when the last frame was answered (``clock`` seconds)
        self._answered: deque[float] = deque()
        self.last_seen = clock()

    def _analyzer_for(self, show_cam: bool) -> FrameAnalyzer:
        cam = LIVE_CAM if show_cam else None
        if self._analyzer is None or cam != self._cam:
            # A new analyzer (its detection schedule starts again) on the same tracker: ids and
            # smoothing carry on when the CAM is switched on or off.
            self._analyzer = self.analyzer_factory(self.predictor, detect_every=self.detect_every, cam=cam,
                                                   tracker=self.tracker)
            self._cam = cam
        return self._analyzer

    def reset(self) -> None:
        """Forget the faces, tracks and timings: the next frame starts a new stream."""
        self.tracker.reset()
        self._analyzer, self._start, self._last_done = None, None, None
        self._answered.clear()

    def process(self, frame: np.ndarray, show_cam: bool = False, follow: int | None = None,
                t: float | None = None) -> LiveFrame | None:
        """Answer one webcam frame, or None if ``FrameGate`` drops it.

        Args:
            frame: uint8 (H, W, 3) RGB (any size; scaled down to ``max_side``).
            show_cam: draw each face's CAM (``LIVE_CAM``) on the frame.
            follow: the track id of the face whose bars and plot to show; None or 0: the largest.
            t: when the frame was taken (``clock`` seconds); default: now.

        Raises:
            ValueError: ``frame`` is not uint8 (H, W, 3).
        """
        frame = check_rgb(frame, "a webcam frame")
        t = self.clock() if t is None else float(t)
        self.last_seen = max(self.last_seen, t)
        if not self.gate.enter(t):
            return None
        try:
            start = time.perf_counter()
            # A pause since the last frame was answered (not since it arrived: a slow frame is no pause).
            if self._last_done is not None and t - self._last_done > self.reset_after_s:
                self.reset()
            if self._start is None:
                self._start = t
            with intra_op_threads(self.threads):
                frame = fit_frame(frame, self.max_side)
                analyzer = self._analyzer_for(show_cam)
                result = analyzer.process(frame, t - self._start)
                followed = pick_face(result.faces, follow)
                history = self.tracker.history(followed.track_id) if followed is not None else []
                image = annotate_frame(frame, result, analyzer.classes, show_cam=show_cam)
            self._answered.append(t)
            while self._answered and t - self._answered[0] > FPS_WINDOW_S:
                self._answered.popleft()
            span = t - self._answered[0]
            fps = (len(self._answered) - 1) / span if span > 0 else 0.0
            seconds = time.perf_counter() - start
            self._last_done = t + seconds
            return LiveFrame(image=image, result=result, classes=tuple(analyzer.classes), followed=followed,
                             history=history, seconds=seconds, fps=fps, elapsed=t - self._start)
        finally:
            self.gate.leave()


class LiveSessions:
    """``LiveSession``s by Gradio session hash, so visitors never share a tracker.

    ``get`` makes a session on its first frame and drops sessions idle for more than ``idle_s``
    (a page closed without its unload reaching the server); ``drop`` frees one (the page's unload).
    """

    def __init__(self, factory: Callable[[], LiveSession], idle_s: float = limits.LIVE_IDLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.factory, self.idle_s, self.clock = factory, idle_s, clock
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> LiveSession:
        now = self.clock()
        with self._lock:
            for k in [k for k, s in self._sessions.items() if k != key and now - s.last_seen > self.idle_s]:
                del self._sessions[k]
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = self.factory()
            return session

    def drop(self, key: str | None) -> None:
        with self._lock:
            self._sessions.pop(key, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, key: object) -> bool:
        return key in self._sessions
