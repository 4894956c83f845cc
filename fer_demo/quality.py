"""Can this face be read? A quality assessment per face and the verdict behind "can't read this face reliably".

``assess`` turns what is known about one face into a ``FaceQuality``: its size in the photo (the side
of the aligned frame, in the photo's pixels), sharpness and brightness of the 48x48 face the
classifier sees (before its histogram equalisation), the detector's score, the head's pose from the
five landmarks (roll from the eye line, a yaw estimate from where the nose sits between the eyes) and
the calibrated confidence and margin (the top probability minus the runner-up's). ``judge`` compares
them with ``QualityThresholds`` and gives the verdict (readable or not) with the reasons, in words.

The quality floors (size, sharpness, light, pose: ``DEFAULT_THRESHOLDS``) were chosen on data with
``benchmarks/selective.py`` (risk-coverage on ../shared/data/sfew-dev and PublicTest; docs/real_photos.md
has the numbers). The "no clear expression" floors (calibrated confidence and margin) belong to a model:
``python -m train robustness`` (and so the export) chooses them for each release on its real photos
(``train.selective.choose``) and writes them into the release's card, where ``card_thresholds`` reads
them; a card without that section gets ``DEFAULT_THRESHOLDS``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np

# Text shown instead of an expression when a face is refused; the reasons follow in brackets.
UNREADABLE = "can't read this face reliably"


@dataclass(frozen=True)
class QualityThresholds:
    """Limits below (or above) which a face is refused; each names a reason.

    Attributes:
        min_face_px: smallest face, as the aligned frame's side in the photo's pixels (FER2013's
            faces are 48 px; smaller faces are upscaled and have lost detail the model reads).
        min_sharpness: smallest normalised Laplacian variance of the 48x48 face (``sharpness``).
        min_brightness: darkest mean grey level (0-255) of the 48x48 face before equalisation.
        max_brightness: brightest mean grey level.
        max_yaw: largest |yaw| estimate in degrees (a strongly turned head).
        min_detection: smallest detector score.
        min_confidence: smallest calibrated top probability.
        min_margin: smallest gap between the calibrated top probability and the runner-up's (two
            expressions nearly tied: the face shows neither clearly).
    """

    # Chosen with benchmarks/selective.py on sfew-dev (325 faces found) and PublicTest; see docs/real_photos.md.
    # On sfew-dev the faces are mostly large (5th percentile 89 px) and sharp: size and sharpness rarely
    # refuse there; they are floors for what the model cannot have learnt (FER2013's faces are 48 px).
    min_face_px: float = 40.0
    min_sharpness: float = 0.15  # sfew-dev's 5th percentile 0.19; a photo blurred by sigma 5 px: ~0.1
    min_brightness: float = 25.0  # the darkest fifth of sfew-dev's faces were read right 29% of the time, the rest 38%
    max_brightness: float = 235.0
    max_yaw: float = 45.0
    min_detection: float = 0.0  # the detector already keeps only scores >= 0.9 (fer_demo.detect.MIN_SCORE)
    # The margin predicts a wrong answer better than the confidence: on sfew-dev's 325 faces the least
    # confident fifth were read right 23% of the time, the fifth with the smallest margin 22%; at the same
    # floors, confidence >= 0.30 answered 70.8% at +3.9 points, margin >= 0.03 73.5% at +5.3
    # (benchmarks/selective.py, on the half-FER+ fine-tune of 2026-12-02; docs/real_photos.md). With the
    # quarter-FER+ release shipped after it the same floors give +3.4 at 72.9%: these two floors belong
    # to a model, so a release's card carries its own (``card_thresholds``); these are for a card without.
    min_confidence: float = 0.20
    min_margin: float = 0.03


DEFAULT_THRESHOLDS = QualityThresholds()

# The floors a release's card may set (its ``abstention`` section): the ones that depend on the model.
MODEL_FLOORS = ("min_confidence", "min_margin")


def card_thresholds(extra: dict | None, base: QualityThresholds = DEFAULT_THRESHOLDS) -> QualityThresholds:
    """The thresholds to judge a release's faces by: ``base`` with the "no clear expression" floors
    its card chose (``extra["abstention"]["thresholds"]``, written by ``python -m train robustness``);
    ``base`` itself for a card without them.

    Raises:
        ValueError: the section names another threshold or a value that is not a number in [0, 1].
    """
    chosen = ((extra or {}).get("abstention") or {}).get("thresholds") or {}
    if not isinstance(chosen, dict) or set(chosen) - set(MODEL_FLOORS):
        raise ValueError(f"the model card's abstention thresholds {chosen!r} must set only "
                         f"{', '.join(MODEL_FLOORS)}")
    values = {}
    for name, value in chosen.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"the model card's abstention threshold {name}={value!r} must be a number in [0, 1]")
        values[name] = float(value)
    return replace(base, **values)


@dataclass(frozen=True)
class FaceQuality:
    """What is known about how well a face can be read, and the verdict.

    Attributes:
        readable: False when any measurement is outside ``QualityThresholds``.
        reasons: why not, in words ("too small (31 px)", ...); empty when readable.
        face_px: side of the aligned frame in the photo's pixels (chin to forehead, roughly).
        sharpness: variance of the Laplacian of the 48x48 face divided by the variance of the face
            (contrast-free; a blurred or upscaled face scores low). NaN for a flat face.
        brightness: mean grey level (0-255) of the 48x48 face before equalisation.
        detection_score: the detector's face probability (1.0 when there was no detector).
        roll: angle of the eye line in degrees (0 = level), None without landmarks.
        yaw: yaw estimate in degrees from the nose's place between the eyes (0 = frontal), None
            without landmarks.
        confidence: the calibrated probability of the most probable expression.
        margin: ``confidence`` minus the runner-up's calibrated probability; None when unknown.
    """

    readable: bool
    reasons: tuple[str, ...]
    face_px: float
    sharpness: float
    brightness: float
    detection_score: float
    roll: float | None
    yaw: float | None
    confidence: float
    margin: float | None
    thresholds: QualityThresholds = field(default=DEFAULT_THRESHOLDS, repr=False)

    @property
    def why(self) -> str:
        """ "too small (31 px), blurred" or "" when readable."""
        return ", ".join(self.reasons)

    @property
    def message(self) -> str:
        """ "can't read this face reliably (too small (31 px))", or "" when readable."""
        return refusal(self.reasons) if not self.readable else ""

    def to_dict(self) -> dict:
        """JSON-serialisable measurements and verdict (thresholds left out)."""
        d = asdict(self)
        d.pop("thresholds")
        d["reasons"] = list(self.reasons)
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}


def confidence_and_margin(probabilities) -> tuple[float, float]:
    """(top probability, top minus the runner-up's) of one face's probabilities (1-D, >= 2 classes):
    the two numbers "no clear expression" is judged on."""
    runner_up, top = np.sort(np.asarray(probabilities).ravel())[-2:]
    return float(top), float(top - runner_up)  # the difference in the probabilities' own precision


def refusal(reasons: tuple[str, ...] | list[str]) -> str:
    """The words shown instead of an expression: "can't read this face reliably (too small (31 px), blurred)"."""
    return f"{UNREADABLE} ({', '.join(reasons)})"


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of a uint8 (H, W) face over the face's own variance (NaN if flat).

    Dividing by the face's variance makes it independent of contrast and brightness, which the
    classifier's equalisation removes anyway: it measures how much of the face's contrast is fine detail.
    """
    g = np.asarray(gray, dtype=np.float32)
    var = float(g.var())
    if var < 1e-6:
        return float("nan")
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)
    return float(lap[1:-1, 1:-1].var() / var)


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(roll, yaw) in degrees from MTCNN's five landmarks (x, y): eyes, nose, mouth corners.

    Roll is the eye line's angle. Yaw: in a frame where the eyes are level, the nose of a frontal
    face sits midway between the eyes; turned by yaw, it moves towards one eye by about
    sin(yaw) times half the eye distance (a nose standing out about as far as the eyes are apart
    half-way). Clipped to +-90.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left, right, nose = lm[0], lm[1], lm[2]
    eye = right - left
    dist = float(np.hypot(*eye))
    if dist < 1e-6:
        return 0.0, 90.0
    roll = math.degrees(math.atan2(eye[1], eye[0]))
    u = eye / dist
    offset = float(np.dot(nose - (left + right) / 2, u)) / (dist / 2)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, offset))))
    return roll, yaw


