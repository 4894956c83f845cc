"""Face detection: facenet-pytorch's MTCNN on a bounded-size copy of the photo.

MTCNN's cost grows with the number of pixels and with the number of pyramid levels, which
the smallest face searched for sets. ``FaceDetector`` therefore runs it on a copy whose
longer side is at most ``limits.DETECT_MAX_SIDE`` and searches only for faces of at least
``limits.MIN_FACE_FRAC`` of that copy's shorter side, then maps boxes and landmarks back to
the original image. MTCNN's weights ship inside the facenet-pytorch package: nothing is
downloaded.

Speed, without changing what is found (same boxes, landmarks and scores up to float rounding;
``tests/test_detect.py`` compares with a stock MTCNN): MTCNN's three networks run channels-last
(their max-pools and convolutions take oneDNN's fast kernels instead of the reference ones), and
MTCNN's stages run as ``fer_demo.mtcnn.detect_face``: facenet-pytorch's own steps, with the image
pyramid and every candidate's crop resampled from one summed-area table of the photo (bit for bit
the pixels facenet-pytorch's per-box resampling gives, in a few gathers instead of ~80 calls).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image, ImageOps

from fer_demo import limits, mtcnn
from fer_demo.threads import check_count, intra_op_threads

# MTCNN's own default smallest face (px in the image it runs on). Smaller values upsample
# the image for the first pyramid level, which is slow and finds mostly noise.
MTCNN_MIN_FACE_PX = 20
# MTCNN's three stage thresholds (P-Net, R-Net, O-Net): facenet-pytorch's defaults.
THRESHOLDS = (0.6, 0.7, 0.7)
# Final O-Net score a detection must reach to count as a face. The defaults above keep
# O-Net scores down to 0.7, where most false positives (textures, a cat's face) live;
# true faces, even small or turned ones, score >= 0.95 on the examples.
MIN_SCORE = 0.9
# Landmark order of MTCNN (and of ``Face.landmarks``), in image coordinates.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in pixel coordinates of the image given to ``detect``.

    Attributes:
        box: (x1, y1, x2, y2) float pixels, clipped to the image (0 <= x1 < x2 <= width).
        landmarks: float32 array (5, 2) of (x, y) pixels: left eye, right eye, nose, left and
            right mouth corner, "left"/"right" as seen in the image. Not clipped (a landmark
            of a face cut by the border may lie just outside the image).
        score: MTCNN's O-Net face probability in [MIN_SCORE, 1].

    Faces compare by identity (``eq=False``: a dataclass ``==`` over an array is ambiguous).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


class FaceDetector:
    """MTCNN wrapper with bounded cost and a typed result.

    Args:
        max_side: longest side (px) of the copy MTCNN runs on; larger photos are downscaled
            for detection only. Must be >= 2 * MTCNN_MIN_FACE_PX.
        min_face_frac: smallest face searched for, as a fraction of the detection copy's
            shorter side, in [0, 1); never below ``MTCNN_MIN_FACE_PX``.
        thresholds: MTCNN's three stage thresholds, each in (0, 1).
        min_score: final face probability a detection must reach, in [0, 1].
        autocontrast: percentage (0-49) of darkest and brightest pixels clipped when the detection
            copy's contrast is stretched (``limits.DETECT_AUTOCONTRAST_CUTOFF``); 0 = no stretch.
        device: torch device for the three small networks.
        threads: CPU threads MTCNN runs on, set for the calling thread only
            (``fer_demo.threads.intra_op_threads``); default ``limits.ANALYSIS_THREADS``; None:
            torch's own setting.

    ``detect`` is thread-safe (one call at a time runs MTCNN).
    """

    def __init__(
        self,
        max_side: int = limits.DETECT_MAX_SIDE,
        min_face_frac: float = limits.MIN_FACE_FRAC,
        thresholds: tuple[float, float, float] = THRESHOLDS,
        min_score: float = MIN_SCORE,
        device: str | torch.device = "cpu",
        autocontrast: float = limits.DETECT_AUTOCONTRAST_CUTOFF,
        threads: int | None = limits.ANALYSIS_THREADS,
    ) -> None:
        self.threads = check_count(threads)
        if not 0.0 <= autocontrast < 50.0:
            raise ValueError(f"autocontrast={autocontrast} must be a percentage in [0, 50)")
        self.autocontrast = float(autocontrast)
        if int(max_side) < 2 * MTCNN_MIN_FACE_PX:
            raise ValueError(f"max_side={max_side} is too small; use at least {2 * MTCNN_MIN_FACE_PX} px")
        if not 0.0 <= min_face_frac < 1.0:
            raise ValueError(f"min_face_frac={min_face_frac} must be in [0, 1)")
        if len(thresholds) != 3 or not all(0.0 < t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds={thresholds!r} must be three numbers in (0, 1)")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score={min_score} must be in [0, 1]")
        self.max_side = int(max_side)
        self.min_face_frac = float(min_face_frac)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.min_score = float(min_score)
        self.device = torch.device(device)
        # keep_all: every face; select_largest=False: sorted by probability; post_process
        # is irrelevant to ``detect`` but keeps ``forward`` from standardising crops.
        self._mtcnn = MTCNN(
            keep_all=True, post_process=False, select_largest=False,
            thresholds=list(self.thresholds), min_face_size=MTCNN_MIN_FACE_PX, device=self.device,
        ).eval()
        for net in (self._mtcnn.pnet, self._mtcnn.rnet, self._mtcnn.onet):
            net.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()

    def detection_size(self, width: int, height: int) -> tuple[int, int, float]:
        """Size (w, h) of the copy MTCNN runs on for a width x height image, and its scale.

        The longer side is brought down to ``max_side``, but never the shorter side below
        ``2 * MTCNN_MIN_FACE_PX`` (a panorama strip keeps the faces it has): the pixel count stays
        bounded by ``max_side * width / height * 40``, small for any photo within ``MAX_PIXELS``.
        """
        scale = min(1.0, self.max_side / max(width, height))
        scale = max(scale, min(1.0, 2 * MTCNN_MIN_FACE_PX / min(width, height)))
        if scale >= 1.0:
            return width, height, 1.0
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        return w, h, scale

    def min_face_px(self, det_width: int, det_height: int) -> int:
        """Smallest face (px in the detection copy) searched for in a copy of that size."""
        return max(MTCNN_MIN_FACE_PX, math.ceil(self.min_face_frac * min(det_width, det_height)))

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        """Find faces in an RGB image.

        Args:
            image: ``PIL.Image`` in mode "RGB" (as ``fer_demo.io.load_image`` returns) or a
                uint8 array (H, W, 3) RGB.

        Returns:
            The faces, highest score first, in the input image's pixel coordinates. Empty
            when there is none (never ``None``).

        Raises:
            TypeError / ValueError: ``image`` is not an RGB PIL image or (H, W, 3) uint8 array.
        """
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image array must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
            image = Image.fromarray(image)
        if not isinstance(image, Image.Image):
            raise TypeError(f"detect takes a PIL.Image or a uint8 (H, W, 3) array, not {type(image).__name__}")
        if image.mode != "RGB":
            raise ValueError(f"image mode is {image.mode!r}; convert it with fer_demo.io.load_image (RGB)")
        width, height = image.size
        det_w, det_h, scale = self.detection_size(width, height)
        small = image if scale == 1.0 else image.resize((det_w, det_h), Image.BILINEAR, reducing_gap=2.0)
        if self.autocontrast > 0:  # dim faces: MTCNN finds more of them in a contrast-stretched copy
            small = ImageOps.autocontrast(small, cutoff=self.autocontrast)
        sx, sy = width / det_w, height / det_h  # exact per-axis factors after rounding
        min_face = self.min_face_px(det_w, det_h)
        if min(det_w, det_h) < min_face:
            return []  # no face of the smallest size fits (MTCNN itself fails on such images)
        net = self._mtcnn
        with self._lock, intra_op_threads(self.threads), torch.inference_mode():
            found, points = mtcnn.detect_face(np.asarray(small), min_face, net.pnet, net.rnet, net.onet,
                                              self.thresholds, net.factor)
        faces = []
        for (*box, prob), pts in zip(found, points):
            if float(prob) < self.min_score:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            x1, x2 = min(max(x1 * sx, 0.0), width), min(max(x2 * sx, 0.0), width)
            y1, y2 = min(max(y1 * sy, 0.0), height), min(max(y2 * sy, 0.0), height)
            if x2 - x1 < 1.0 or y2 - y1 < 1.0:
                continue  # a box entirely outside the image after clipping
            # Landmarks are pixel positions (pixel centres at integers): centre-aligned mapping.
            lm = (np.asarray(pts, dtype=np.float64).reshape(5, 2) + 0.5) * (sx, sy) - 0.5
            lm = lm.astype(np.float32)
            faces.append(Face(box=(x1, y1, x2, y2), landmarks=lm, score=float(prob)))
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces
