"""Frames over time: the per-frame core of the video-file and live webcam modes.

``FrameAnalyzer.process(frame, t)`` takes one RGB frame and returns a ``FrameResult``: every face
with a track id that stays the same from frame to frame (``fer_demo.track.FaceTracker``), its
probabilities smoothed over time, a label that does not flicker, and optionally the CAM of the
face on the frame. ``annotate_frame`` draws that result onto the frame.

Speed: MTCNN costs ~60-100 ms on a 640x480 frame, aligning and classifying one face ~25-35 ms
(VGG19 on a 40x40 crop, two CPU cores). So the detector runs only on every ``detect_every``-th
frame (and on every frame while no face is known, and after a gap in time longer than the tracker
remembers a face); on the frames in between, the last detection's faces (box and landmarks) are
aligned and classified again on the new frame, exactly as ``Predictor.analyze`` aligns a photo's
faces. A face that moves keeps being read from where it was at the last detection until the next
one, which is at most ``detect_every - 1`` frames later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from fer_demo.align import check_rgb
from fer_demo.colours import FACE_COLOURS, rgb
from fer_demo.detect import Face
from fer_demo.pipeline import REGION_MIN_HEAT, Predictor, blend, heatmap_to_image
from fer_demo.quality import confidence_and_margin, judge, refusal
from fer_demo.track import FaceTracker, appearance_descriptor

# Detector every this many frames by default: at ~10-15 webcam frames/s a face is re-detected
# about three times a second, and 4 frames in 5 cost only the classification (~25-35 ms).
DETECT_EVERY = 5


def track_colour(track_id: int) -> str:
    """The colour ("#RRGGBB") of a track's box and tag: the same id, the same colour, in every frame,
    and the colour a photo's face of that number gets (``FACE_COLOURS``)."""
    return FACE_COLOURS[(int(track_id) - 1) % len(FACE_COLOURS)]


def track_color(track_id: int) -> tuple[int, int, int]:
    """``track_colour`` as an (R, G, B) tuple, for drawing with OpenCV."""
    return rgb(track_colour(track_id))


