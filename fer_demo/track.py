"""Faces followed across video frames, with probabilities smoothed over time (for live and video modes).

``FaceTracker.update(boxes, probabilities, t)`` takes one frame's detections and returns them as
``TrackedFace``s: the same ``track_id`` for the same face from frame to frame (greedy matching by
box overlap, IoU), probabilities averaged over time with an exponential moving average whose
time constant is in seconds (so it behaves the same at 5 or 30 frames per second), and a label
with hysteresis: it changes only when another class leads the current one by ``switch_margin``
in the smoothed probabilities, so a face between two expressions does not flicker between them.
A face unseen for more than ``max_missed_s`` seconds is forgotten; if it comes back, it gets a
new id.

**A new person gets a new id.** Overlap alone would hand a track to whoever appears in its place
(a film cutting from one face to another at the same spot). With ``appearances`` (one
``appearance_descriptor`` per face: a colour histogram of the aligned face, which changes little
with expression or motion), a detection continues a track only if it also looks like it:
Bhattacharyya similarity at least ``min_similarity`` (``MIN_SIMILARITY``).

IoU matching rather than supervision's ByteTrack: supervision requires ``opencv-python``, which
would sit beside the app's ``opencv-python-headless`` (two copies of cv2 in one environment), and
the few faces of a webcam or a short clip need no motion model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]

# Least appearance similarity (Bhattacharyya coefficient of ``appearance_descriptor``s, in [0, 1]) that
# continues a track. Measured on the example photos' aligned faces: the same face in consecutive
# frames of a panning clip 0.998-1.0, the astronaut and her mirror image 0.997, two different people
# (the astronaut, Grace Hopper) 0.40-0.43; 0.75 leaves room for lighting and expression changes.
MIN_SIMILARITY = 0.75
# How fast a track's appearance follows the face (weight of the newest frame's descriptor).
APPEARANCE_RATE = 0.3
HIST_BINS = 8  # per colour channel: 8 x 8 x 8 bins


def appearance_descriptor(face_rgb: np.ndarray) -> np.ndarray:
    """A colour histogram of a uint8 (S, S, 3) RGB aligned face (its centre 3/4, without the border
    of background): float64 (512,), sums to 1 (all zeros would be an empty crop, never returned)."""
    face = np.asarray(face_rgb)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3 or min(face.shape[:2]) < 4:
        raise ValueError(f"face_rgb must be uint8 (S, S, 3) with S >= 4, got {face.dtype} {face.shape}")
    h, w = face.shape[:2]
    centre = face[h // 8: h - h // 8, w // 8: w - w // 8].reshape(-1, 3) // (256 // HIST_BINS)
    index = (centre[:, 0].astype(np.int64) * HIST_BINS + centre[:, 1]) * HIST_BINS + centre[:, 2]
    counts = np.bincount(index, minlength=HIST_BINS**3).astype(np.float64)
    return counts / counts.sum()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two ``appearance_descriptor``s: 1 for the same histogram, 0 for
    no colour in common."""
    return float(np.sqrt(np.asarray(a) * np.asarray(b)).sum())


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes (0 when they do not overlap)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class TrackedFace:
    """One face in one frame: its track, where it is, its smoothed probabilities and stable label."""

    track_id: int
    box: Box
    probabilities: np.ndarray  # smoothed, sums to 1
    label: int  # index into the class list; changes with hysteresis
    raw: np.ndarray  # this frame's own probabilities


@dataclass
class _Track:
    track_id: int
    box: Box
    probs: np.ndarray
    label: int
    last_t: float
    history: list[tuple[float, np.ndarray]] = field(default_factory=list)
    appearance: np.ndarray | None = None


