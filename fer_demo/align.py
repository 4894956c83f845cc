"""Face alignment: from a photo and MTCNN's landmarks to a FER2013-like 48x48 face.

FER2013 faces are tight crops, roughly chin to forehead, with the eyes at ~39% of the
height. An MTCNN box plus a margin is not that framing. The template below was measured on
FER2013 itself with ``benchmarks/fer_framing.py``: MTCNN run on 416 PublicTest faces (60 per
class incl. all 56 "disgust"; upscaled 4x and padded so it can find them, 385 found), and
the medians of its landmarks in the 48x48 frame are where this module puts every face. A
face is rotated so its eyes are level, scaled from its eye distance and eye-to-mouth
distance, and cut as a square; the same similarity transform gives a larger colour crop for
display. A mirrored face gives the mirrored crop (the template is left-right symmetric).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from fer_demo.detect import Face
from fer_demo.model import FACE_SIZE

# --- Template, as fractions of the square frame's side (measured on FER2013 PublicTest) ---
# Eye midpoint: horizontally centred (FER2013 median 0.504; 0.5 keeps the template symmetric
# so a mirrored face gives the mirrored crop), 39% down from the top (median 0.391).
EYE_CENTER_X = 0.5
EYE_CENTER_Y = 0.39
# Frame side from the face's size. FER2013 medians: eye distance 0.374 of the side, eye
# midpoint to mouth midpoint 0.411 (mouth at 0.791 of the height). Each alone varies about as
# much across FER2013 (19.1% and 19.2% std); the larger of the two size estimates varies
# least (18.3%) and is not fooled by a turned head (which shortens the eye distance) or a
# tilted one (which shortens the eye-mouth distance). Taking the larger estimate inflates the
# side by 3.5% at the median, so both fractions are the medians divided by 1.035:
#   frame side = max(eye_dist / EYE_DIST, eye_mouth_dist / EYE_MOUTH_DIST)
EYE_DIST = 0.361
EYE_MOUTH_DIST = 0.397
# Side of the colour crop for display (and for the CAM overlay); 4x the 48 px face, so the
# grayscale face is an exact 4x4 box average of this crop.
DISPLAY_SIZE = 192
# ITU-R BT.601 luma weights (what PIL's "L" conversion and OpenCV's RGB2GRAY use).
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A face cut out of a photo with FER2013's framing.

    Attributes:
        gray: uint8 (48, 48) grayscale face, the classifier's input.
        rgb: uint8 (DISPLAY_SIZE, DISPLAY_SIZE, 3) colour crop with the same framing.
        matrix: float64 (2, 3) affine transform from original-image pixels to ``gray``'s
            pixels (pixel centres at integer coordinates): ``[u, v] = matrix @ [x, y, 1]``.
            ``cv2.invertAffineTransform(matrix)`` maps the 48x48 frame (e.g. a heatmap) back.
    """

    gray: np.ndarray
    rgb: np.ndarray
    matrix: np.ndarray