@dataclass(eq=False)
class FrameFace:
    """One tracked face in one frame.

    Attributes:
        track_id: the face's id, the same in every frame it is followed through (from 1).
        box: (x1, y1, x2, y2) pixels of the frame, integral values clipped to it (x2 > x1, y2 > y1).
        probabilities: float64 (C,) smoothed over time (the tracker's exponential moving average),
            sums to 1, in ``FrameAnalyzer.classes`` order.
        raw_probabilities: float32 (C,) this frame's own probabilities.
        label: the smoothed label, changing with hysteresis (``FaceTracker``).
        heatmap: float32 (y2 - y1, x2 - x1) in [0, 1], the CAM of this frame's most probable class
            mapped onto the box region of the frame; None without a CAM.
        abstained: True when the face failed the quality check (``fer_demo.quality``) and the
            predictor abstains: ``display_label`` then says "can't read this face reliably (why)".
            Size, sharpness, light and pose are this frame's; whether the expression is clear
            (confidence, margin) is judged on the smoothed ``probabilities``, so a face between two
            expressions does not flicker between its label and a refusal.
        reasons: why the face is unreadable (empty when readable).
    """

    track_id: int
    box: tuple[float, float, float, float]
    probabilities: np.ndarray
    raw_probabilities: np.ndarray
    label: str
    heatmap: np.ndarray | None = None
    abstained: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def display_label(self) -> str:
        """The smoothed label, or "can't read this face reliably (why)" when abstained."""
        return refusal(self.reasons) if self.abstained else self.label

    @property
    def area(self) -> float:
        """The box's area in square pixels."""
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def to_dict(self, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready: track_id, box, label, probabilities {class: p} (smoothed), no pixels.

        ``classes`` default to the seven FER2013 emotions (``fer_demo.model.EMOTIONS``).
        """
        if classes is None:
            from fer_demo.model import EMOTIONS as classes
        return {
            "track_id": int(self.track_id),
            "box": [round(float(v), 1) for v in self.box],
            "label": self.label,
            "abstained": bool(self.abstained),
            "display_label": self.display_label,
            "probabilities": {c: round(float(p), 6) for c, p in zip(classes, self.probabilities)},
        }


@dataclass(eq=False)
class FrameResult:
    """One processed frame.

    Attributes:
        index: the frame's number in the stream (0-based; for a video file, among the sampled frames).
        t: its time in seconds.
        faces: its tracked faces (empty when none is known), in the detector's order.
        detected: True if the detector ran on this frame; False when the faces were carried over
            from the last detection.
        seconds: processing time of the frame (detection, classification, CAM), not drawing.
        classes: the class names the probabilities refer to.
    """

    index: int
    t: float
    faces: list[FrameFace]
    detected: bool
    seconds: float
    classes: tuple[str, ...] = field(default=())

    def to_dicts(self) -> list[dict[str, Any]]:
        """One flat record per face: frame, time, face (track id), box, label, probabilities.

        Empty when the frame has no face. The probabilities are the smoothed ones, one key per class.
        """
        classes = self.classes or None
        records = []
        for face in self.faces:
            d = face.to_dict(classes)
            records.append({"frame": int(self.index), "time": round(float(self.t), 3), "face": d.pop("track_id"), **d})
        return records


class FrameAnalyzer:
    """Detect (every ``detect_every``-th frame), classify, track and optionally explain the faces of frames.

    Args:
        predictor: the loaded ``Predictor`` (its detector, classifier and explainer are used).
        detect_every: run the detector on every this-many-th frame, and on every frame while no face
            is known; >= 1 (1: every frame).
        cam: a ``fer_demo.explain.CAM_METHODS`` name for a heatmap per face, or None / "none" (labels
            only, faster).
        tracker: the ``FaceTracker`` (default: its defaults: 0.5 s smoothing, label hysteresis).

    One analyzer follows one stream: frames must come in time order. Not thread-safe (one stream,
    one caller); several analyzers may share one ``Predictor``.

    Raises:
        ValueError: ``detect_every`` < 1 or an unknown ``cam``.
    """

    def __init__(self, predictor: Predictor, detect_every: int = DETECT_EVERY, cam: str | None = None,
                 tracker: FaceTracker | None = None) -> None:
        if int(detect_every) < 1:
            raise ValueError(f"detect_every={detect_every} must be at least 1")
        self.predictor = predictor
        self.detect_every = int(detect_every)
        self.cam = predictor._check_options(cam, None, "none")
        self.tracker = tracker if tracker is not None else FaceTracker()
        self.classes: tuple[str, ...] = tuple(predictor.classes)
        self._faces: list[Face] = []  # the last detection's faces, re-used until the next one
        self._since_detect = 0
        self._detect_t = 0.0  # time of the last detection
        self._next_index = 0

    def reset(self) -> None:
        """Forget every face and track (a new stream starts)."""
        self.tracker.reset()
        self._faces, self._since_detect, self._detect_t, self._next_index = [], 0, 0.0, 0

    def process(self, frame: np.ndarray, t: float, index: int | None = None) -> FrameResult:
        """Analyse one frame.

        Args:
            frame: uint8 (H, W, 3) RGB. Large frames are fine: the detector works on a copy of at
                most ``limits.DETECT_MAX_SIDE`` px (video files are brought down to
                ``limits.VIDEO_MAX_SIDE`` when decoded).
            t: the frame's time in seconds (non-decreasing across calls).
            index: the frame's number; default: one more than the last call's.

        Returns:
            A ``FrameResult``; its faces are empty when none is known.

        Raises:
            ValueError: ``frame`` is not uint8 (H, W, 3).
        """
        return self.process_many([frame], [t], None if index is None else [index])[0]

    def process_many(self, frames: Sequence[np.ndarray], times: Sequence[float],
                     indices: Sequence[int] | None = None) -> list[FrameResult]:
        """Analyse consecutive frames: the same results as ``process`` on each in turn, faster.

        The frames that share a detection (the detection frame and those after it that re-use its faces)
        go through the classifier as one batch. For video files, whose frames are there ahead of time;
        a live stream has one frame at a time. ``seconds`` of a batch's frames is its time shared out.

        Raises:
            ValueError: a frame is not uint8 (H, W, 3), or the lengths differ.
        """
        arrays = [check_rgb(f, "frame") for f in frames]
        if len(times) != len(arrays) or (indices is not None and len(indices) != len(arrays)):
            raise ValueError(f"{len(arrays)} frames but {len(times)} times"
                             + ("" if indices is None else f" and {len(indices)} indices"))
        out: list[FrameResult] = []
        i = 0
        while i < len(arrays):
            start = time.perf_counter()
            detected = self._detection_due(times[i], self._since_detect)
            if detected:
                found = self.predictor.detector.detect(np.ascontiguousarray(arrays[i]))
                self._faces = found[: self.predictor.max_faces]
                self._since_detect, self._detect_t = 0, float(times[i])
            else:
                self._since_detect += 1
            group = [i]  # this frame and the following ones that will re-use its faces
            while (self._faces and group[-1] + 1 < len(arrays)
                   and not self._detection_due(times[group[-1] + 1], self._since_detect)):
                group.append(group[-1] + 1)
                self._since_detect += 1
            per_frame = self.predictor.analyze_frames([arrays[g] for g in group], self._faces, cam=self.cam,
                                                      overlays=False)
            seconds = (time.perf_counter() - start) / len(group)
            for k, (g, results) in enumerate(zip(group, per_frame)):
                index = self._next_index if indices is None else int(indices[g])
                self._next_index = index + 1
                out.append(self._track(results, float(times[g]), index, detected and k == 0, seconds))
            i = group[-1] + 1
        return out

    def _detection_due(self, t: float, since_detect: int) -> bool:
        # Every detect_every-th frame, while no face is known, and after a gap in time longer than the
        # tracker remembers faces (a paused stream).
        return (not self._faces or since_detect >= self.detect_every - 1
                or not 0 <= t - self._detect_t <= self.tracker.max_missed_s)

    def _track(self, results: list, t: float, index: int, detected: bool, seconds: float) -> FrameResult:
        boxes = [tuple(float(v) for v in r.box) for r in results]
        raw = [np.array([r.probabilities[c] for c in self.classes], dtype=np.float32) for r in results]
        faces = []
        # What each face looks like, so a different person at the same place gets a new track id.
        looks = [appearance_descriptor(r.aligned_rgb) for r in results]
        for r, tr in zip(results, self.tracker.update(boxes, raw, t, appearances=looks)):
            heat = None if r.heatmap is None else heatmap_to_image(r.heatmap, r.matrix, r.box)
            abstained, reasons = self._verdict(r, tr.probabilities)
            faces.append(FrameFace(track_id=tr.track_id, box=tr.box, probabilities=tr.probabilities,
                                   raw_probabilities=tr.raw.astype(np.float32), label=self.classes[tr.label],
                                   heatmap=heat, abstained=abstained, reasons=reasons))
        return FrameResult(index=index, t=t, faces=faces, detected=detected, seconds=seconds, classes=self.classes)

    def _verdict(self, r, smoothed: np.ndarray) -> tuple[bool, tuple[str, ...]]:
        # This frame's measurements of the face (size, sharpness, light, pose), but "no clear
        # expression" judged on the smoothed probabilities the label comes from: a face between two
        # expressions would otherwise flicker between its label and a refusal from frame to frame.
        q = r.quality
        if q is None:
            return bool(r.abstained), ()
        readable, reasons = judge(q.face_px, q.sharpness, q.brightness, q.detection_score, q.yaw,
                                  *confidence_and_margin(np.asarray(smoothed, dtype=np.float64)), q.thresholds)
        return self.predictor.abstain and not readable, reasons


def annotate_frame(frame: np.ndarray, result: FrameResult, classes: Sequence[str],
                   show_cam: bool = False) -> np.ndarray:
    """The frame with each face's box and "id label p%" tag drawn on it (and its CAM with ``show_cam``).

    Args:
        frame: uint8 (H, W, 3) RGB, the frame ``result`` was computed on (not modified).
        result: ``FrameAnalyzer.process``'s result for it.
        classes: the class names of the probabilities (``FrameAnalyzer.classes``).
        show_cam: tint each face's box region with its heatmap where it has one.

    Returns:
        uint8 (H, W, 3) RGB, a new array. The tag shows the smoothed label and its smoothed probability.
    """
    out = np.array(frame, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    side = min(height, width)
    thick = max(2, round(side / 240))
    # The tag's text about 1/20 of the frame's shorter side (24 px on a 480 px frame): still readable
    # when a phone shows a 640x480 frame 360 px wide.
    scale = max(0.6, side / 500)
    stroke = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for f in result.faces:
        x1, y1, x2, y2 = (round(v) for v in f.box)
        if show_cam and f.heatmap is not None and f.heatmap.shape == (y2 - y1, x2 - x1):
            out[y1:y2, x1:x2] = blend(out[y1:y2, x1:x2], f.heatmap, min_heat=REGION_MIN_HEAT)
        color = track_color(f.track_id)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, thick)
        k = list(classes).index(f.label) if f.label in classes else int(np.argmax(f.probabilities))
        text = (f"{f.track_id} {f.display_label}" if f.abstained
                else f"{f.track_id} {f.label} {float(f.probabilities[k]):.0%}")
        (tw, th), base = cv2.getTextSize(text, font, scale, stroke)
        pad = thick
        ty = y1 - th - base - 2 * pad  # above the box, else inside its top
        ty = ty if ty >= 0 else min(y1, height - th - base - 2 * pad)
        tx = min(max(0, x1), max(0, width - tw - 2 * pad))
        cv2.rectangle(out, (tx, ty), (tx + tw + 2 * pad, ty + th + base + 2 * pad), color, -1)
        cv2.putText(out, text, (tx + pad, ty + pad + th), font, scale, (0, 0, 0), stroke, cv2.LINE_AA)
    return out