class FaceTracker:
    """IoU matching + exponential smoothing (see the module docstring).

    ``tau_s``: the smoothing time constant (a new frame weighs ``1 - exp(-dt / tau_s)``);
    ``switch_margin``: how far another class must lead the current label to replace it;
    ``min_iou``: the least overlap that continues a track; ``max_missed_s``: how long an unseen
    face is remembered; ``history_s``: how much of each track's smoothed history is kept (plots);
    ``min_similarity``: the least appearance similarity that continues a track (when ``update``
    is given appearances).
    """

    def __init__(self, tau_s: float = 0.5, switch_margin: float = 0.1, min_iou: float = 0.3,
                 max_missed_s: float = 1.0, history_s: float = 10.0, min_similarity: float = MIN_SIMILARITY) -> None:
        if tau_s < 0 or switch_margin < 0 or not 0 < min_iou <= 1 or max_missed_s < 0:
            raise ValueError("tau_s, switch_margin and max_missed_s must be >= 0 and min_iou in (0, 1]")
        if not 0 <= min_similarity <= 1:
            raise ValueError(f"min_similarity must be in [0, 1], got {min_similarity}")
        self.tau_s, self.switch_margin, self.min_iou = tau_s, switch_margin, min_iou
        self.min_similarity = min_similarity
        self.max_missed_s, self.history_s = max_missed_s, history_s
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self._tracks, self._next_id = [], 1

    def history(self, track_id: int) -> list[tuple[float, np.ndarray]]:
        """(time, smoothed probabilities) of a live track over the last ``history_s`` seconds."""
        return next((list(t.history) for t in self._tracks if t.track_id == track_id), [])

    def update(self, boxes: Sequence[Box], probabilities: Sequence[np.ndarray], t: float,
               appearances: Sequence[np.ndarray] | None = None) -> list[TrackedFace]:
        """This frame's faces (``boxes`` with their ``probabilities``) at time ``t`` seconds, tracked.

        ``appearances``: one ``appearance_descriptor`` per box, or None (overlap alone decides). A
        face that overlaps a track but does not look like it starts a new track.
        """
        if len(boxes) != len(probabilities):
            raise ValueError(f"{len(boxes)} boxes but {len(probabilities)} probability vectors")
        if appearances is not None and len(appearances) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(appearances)} appearance descriptors")
        self._tracks = [tr for tr in self._tracks if t - tr.last_t <= self.max_missed_s]

        def looks_alike(tr: _Track, di: int) -> bool:
            return (appearances is None or tr.appearance is None
                    or similarity(tr.appearance, appearances[di]) >= self.min_similarity)

        pairs = sorted(((iou(tr.box, tuple(b)), ti, di) for ti, tr in enumerate(self._tracks)
                        for di, b in enumerate(boxes) if looks_alike(tr, di)), reverse=True)
        matched: dict[int, int] = {}  # detection -> track index
        used: set[int] = set()
        for overlap, ti, di in pairs:
            if overlap < self.min_iou:
                break
            if ti not in used and di not in matched:
                matched[di] = ti
                used.add(ti)
        out = []
        for di, (box, p) in enumerate(zip(boxes, probabilities)):
            p = np.asarray(p, dtype=np.float64)
            if di in matched:
                tr = self._tracks[matched[di]]
                weight = 1.0 if self.tau_s == 0 else 1.0 - math.exp(-max(t - tr.last_t, 0.0) / self.tau_s)
                tr.probs = (1 - weight) * tr.probs + weight * p
                tr.box, tr.last_t = tuple(box), t
                best = int(np.argmax(tr.probs))
                if best != tr.label and tr.probs[best] - tr.probs[tr.label] >= self.switch_margin:
                    tr.label = best
            else:
                tr = _Track(self._next_id, tuple(box), p.copy(), int(np.argmax(p)), t)
                self._next_id += 1
                self._tracks.append(tr)
            if appearances is not None:
                seen = np.asarray(appearances[di], dtype=np.float64)
                tr.appearance = seen if tr.appearance is None else (
                    (1 - APPEARANCE_RATE) * tr.appearance + APPEARANCE_RATE * seen)
            tr.history.append((t, tr.probs.copy()))
            tr.history = [(ht, hp) for ht, hp in tr.history if t - ht <= self.history_s]
            out.append(TrackedFace(tr.track_id, tr.box, tr.probs.copy(), tr.label, p))
        return out
