"""The one front object: photo in, faces with emotions and explanations out.

``Predictor`` chains the stages (``io.load_image`` -> ``detect`` -> ``align`` -> ``classify``
-> ``explain``); the app, the CLI, the benchmarks and the tests all call it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from fer_demo import limits
from fer_demo.align import AlignedFace, align_face, check_rgb
from fer_demo.calibration import is_close_call
from fer_demo.classify import DEFAULT_WEIGHTS, EmotionClassifier, check_tta
from fer_demo.detect import Face, FaceDetector
from fer_demo.explain import CAM_METHODS, DEFAULT_CAM, Explainer
from fer_demo.io import ImageSource, load_image
from fer_demo.quality import FaceQuality, QualityThresholds, assess, card_thresholds, confidence_and_margin
from fer_demo.weights import ModelFileError

# Weight of the heatmap colour when drawn over a face (0 = photo only, 1 = heatmap only).
HEATMAP_ALPHA = 0.45
# Heat below this is not tinted in ``region_overlay``, so the photo around the face stays clean.
REGION_MIN_HEAT = 0.05


@dataclass(eq=False)
class FaceResult:
    """Everything known about one face.

    Attributes:
        box: (x1, y1, x2, y2) int pixels of the oriented image, clipped to it; the face region
            is ``image[y1:y2, x1:x2]`` (x2 > x1, y2 > y1).
        landmarks: float32 (5, 2) (x, y) pixels: left eye, right eye, nose, mouth left/right.
        detection_score: MTCNN face probability in [0, 1].
        aligned: uint8 (48, 48) grayscale face (FER2013 framing): exactly the classifier's input, the
            row ``EmotionClassifier.predict`` and the CAM pass received for this face (they equalise and
            crop it themselves, ``fer_demo.transforms``); score it again with the same preprocessing.
        aligned_rgb: uint8 (S, S, 3) colour crop with the same framing (S = ``align.DISPLAY_SIZE``).
        probabilities: every emotion name -> probability; values sum to 1.
        label: the most probable emotion; confidence: its probability.
        runner_up: the second most probable emotion.
        close_call: True when the runner-up is within ``calibration.CLOSE_CALL_MARGIN`` of the
            label's probability; the result then names both (``display_label``).
        target: the emotion the CAM explains, or None without a CAM.
        heatmap: float32 (48, 48) in [0, 1] over ``aligned``, or None without a CAM.
        overlay: uint8 (S, S, 3) heatmap drawn over ``aligned_rgb``, or None.
        region_overlay: uint8 (y2 - y1, x2 - x1, 3): the heatmap mapped back onto the box region
            of the photo, or None.
        matrix: float64 (2, 3) affine from image pixels to ``aligned``/``heatmap`` pixels
            (``AlignedFace.matrix``); ``cv2.invertAffineTransform`` maps back.
        quality: the face's quality assessment (``fer_demo.quality``: size, sharpness, brightness,
            pose, detector score, confidence, and whether it can be read reliably), or None.
        abstained: True when the face was judged unreadable and the Predictor abstains
            (``Predictor(abstain=True)``, the default): ``display_label`` and ``verdict`` then say
            "can't read this face reliably (why)" instead of an expression. ``label`` and
            ``probabilities`` still hold the model's guess.
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    detection_score: float
    aligned: np.ndarray
    aligned_rgb: np.ndarray
    probabilities: dict[str, float]
    label: str
    confidence: float
    runner_up: str = ""
    close_call: bool = False
    target: str | None = None
    heatmap: np.ndarray | None = None
    overlay: np.ndarray | None = None
    region_overlay: np.ndarray | None = None
    matrix: np.ndarray | None = None
    quality: FaceQuality | None = None
    abstained: bool = False

    @property
    def display_label(self) -> str:
        """The label as a person should read it: "happy", or "happy or surprise" for a close call, or
        "can't read this face reliably (blurred)" when abstained."""
        if self.abstained and self.quality is not None:
            return self.quality.message
        return f"{self.label} or {self.runner_up}" if self.close_call and self.runner_up else self.label

    @property
    def verdict(self) -> str:
        """ "happy 87%", or "happy 48% or surprise 41%" for a close call, or the refusal when abstained."""
        if self.abstained and self.quality is not None:
            return self.quality.message
        if self.close_call and self.runner_up:
            return (f"{self.label} {self.confidence:.0%} or {self.runner_up} "
                    f"{self.probabilities[self.runner_up]:.0%}")
        return f"{self.label} {self.confidence:.0%}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no pixel arrays). When abstained, ``label`` is None (no
        expression is claimed), ``guess`` is the model's most probable emotion and ``display_label``
        the refusal."""
        return {
            "box": [int(v) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "score": round(float(self.detection_score), 6),
            "label": None if self.abstained else self.label,
            "guess": self.label,
            "abstained": bool(self.abstained),
            "quality": None if self.quality is None else self.quality.to_dict(),
            "confidence": float(self.confidence),
            "runner_up": self.runner_up,
            "close_call": self.close_call,
            "display_label": self.display_label,
            "probabilities": {k: float(v) for k, v in self.probabilities.items()},
            "target": self.target,
        }


@dataclass(eq=False)
class Prediction:
    """The result for one photo.

    Attributes:
        faces: analysed faces numbered left to right (by the box's left edge) as a reader
            counts them; when there are more than ``max_faces``, the ones with the highest detection
            scores are kept (at most ``max_faces``; empty
            when no face was found).
        image: uint8 (H, W, 3) RGB, the photo upright (EXIF orientation applied); every box
            and landmark is in its pixels.
        faces_found: faces detected, including those beyond the cap.
        truncated: True when faces_found > max_faces, i.e. some faces were not analysed.
        max_faces: the cap in force.
    """

    faces: list[FaceResult]
    image: np.ndarray
    faces_found: int
    truncated: bool
    max_faces: int
    cam: str | None = field(default=None)

    @property
    def notice(self) -> str | None:
        """A sentence for the user when the face cap cut the result, else None."""
        if not self.truncated:
            return None
        return (f"{self.faces_found} faces found; only the {self.max_faces} with the highest "
                f"detection scores were analysed (limit {self.max_faces} per image).")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no pixel arrays)."""
        return {
            "faces": [f.to_dict() for f in self.faces],
            "faces_found": int(self.faces_found),
            "truncated": bool(self.truncated),
            "max_faces": int(self.max_faces),
            "image_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "cam": self.cam,
            "notice": self.notice,
        }


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """float (H, W) in [0, 1] -> uint8 (H, W, 3) RGB with OpenCV's JET colormap."""
    heat8 = np.clip(np.rint(heatmap * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(heat8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def blend(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = HEATMAP_ALPHA, min_heat: float = 0.0) -> np.ndarray:
    """Draw ``heatmap`` (float (H, W) in [0, 1]) over ``rgb`` (uint8 (H, W, 3)); uint8 out.

    Pixels whose heat is below ``min_heat`` are left as they are.
    """
    color = colorize(heatmap).astype(np.float32)
    weight = np.where(heatmap >= min_heat, alpha, 0.0).astype(np.float32)[..., None] if min_heat > 0 else alpha
    out = rgb.astype(np.float32) * (1 - weight) + color * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def int_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Float box -> int (x1, y1, x2, y2) covering it, clipped to the image, at least 1x1 px."""
    x1 = min(max(int(math.floor(box[0])), 0), width - 1)
    y1 = min(max(int(math.floor(box[1])), 0), height - 1)
    x2 = min(max(int(math.ceil(box[2])), x1 + 1), width)
    y2 = min(max(int(math.ceil(box[3])), y1 + 1), height)
    return x1, y1, x2, y2


def heatmap_to_image(heatmap: np.ndarray, matrix: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Map a 48x48 heatmap back into the image: float32 (y2 - y1, x2 - x1) over ``box``.

    ``matrix`` maps image pixels to heatmap pixels (``AlignedFace.matrix``); box pixels the
    aligned frame does not cover get 0.
    """
    x1, y1, x2, y2 = box
    # box pixel (u, v) is image pixel (u + x1, v + y1): box px -> heatmap px.
    m = matrix.astype(np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x1, y1], dtype=np.float64)
    return cv2.warpAffine(heatmap.astype(np.float32), m, (x2 - x1, y2 - y1),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


class Predictor:
    """Detect, align, classify and explain every face in a photo.

    Args:
        weights_path: the classifier release (``.safetensors`` + ``.json`` card).
        detector: a ``FaceDetector``; default one with ``fer_demo.limits`` settings.
        max_faces: at most this many faces (highest detection score) are analysed.
        device: torch device for the classifier (and the default detector).
        abstain: True (default): a face whose quality assessment says it cannot be read reliably
            (``fer_demo.quality``) is answered "can't read this face reliably (why)" instead of an
            expression (``FaceResult.abstained``); False: every face gets its expression.
        quality_thresholds: the limits of that assessment; None (default): the release's own
            (``quality.card_thresholds``: the quality floors with the confidence and margin floors its
            card chose, ``quality.DEFAULT_THRESHOLDS`` for a card without them).

    ``analyze`` may be called from several threads; the stages serialise on their own locks.

    Raises:
        fer_demo.weights.ModelFileError: the weights are missing or do not match the code.
    """

    def __init__(
        self,
        weights_path: str | Path = DEFAULT_WEIGHTS,
        detector: FaceDetector | None = None,
        max_faces: int = limits.MAX_FACES,
        device: str | torch.device = "cpu",
        abstain: bool = True,
        quality_thresholds: QualityThresholds | None = None,
    ) -> None:
        self.abstain = bool(abstain)
        if int(max_faces) < 1:
            raise ValueError(f"max_faces={max_faces} must be at least 1")
        self.max_faces = int(max_faces)
        self.detector = detector if detector is not None else FaceDetector(device=device)
        self.classifier = EmotionClassifier(weights_path, device=device)
        self.classes: tuple[str, ...] = self.classifier.classes
        try:
            self.quality_thresholds = (quality_thresholds if quality_thresholds is not None
                                       else card_thresholds(self.classifier.card.extra))
        except ValueError as e:
            raise ModelFileError(f"{weights_path}: {e}") from None
        # One lock for both: a CAM's hooks must never see a concurrent classification pass.
        self.explainer = Explainer(self.classifier.model, self.classifier.card.cam_target_layer,
                                   lock=self.classifier.lock, fast=self.classifier.fast)

    def _check_options(self, cam: str | None, target: str | None, tta: str) -> str | None:
        if cam is not None and cam.lower() == "none":
            cam = None
        if cam is not None and cam not in CAM_METHODS:
            raise ValueError(f"Invalid CAM method {cam!r}. Only {', '.join(map(repr, CAM_METHODS))} "
                             "or None are supported.")
        if target is not None and target not in self.classes:
            raise ValueError(f"Invalid target {target!r}. Only None (the predicted class) or one of "
                             f"{', '.join(self.classes)} is supported.")
        check_tta(tta)
        return cam

    def analyze(
        self,
        image: ImageSource,
        cam: str | None = DEFAULT_CAM,
        target: str | None = None,
        tta: str = "none",
    ) -> Prediction:
        """Analyse every face in a photo (up to ``max_faces``).

        Args:
            image: anything ``fer_demo.io.load_image`` takes (path, bytes, PIL image, uint8 array).
            cam: a ``CAM_METHODS`` name (default ``explain.DEFAULT_CAM``, the app's), or None / "none"
                for no explanation (faster).
            target: the emotion the CAM explains for every face: None explains each face's
                predicted class; a name (e.g. "happy") answers "why (not) happy?".
            tta: test-time augmentation for classification: "none", "flip" or "tencrop".

        Returns:
            A ``Prediction``; ``faces`` is empty when no face was found.

        Raises:
            fer_demo.io.InvalidImageError: the image cannot be used (message says why).
            ValueError: an invalid ``cam``, ``target`` or ``tta``.
        """
        cam = self._check_options(cam, target, tta)
        pil = load_image(image)
        rgb = np.asarray(pil)
        detected = self.detector.detect(pil)
        # The cap keeps the most confident detections; they are then numbered left to right.
        kept = sorted(detected[: self.max_faces], key=lambda f: (float(f.box[0]), float(f.box[1])))
        pred = Prediction(faces=[], image=rgb, faces_found=len(detected),
                          truncated=len(detected) > self.max_faces, max_faces=self.max_faces, cam=cam)
        pred.faces = self._analyze_faces([(rgb, f) for f in kept], cam, target, tta, overlays=True)
        return pred

    def analyze_faces(
        self,
        image: np.ndarray,
        faces: Sequence[Face],
        cam: str | None = None,
        target: str | None = None,
        tta: str = "none",
        overlays: bool = True,
    ) -> list[FaceResult]:
        """Align, classify (and explain) faces already detected in ``image``: ``analyze`` without detection.

        For video frames, where the detector runs on some frames only and its faces (box and
        landmarks) are re-used on the frames in between: each face is aligned exactly as in ``analyze``.

        Args:
            image: uint8 (H, W, 3) RGB, the frame the faces' boxes and landmarks refer to.
            faces: detections (``FaceDetector.detect`` on this image or one like it), analysed in this order.
            cam, target, tta: as in ``analyze`` (``cam`` defaults to None here: labels only).
            overlays: False skips the overlay images (``overlay``, ``region_overlay`` are None;
                ``heatmap`` and ``matrix`` are still set), for callers that draw their own.

        Returns:
            One ``FaceResult`` per face, in the order given; [] for no faces.

        Raises:
            ValueError: an invalid ``cam``, ``target`` or ``tta``, an image that is not uint8 (H, W, 3),
                or a face whose eye landmarks coincide.
        """
        return self.analyze_frames([image], faces, cam, target, tta, overlays)[0]

    def analyze_frames(
        self,
        images: Sequence[np.ndarray],
        faces: Sequence[Face],
        cam: str | None = None,
        target: str | None = None,
        tta: str = "none",
        overlays: bool = True,
    ) -> list[list[FaceResult]]:
        """``analyze_faces`` for the same faces in several images (consecutive video frames) at once.

        All the faces of all the images go through the network as one batch, which costs less per face
        than one image at a time (on two CPU cores: ~25 ms for one face, ~55 ms for three).

        Returns:
            One list per image, each with one ``FaceResult`` per face in the order given.

        Raises:
            ValueError: as ``analyze_faces``.
        """
        cam = self._check_options(cam, target, tta)
        frames = [check_rgb(im) for im in images]
        faces = list(faces)
        flat = self._analyze_faces([(rgb, f) for rgb in frames for f in faces], cam, target, tta, overlays)
        n = len(faces)
        return [flat[i * n:(i + 1) * n] for i in range(len(frames))]

    def _analyze_faces(self, pairs: list[tuple[np.ndarray, Face]], cam: str | None, target: str | None,
                       tta: str, overlays: bool) -> list[FaceResult]:
        """Align, classify (and explain) each (image, face) pair; one batch through the network."""
        if not pairs:
            return []
        faces = [f for _, f in pairs]
        aligned = [align_face(rgb, f) for rgb, f in pairs]
        gray = np.stack([a.gray for a in aligned])
        heatmaps: np.ndarray | None = None
        target_idx = None if target is None else self.classes.index(target)
        if cam is not None and tta == "none":
            # One forward pass gives both the probabilities and the CAMs.
            targets = None if target_idx is None else [target_idx] * len(faces)
            heatmaps, probs = self.explainer.explain_with_probabilities(gray, targets, cam,
                                                                        self.classifier.temperature("none"))
            if target_idx is None:
                # pytorch-grad-cam explained the argmax of the same logits.
                targets = [int(i) for i in probs.argmax(axis=1)]
        else:
            probs = self.classifier.predict(gray, tta=tta)
            targets = [int(i) for i in probs.argmax(axis=1)] if target_idx is None else [target_idx] * len(faces)
            if cam is not None:
                heatmaps = self.explainer.explain(gray, targets, cam)
        return [self._face_result(rgb, face, al, probs[i],
                                  None if heatmaps is None else heatmaps[i],
                                  None if heatmaps is None else self.classes[targets[i]], overlays)
                for i, ((rgb, face), al) in enumerate(zip(pairs, aligned))]

    def predict(
        self,
        image: ImageSource,
        cam: str | None = DEFAULT_CAM,
        target: str | None = None,
        tta: str = "none",
    ) -> list[FaceResult]:
        """``analyze(...).faces``: the analysed faces; [] when there is no face."""
        return self.analyze(image, cam=cam, target=target, tta=tta).faces

    def _face_result(self, rgb: np.ndarray, face: Face, al: AlignedFace, probs: np.ndarray,
                     heatmap: np.ndarray | None, target: str | None, overlays: bool = True) -> FaceResult:
        box = int_box(face.box, rgb.shape[1], rgb.shape[0])
        order = np.argsort(-probs, kind="stable")
        k, k2 = int(order[0]), int(order[1])
        quality = assess(al.gray, al.matrix, face.landmarks, float(face.score), *confidence_and_margin(probs),
                         self.quality_thresholds)
        overlay = region = None
        if heatmap is not None and overlays:
            size = al.rgb.shape[0]
            overlay = blend(al.rgb, cv2.resize(heatmap, (size, size), interpolation=cv2.INTER_LINEAR))
            x1, y1, x2, y2 = box
            region_heat = heatmap_to_image(heatmap, al.matrix, box)
            region = blend(rgb[y1:y2, x1:x2], region_heat, min_heat=REGION_MIN_HEAT)
        return FaceResult(
            box=box,
            landmarks=face.landmarks.astype(np.float32),
            detection_score=float(face.score),
            aligned=al.gray,
            aligned_rgb=al.rgb,
            matrix=al.matrix,
            probabilities={c: float(p) for c, p in zip(self.classes, probs)},
            label=self.classes[k],
            confidence=float(probs[k]),
            runner_up=self.classes[k2],
            close_call=is_close_call(float(probs[k]), float(probs[k2])),
            target=target,
            heatmap=heatmap,
            overlay=overlay,
            region_overlay=region,
            quality=quality,
            abstained=self.abstain and not quality.readable,
        )


def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` px (a fixed-size bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def annotate(prediction: Prediction, show_regions: bool = False) -> Image.Image:
    """The photo with each analysed face's box and verdict ("happy 87%") drawn on it (RGB ``PIL.Image``).

    With ``show_regions`` the CAM of each face (where there is one) is drawn into its box.
    """
    image = prediction.image
    if show_regions:
        image = image.copy()
        for f in prediction.faces:
            if f.region_overlay is not None:
                x1, y1, x2, y2 = f.box
                image[y1:y2, x1:x2] = f.region_overlay
    out = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(out)
    side = min(out.size)
    width = max(2, round(side / 250))
    font = label_font(max(12, round(side / 30)))
    for f in prediction.faces:
        x1, y1, x2, y2 = f.box
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=(255, 215, 0), width=width)
        text = f.verdict
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = r - l, b - t
        ty = y1 - th - 2 * width if y1 - th - 2 * width >= 0 else y2 + width  # above the box, else below
        ty = min(ty, out.size[1] - th - 2 * width)
        draw.rectangle((x1, ty, x1 + tw + 2 * width, ty + th + 2 * width), fill=(255, 215, 0))
        draw.text((x1 + width - l, ty + width - t), text, fill=(0, 0, 0), font=font)
    return out