def judge(face_px: float, sharp: float, brightness: float, detection_score: float, yaw: float | None,
          confidence: float, margin: float | None,
          thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> tuple[bool, tuple[str, ...]]:
    """The verdict for a face's measurements: (readable, reasons in words). ``yaw`` or ``margin``
    None: unknown, not judged."""
    t = thresholds
    reasons = []
    if face_px < t.min_face_px:
        reasons.append(f"too small ({face_px:.0f} px)")
    if not (sharp >= t.min_sharpness):  # NaN (a flat face) fails too
        reasons.append("blurred")
    if brightness < t.min_brightness:
        reasons.append("too dark")
    if brightness > t.max_brightness:
        reasons.append("over-exposed")
    if yaw is not None and abs(yaw) > t.max_yaw:
        reasons.append("turned away")
    if detection_score < t.min_detection:
        reasons.append("hardly a face")
    if confidence < t.min_confidence or (margin is not None and margin < t.min_margin):
        reasons.append("no clear expression")
    return not reasons, tuple(reasons)


def assess(gray: np.ndarray, matrix: np.ndarray | None, landmarks: np.ndarray | None, detection_score: float,
           confidence: float, margin: float | None, thresholds: QualityThresholds = DEFAULT_THRESHOLDS
           ) -> FaceQuality:
    """Measure one face and judge it.

    Args:
        gray: uint8 (48, 48) aligned face before equalisation (``AlignedFace.gray``).
        matrix: (2, 3) photo -> 48x48 affine (``AlignedFace.matrix``); None: the face is the photo
            itself (a 48x48 crop), ``face_px`` = 48.
        landmarks: (5, 2) landmarks in photo pixels, or None (no pose then).
        detection_score: the detector's score in [0, 1].
        confidence: calibrated top probability in [0, 1].
        margin: ``confidence`` minus the calibrated runner-up probability, or None (not judged).
    """
    g = np.asarray(gray)
    if g.dtype != np.uint8 or g.ndim != 2:
        raise ValueError(f"gray must be a uint8 (H, W) face, got {g.dtype} {g.shape}")
    if matrix is None:
        face_px = float(g.shape[0])
    else:
        scale = math.sqrt(abs(float(np.linalg.det(np.asarray(matrix, dtype=np.float64)[:, :2]))))
        face_px = g.shape[0] / scale if scale > 0 else 0.0
    roll = yaw = None
    if landmarks is not None:
        roll, yaw = pose(landmarks)
    sharp = sharpness(g)
    bright = float(g.mean())
    margin = None if margin is None else float(margin)
    ok, reasons = judge(face_px, sharp, bright, float(detection_score), yaw, float(confidence), margin, thresholds)
    return FaceQuality(readable=ok, reasons=reasons, face_px=face_px, sharpness=sharp, brightness=bright,
                       detection_score=float(detection_score), roll=roll, yaw=yaw, confidence=float(confidence),
                       margin=margin, thresholds=thresholds)