def template_points(size: int = FACE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Where alignment puts the eye midpoint (x, y) in a ``size`` px frame, and the eye
    distance in px when the eye distance sets the scale (pixel centres at integers)."""
    centre = np.array([EYE_CENTER_X * size - 0.5, EYE_CENTER_Y * size - 0.5])
    return centre, np.array(EYE_DIST * size)


def alignment_matrix(landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Similarity transform (2, 3) from image pixels to a ``size`` x ``size`` aligned frame.

    Args:
        landmarks: (5, 2) MTCNN landmarks (left eye, right eye, nose, mouth left, mouth right)
            in image pixels.

    The eyes end up level (the rotation comes from the eye landmarks only), the eye midpoint at
    (EYE_CENTER_X, EYE_CENTER_Y) of the frame, and the frame's side is the larger of
    eye_distance / EYE_DIST and eye_mouth_distance / EYE_MOUTH_DIST.

    Raises:
        ValueError: landmarks are not (5, 2) finite numbers, or the eyes coincide.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise ValueError(f"landmarks must be a finite (5, 2) array, got shape {lm.shape}")
    left, right = lm[0], lm[1]
    eye_mid = (left + right) / 2
    mouth_mid = (lm[3] + lm[4]) / 2
    eye_vec = right - left
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-3:
        raise ValueError("the two eye landmarks coincide; cannot align this face")
    # "Down" in the face is the eye vector turned +90 degrees (image y grows downwards). If
    # the mouth is on the other side, the eyes came in the other order: turn the face round.
    down = np.array([-eye_vec[1], eye_vec[0]])
    if np.dot(mouth_mid - eye_mid, down) < 0:
        eye_vec = -eye_vec
    angle = math.atan2(eye_vec[1], eye_vec[0])
    eye_mouth = float(np.hypot(*(mouth_mid - eye_mid)))
    side = max(eye_dist / EYE_DIST, eye_mouth / EYE_MOUTH_DIST)  # frame side in image px
    scale = size / side
    cos, sin = math.cos(-angle) * scale, math.sin(-angle) * scale
    rot = np.array([[cos, -sin], [sin, cos]])
    centre, _ = template_points(size)
    return np.hstack([rot, (centre - rot @ eye_mid)[:, None]])


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(2, 3) affine a after (2, 3) affine b."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Sample a size x size crop, low-pass filtering first when the crop shrinks the image.

    Only the part of the image under the crop is touched. When the crop is smaller than that
    part (a large face), the part is first shrunk with area averaging so that the bilinear
    warp does not alias; pixels outside the image repeat the nearest edge pixel.
    """
    h, w = image.shape[:2]
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1], [size - 0.5, size - 0.5, 1]])
    src = corners @ inv.T
    x0, y0 = (int(max(0, math.floor(v) - 1)) for v in src.min(axis=0))
    x1, y1 = (int(min(lim, math.ceil(v) + 2)) for v, lim in zip(src.max(axis=0), (w, h)))
    if x1 - x0 < 1 or y1 - y0 < 1:  # crop lies entirely outside the image
        x0, y0, x1, y1 = 0, 0, w, h
    region = image[y0:y1, x0:x1]
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    # region px -> image px: shift by (x0, y0)
    to_image = np.array([[1.0, 0, x0], [0, 1.0, y0]])
    if scale < 0.5:
        rw, rh = max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))
        fx, fy = rw / region.shape[1], rh / region.shape[0]
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        # resized px -> region px, centre-aligned as cv2.resize samples.
        to_image = _compose(to_image, np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5]]))
    m = _compose(matrix, to_image)
    return cv2.warpAffine(region, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def check_rgb(image, what: str = "image") -> np.ndarray:
    """``image`` as a uint8 (H, W, 3) RGB array; ``ValueError`` naming ``what`` if it is not one."""
    rgb = np.asarray(image)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{what} must be uint8 (H, W, 3) RGB, got {rgb.dtype} {rgb.shape}")
    return rgb


def align_face(image: Image.Image | np.ndarray, face: Face, display_size: int = DISPLAY_SIZE) -> AlignedFace:
    """Cut ``face`` out of ``image`` with FER2013's framing (see the module docstring).

    Args:
        image: the RGB image the face was detected in (``PIL.Image`` "RGB" or uint8 (H, W, 3)).
        face: a detection from ``FaceDetector.detect`` on that image.
        display_size: side of the colour crop, a multiple of 48.

    Returns:
        ``AlignedFace`` with the 48x48 uint8 grayscale face (BT.601 luma of the colour crop,
        4x4 area-averaged), the colour crop and the image -> 48x48 affine matrix.
    """
    if display_size % FACE_SIZE:
        raise ValueError(f"display_size={display_size} must be a multiple of {FACE_SIZE}")
    rgb_image = check_rgb(image)
    matrix = alignment_matrix(face.landmarks, FACE_SIZE)
    k = display_size // FACE_SIZE
    # 48-frame px -> display px, centre-aligned: u' = (u + 0.5) * k - 0.5
    to_display = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5]], dtype=np.float64)
    crop = _warp(rgb_image, _compose(to_display, matrix), display_size)
    luma = crop.astype(np.float32) @ LUMA
    gray = cv2.resize(luma, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return AlignedFace(gray=gray, rgb=np.ascontiguousarray(crop), matrix=matrix)
