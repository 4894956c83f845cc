"""The web app: find every face in a photo, name its expression, show what the model looked at.

    python app.py                  # serves http://localhost:7860 (PORT or GRADIO_SERVER_PORT to change)
    FER_WEIGHTS=path/to/model.safetensors python app.py

The UI only wires: ``fer_demo.pipeline.Predictor`` does the work (detect, align, classify, explain)
and this file turns its ``Prediction`` into Gradio outputs, builds the model page from the files
released next to the weights, and launches. No model is loaded at import time: ``build_demo`` takes
a ready ``Predictor``, so tests can build the UI without a server (or with a fake predictor).

Use from code (the API endpoint is ``/predict``; it returns the result as a dict):

    from gradio_client import Client, handle_file
    client = Client("http://localhost:7860/")
    result = client.predict(handle_file("examples/astronaut.jpg"), "gradcam", "predicted", "none",
                            api_name="/predict")
    result["faces"][0]["label"], result["faces"][0]["probabilities"]
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from fer_demo import limits
from fer_demo.explain import CAM_METHODS
from fer_demo.io import ACCEPTED, InvalidImageError, read_bytes
from fer_demo.model import EMOTIONS
from fer_demo.uploads import DelayedDeleter, RecentUploads, discard, file_paths
from fer_demo.weights import card_path

if TYPE_CHECKING:  # the app only needs the Predictor's interface; __main__ builds one
    from fer_demo.pipeline import FaceResult, Prediction, Predictor

log = logging.getLogger("fer_demo.app")

ROOT = Path(__file__).resolve().parent
WEIGHTS = ROOT / "weights" / "fer_vgg19.safetensors"
EXAMPLES_DIR = ROOT / "examples"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

NO_CAM = "none"
PREDICTED = "predicted"
DEFAULT_CAM = "gradcam" if "gradcam" in CAM_METHODS else next(iter(CAM_METHODS), NO_CAM)
CAM_CHOICES = [*CAM_METHODS, NO_CAM]
TARGET_CHOICES = [PREDICTED, *EMOTIONS]
TTA_CHOICES = ["none", "flip", "tencrop"]

# One colour per expression for boxes and legend (colour-blind-friendly Okabe-Ito hues).
EMOTION_COLORS = {"angry": "#D55E00", "disgust": "#009E73", "fear": "#CC79A7", "happy": "#E69F00",
                  "sad": "#0072B2", "surprise": "#56B4E9", "neutral": "#999999"}
# Crops are 48x48 (what the network sees): show them larger, with nearest-neighbour so the
# pixels stay honest instead of being smoothed into a sharper-looking face.
GALLERY_SIDE = 192
# The annotated photo is shown at most this many pixels on its longer side.
DISPLAY_MAX_SIDE = 1280
# Result JSON files are handed to Gradio, which copies them into its own cache on return; the
# originals are deleted this many seconds later (the copy is removed by ``delete_cache``).
RESULT_FILE_TTL_S = 60
PROBS_TITLE = "face {face}: probabilities"

# Privacy (see fer_demo/uploads.py and the limits in fer_demo/limits.py): Gradio stores every
# upload and webcam snapshot in its cache (GRADIO_TEMP_DIR, default <tmp>/gradio) and writes every
# output image there for the browser to fetch. The handler deletes an upload as soon as it has read
# it (the bytes stay in memory for re-runs with other settings, see RecentUploads); result images
# are deleted OUTPUT_GRACE_S after the page received them. ``delete_cache=(every, age)`` is the
# backstop for the rest (an upload never analysed, the JSON download): every ``every`` seconds
# Gradio deletes this app's files older than ``age``, and all of them when the server stops.
# Example photos and their cached results are exempt.
DELETE_CACHE = (limits.DELETE_EVERY_S, limits.DELETE_AFTER_S)
MEMORY_TTL_MIN = limits.RECENT_TTL_S // 60


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


# Faces smaller than this fraction of the photo's shorter side are not searched for.
MIN_FACE_FRACTION = f"1/{round(1 / limits.MIN_FACE_FRAC)}"
LIMITS_TEXT = (
    f"**Limits:** {ACCEPTED} photos up to {_mb(limits.MAX_UPLOAD_BYTES)} and {limits.MAX_PIXELS / 1e6:.0f} "
    f"megapixels, at least {limits.MIN_SIDE} px a side; faces smaller than {MIN_FACE_FRACTION} of the photo's "
    f"shorter side are not looked for; at most {limits.MAX_FACES} faces are analysed per photo (the most "
    "confident detections)."
)
NO_FACE_HINT = (f"Faces must be reasonably frontal and lit, and at least {MIN_FACE_FRACTION} of the photo's "
                "shorter side: crop a group photo to the people you want analysed.")


# --------------------------------------------------------------------------------------------
# Formatting helpers (pure functions: unit-tested without a server)


def face_caption(index: int, face: FaceResult) -> str:
    """``"face 1: happy 87%"`` (``index`` is 0-based)."""
    return f"face {index + 1}: {face.label} {face.confidence:.0%}"


def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Integer (x1, y1, x2, y2) inside a ``width`` x ``height`` image, at least 1 px wide and high."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, x2 = sorted((min(max(x1, 0), width - 1), min(max(x2, 0), width)))
    y1, y2 = sorted((min(max(y1, 0), height - 1), min(max(y2, 0), height)))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def box_outline_mask(box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
    """float32 (height, width) mask: 1 on the box outline, 0 elsewhere (the face stays visible).

    gr.AnnotatedImage's own box masks fill the face with a translucent colour, hiding the very
    expression being labelled; a mask array lets us draw just the frame.
    """
    x1, y1, x2, y2 = clip_box(box, width, height)
    t = max(2, round(min(height, width) / 200))  # line width scales with the photo
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y1:y2, x1:min(x1 + t, x2)] = 1
    mask[y1:y2, max(x2 - t, x1):x2] = 1
    mask[y1:min(y1 + t, y2), x1:x2] = 1
    mask[max(y2 - t, y1):y2, x1:x2] = 1
    return mask


def annotations(prediction: Prediction, max_side: int = DISPLAY_MAX_SIDE
                ) -> tuple[np.ndarray, list[tuple[np.ndarray, str]], dict[str, str]]:
    """gr.AnnotatedImage value (photo, [(outline mask, caption)]) and its colour map.

    The photo is shown at most ``max_side`` px on its longer side (boxes scaled to match): Gradio
    turns every mask into a float64 RGBA image of the photo's size, so a 50-megapixel photo with
    20 faces would otherwise cost gigabytes.
    """
    image = prediction.image
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1:
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
    items, colors = [], {}
    for i, face in enumerate(prediction.faces):
        caption = face_caption(i, face)
        box = tuple(v * scale for v in face.box)
        items.append((box_outline_mask(box, h, w), caption))
        colors[caption] = EMOTION_COLORS.get(face.label, "#FF0000")
    return image, items, colors


def _enlarge(image: np.ndarray, side: int = GALLERY_SIDE) -> Image.Image:
    pil = Image.fromarray(np.ascontiguousarray(image))
    if max(pil.size) >= side:
        return pil
    scale = side / max(pil.size)
    return pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.NEAREST)


def gallery_items(prediction: Prediction, cam: str | None) -> tuple[list[tuple[Image.Image, str]], list[int]]:
    """Per face: the 48x48 face the network saw, and (with a CAM) the heatmap on it and on the photo.

    Returns the gallery value and, for each gallery item, the index of its face.
    """
    items: list[tuple[Image.Image, str]] = []
    owners: list[int] = []
    for i, face in enumerate(prediction.faces):
        items.append((_enlarge(face.aligned), f"face {i + 1}: input"))
        owners.append(i)
        explained = face.target or face.label
        if cam and face.overlay is not None:
            items.append((_enlarge(face.overlay), f"face {i + 1}: why {explained}"))
            owners.append(i)
        if cam and face.region_overlay is not None:
            # The face box is rarely square: pad it so the thumbnails line up.
            region = ImageOps.pad(Image.fromarray(np.ascontiguousarray(face.region_overlay)),
                                  (GALLERY_SIDE, GALLERY_SIDE), Image.Resampling.BICUBIC, color=(40, 40, 40))
            items.append((region, f"face {i + 1}: in the photo"))
            owners.append(i)
    return items, owners


def probability_table(faces: list[FaceResult]) -> pd.DataFrame:
    """One row per face: label, confidence and all seven probabilities in percent."""
    columns = ["face", "label", *EMOTIONS]
    rows = [{"face": i + 1, "label": f.label, **{e: round(100 * float(f.probabilities[e]), 1) for e in EMOTIONS}}
            for i, f in enumerate(faces)]
    return pd.DataFrame(rows, columns=columns)


def format_summary(prediction: Prediction, seconds: float, cam: str | None, target: str | None, tta: str) -> str:
    """Markdown: how many faces, whether the list was capped, each face's verdict, time taken."""
    n = len(prediction.faces)
    if prediction.faces_found == 0:
        return f"**No face found** ({seconds:.1f} s). {NO_FACE_HINT}"
    head = f"**{prediction.faces_found} face{'s' if prediction.faces_found != 1 else ''} found**"
    if prediction.truncated:
        head += (f", the {n} most confident analysed (limit {prediction.max_faces} per photo; "
                 f"{prediction.faces_found - n} not shown)")
    lines = [head + f" in {seconds:.1f} s."]
    for i, face in enumerate(prediction.faces):
        lines.append(f"- face {i + 1}: **{face.label}** {face.confidence:.0%} "
                     f"(face detector confidence {face.detection_score:.2f})")
    settings = [f"explanation: {cam}" if cam else "explanation: off"]
    if cam:
        settings.append(f"heatmaps explain: {target or 'each predicted label'}")
    settings.append(f"test-time augmentation: {tta}")
    lines.append("\n" + "; ".join(settings) + ".")
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def result_dict(prediction: Prediction, seconds: float, cam: str | None, target: str | None, tta: str) -> dict:
    """The downloadable result: ``Prediction.to_dict()`` plus the request's settings."""
    d = json.loads(json.dumps(prediction.to_dict(), default=_jsonable))
    d["settings"] = {"cam": cam, "target": target, "tta": tta}
    d["seconds"] = round(seconds, 3)
    return d


class ResultFiles:
    """Per-request JSON files in a private temp folder, deleted soon after Gradio copied them.

    The folder is made on the first write and removed when the process exits.
    """

    def __init__(self, ttl_s: float = RESULT_FILE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fer-demo-results-"))
            atexit.register(shutil.rmtree, self._root, ignore_errors=True)
        return self._root

    def write(self, data: dict) -> Path:
        self.prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        path = folder / "fer_result.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    def prune(self) -> None:
        if self._root is None:
            return
        cutoff = time.time() - self.ttl_s
        for folder in self._root.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The request handler


@dataclass
class Outputs:
    """What one analysis shows; ``as_tuple`` is the order of the Analyze button's outputs."""

    annotated: Any
    gallery: list
    probabilities: Any
    table: pd.DataFrame
    summary: str
    result: dict | None
    result_file: str | None
    gallery_owners: dict

    def as_tuple(self) -> tuple:
        return (self.annotated, self.gallery, self.probabilities, self.table, self.summary, self.result,
                self.result_file, self.gallery_owners)


class AnalyzeHandler:
    """Runs the predictor for the page (``handler(...)``: every output) and the API (``handler.api``).

    Both turn ``InvalidImageError`` (not an image, too big, ...) into ``gr.Error`` with its message;
    any other failure is logged (without image data) and shown as a generic error. "No face" is a
    warning and empty results, not an error.

    Uploads: a file inside ``upload_folder`` (Gradio's cache) is deleted as soon as it has been
    read, unless ``keep()`` lists it (the example photos); its bytes go to ``recent`` (memory) so
    the same upload can be analysed again with other settings. ``release_outputs`` deletes the
    result images of a request ``limits.OUTPUT_GRACE_S`` after the page received them.
    """

    def __init__(self, predictor: Predictor, result_files: ResultFiles | None = None,
                 upload_folder: str | Path | None = None, recent: RecentUploads | None = None,
                 keep=lambda: (), output_grace_s: float | None = None) -> None:
        self.predictor = predictor
        self.result_files = result_files or ResultFiles()
        self.upload_folder = Path(upload_folder or gr.utils.get_upload_folder())
        self.recent = RecentUploads() if recent is None else recent
        self.keep = keep
        grace = limits.OUTPUT_GRACE_S if output_grace_s is None else output_grace_s
        self.outputs_deleter = DelayedDeleter(self.upload_folder, grace, keep=keep)

    def photo(self, image: str | dict | None, session: str | None = None) -> bytes:
        """The bytes of the requested photo; the uploaded file itself is deleted once read."""
        if isinstance(image, dict):  # a FileData payload: only its server-side path matters
            image = image.get("path")
        if image is None:
            raise gr.Error("Upload a photo, take one with the webcam or pick an example first.",
                           print_exception=False)
        path = Path(image)
        if not path.is_file():
            data = self.recent.get(str(path), session)
            if data is None:
                raise gr.Error(f"This photo is no longer on the server: uploads are deleted once analysed "
                               f"and kept in memory for {MEMORY_TTL_MIN} minutes for re-runs. Please upload "
                               "it again.", print_exception=False)
            return data
        try:
            data = read_bytes(path)
        except InvalidImageError as e:  # too large, unreadable: the message is for the user
            discard(path, self.upload_folder, self.keep())
            raise gr.Error(str(e).removeprefix(f"{path}: "), print_exception=False) from None
        # Memory first, then delete: a concurrent request for the same upload finds one or the other.
        self.recent.put(str(path), data, session)
        discard(path, self.upload_folder, self.keep())
        return data

    def run(self, image: str | dict | None, cam: str, target: str, tta: str,
            session: str | None = None) -> tuple[Prediction, float, str | None, str | None]:
        """Validate the request and analyse it: (prediction, seconds, cam or None, target or None).

        ``image``: a file path, or Gradio's upload payload (``{"path": ..., ...}``, what the events
        receive with ``preprocess=False``). ``session``: the browser session, for ``recent``.
        """
        for name, value, choices in (("explanation method", cam, CAM_CHOICES), ("target", target, TARGET_CHOICES),
                                     ("test-time augmentation", tta, TTA_CHOICES)):
            if value not in choices:
                raise gr.Error(f"Unknown {name} {value!r}. Choose one of {choices}.", print_exception=False)
        data = self.photo(image, session)
        cam_arg = None if cam == NO_CAM else cam
        target_arg = None if target == PREDICTED else target
        start = time.perf_counter()
        try:
            prediction = self.predictor.analyze(data, cam=cam_arg, target=target_arg, tta=tta)
        except InvalidImageError as e:  # not an image, too large, ...: the message is for the user
            raise gr.Error(str(e), print_exception=False) from None
        except Exception:  # noqa: BLE001 - the UI boundary: log it, keep serving, show no traceback
            log.exception("analysis failed")
            raise gr.Error("Something went wrong while analysing this photo. The error has been logged; "
                           "please try another photo.", print_exception=False) from None
        return prediction, time.perf_counter() - start, cam_arg, target_arg

    def api(self, image: str | dict | None, cam: str = DEFAULT_CAM, target: str = PREDICTED, tta: str = "none",
            request: gr.Request = None) -> dict:
        """The ``/predict`` endpoint: the result as a JSON-able dict (see ``result_dict``)."""
        prediction, seconds, cam_arg, target_arg = self.run(image, cam, target, tta, _session(request))
        return result_dict(prediction, seconds, cam_arg, target_arg, tta)

    def __call__(self, image: str | dict | None, cam: str = DEFAULT_CAM, target: str = PREDICTED,
                 tta: str = "none", request: gr.Request = None) -> tuple:
        """The Analyze button: every output of the page, in ``Outputs`` order."""
        prediction, seconds, cam_arg, target_arg = self.run(image, cam, target, tta, _session(request))
        return self.outputs(prediction, seconds, cam_arg, target_arg, tta).as_tuple()

    def release_outputs(self, *values: Any) -> None:
        """After the page got a result: delete its image files once the browser has fetched them.

        Gets the output components' values as sent to the browser (file payloads with server paths).
        """
        self.outputs_deleter.schedule(file_paths(values))

    def forget_session(self, request: gr.Request = None) -> None:
        """The tab was closed or the page cleared: drop the photos this session sent from memory."""
        session = _session(request)
        if session:
            self.recent.drop_session(session)

    def outputs(self, prediction: Prediction, seconds: float, cam: str | None, target: str | None,
                tta: str) -> Outputs:
        result = result_dict(prediction, seconds, cam, target, tta)
        result_file = str(self.result_files.write(result))
        summary = format_summary(prediction, seconds, cam, target, tta)
        image, boxes, colors = annotations(prediction)
        # Component instances update properties too: boxes and legend coloured by expression.
        annotated = gr.AnnotatedImage(value=(image, boxes), color_map=colors)
        if not prediction.faces:
            gr.Warning(f"No face found in this photo. {NO_FACE_HINT}")
            return Outputs(annotated, [], gr.Label(value=None, label="Probabilities"), probability_table([]),
                           summary, result, result_file, {"owners": [], "faces": []})
        items, owners = gallery_items(prediction, cam)
        probs = gr.Label(value=dict(prediction.faces[0].probabilities), label=PROBS_TITLE.format(face=1))
        state = {"owners": owners, "faces": [dict(f.probabilities) for f in prediction.faces]}
        return Outputs(annotated, items, probs, probability_table(prediction.faces), summary, result,
                       result_file, state)


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def select_face(state: dict | None, evt: gr.SelectData) -> Any:
    """Gallery click -> the probability bars of the clicked item's face."""
    if not state or evt.index is None or evt.index >= len(state["owners"]):
        return gr.skip()
    face = state["owners"][evt.index]
    return gr.Label(value=state["faces"][face], label=PROBS_TITLE.format(face=face + 1))


# --------------------------------------------------------------------------------------------
# Model page: everything read from the files released next to the weights


@dataclass
class ModelInfo:
    """What the release folder says about the model. Any part can be missing (``None``)."""

    card: dict | None
    metrics: dict | None
    confusion_png: Path | None
    curves_png: Path | None
    history: pd.DataFrame | None
    problems: list[str]

    @classmethod
    def load(cls, weights: str | Path) -> "ModelInfo":
        """Read ``<weights>.json`` (card), ``metrics.json``, ``confusion.png``, ``curves.png``, ``history.csv``.

        ``metrics.json`` falls back to the card's ``metrics`` entry. Unreadable files are reported
        in ``problems``, never raised: the app must start with whatever is there.
        """
        weights = Path(weights)
        folder = weights.parent
        problems: list[str] = []

        def read_json(path: Path) -> dict | None:
            if not path.is_file():
                return None
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                problems.append(f"{path.name} is unreadable ({e})")
                return None
            if not isinstance(data, dict):
                problems.append(f"{path.name} does not hold a JSON object")
                return None
            return data

        card = read_json(card_path(weights))
        metrics = read_json(folder / "metrics.json")
        if metrics is None and card and isinstance(card.get("metrics"), dict):
            metrics = card["metrics"]
        if metrics is not None and not _valid_metrics(metrics):
            problems.append("metrics.json lacks accuracy, per_class or confusion_matrix")
            metrics = None
        history = None
        if (folder / "history.csv").is_file():
            try:
                history = pd.read_csv(folder / "history.csv")
            except (OSError, ValueError) as e:
                problems.append(f"history.csv is unreadable ({e})")
        png = lambda name: folder / name if (folder / name).is_file() else None  # noqa: E731
        return cls(card, metrics, png("confusion.png"), png("curves.png"), history, problems)


def _valid_metrics(m: dict) -> bool:
    return (isinstance(m.get("accuracy"), (int, float)) and isinstance(m.get("per_class"), dict)
            and isinstance(m.get("confusion_matrix"), list))


def metrics_markdown(info: ModelInfo) -> str:
    """The headline: accuracy, macro-F1, which split and how many images; or why there is none."""
    m = info.metrics
    if m is None:
        note = ["**No evaluation results for these weights** (no `metrics.json` next to them), so "
                "there is no measured accuracy to show."]
        if info.card and info.card.get("note"):
            note.append(f"The model card says: *{info.card['note']}*.")
        note.extend(f"Problem: {p}." for p in info.problems)
        return "\n\n".join(note)
    where = m.get("source") or m.get("data") or "the evaluation set"
    split = f", split `{m['split']}`" if m.get("split") else ""
    held_out = " held-out" if m.get("split") and m["split"] != "train" else ""
    lines = [f"### Accuracy {m['accuracy']:.1%} · macro-F1 {m.get('macro_f1', float('nan')):.3f}",
             f"Measured on `{where}`{split}: {int(m.get('num_images', 0)):,}{held_out} face images."]
    extras = []
    if m.get("epoch") is not None:
        training = (info.card or {}).get("training") or {}
        of = f" of {training['epochs']}" if isinstance(training.get("epochs"), int) else ""
        extras.append(f"weights from epoch {m['epoch']}{of}")
    if m.get("tta") and m["tta"] != "none":
        extras.append(f"test-time augmentation `{m['tta']}`")
    if m.get("weights_dtype"):
        extras.append(f"scored as shipped ({m['weights_dtype']})")
    for key, value in m.items():
        if key.startswith("accuracy_tta_") and isinstance(value, (int, float)):
            extras.append(f"accuracy with `{key.removeprefix('accuracy_tta_')}` test-time augmentation {value:.1%}")
    if extras:
        text = "; ".join(extras)
        lines.append(text[0].upper() + text[1:] + ".")
    majority = max((c.get("support", 0) for c in m["per_class"].values()), default=0)
    if m.get("num_images"):
        lines.append(f"For scale: always answering the most common class would score "
                     f"{majority / m['num_images']:.1%}; chance over 7 classes is 14.3%.")
    lines.extend(f"Problem: {p}." for p in info.problems)
    return "\n\n".join(lines)


def per_class_table(metrics: dict | None) -> pd.DataFrame:
    """class, precision, recall, F1, support: one row per class in the metrics' class order."""
    columns = ["class", "precision", "recall", "F1", "support"]
    if not metrics:
        return pd.DataFrame(columns=columns)
    names = metrics.get("classes") or list(metrics["per_class"])
    rows = []
    for name in names:
        c = metrics["per_class"].get(name, {})
        rows.append({"class": name, "precision": round(float(c.get("precision", 0)), 3),
                     "recall": round(float(c.get("recall", 0)), 3), "F1": round(float(c.get("f1", 0)), 3),
                     "support": int(c.get("support", 0))})
    return pd.DataFrame(rows, columns=columns)


def confusion_figure(metrics: dict):
    """Row-normalised confusion matrix (rows: true class; each row sums to 1) as a matplotlib figure.

    Used when the release has no ``confusion.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    names = metrics.get("classes") or list(EMOTIONS)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix, row-normalised (diagonal = recall)")
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def model_table(card: dict | None) -> pd.DataFrame:
    """What the card says the model is: architecture, classes, sizes, normalisation, CAM layer."""
    if not card:
        return pd.DataFrame(columns=["property", "value"])
    rows = [(k, _fmt(v)) for k, v in card.items() if k not in ("training", "metrics", "format")]
    return pd.DataFrame(rows, columns=["property", "value"])


def training_table(card: dict | None) -> pd.DataFrame:
    """Every training setting recorded in the card (``card["training"]``), as setting/value rows."""
    training = (card or {}).get("training")
    if not isinstance(training, dict):
        return pd.DataFrame(columns=["setting", "value"])
    rows = []
    for key, value in training.items():
        if key == "class_counts" and isinstance(value, list) and len(value) == len(EMOTIONS):
            value = dict(zip(EMOTIONS, value))
        rows.append((key, _fmt(value)))
    return pd.DataFrame(rows, columns=["setting", "value"])


def build_model_tab(info: ModelInfo, weights: str | Path) -> None:
    """Lay out the model page's components (inside the caller's ``gr.Tab``) from the release files."""
    gr.Markdown(metrics_markdown(info), elem_id="model-metrics")
    if info.metrics is not None:
        # The release's own plot (counts and row-normalised side by side) when there is one.
        if info.confusion_png is not None:
            gr.Image(value=str(info.confusion_png), label="Confusion matrix (evaluation split)",
                     interactive=False, buttons=["fullscreen", "download"], elem_id="confusion-matrix")
        else:
            gr.Plot(value=confusion_figure(info.metrics), label="Confusion matrix (evaluation split)",
                    elem_id="confusion-matrix")
        gr.Dataframe(value=per_class_table(info.metrics), label="Per-class precision, recall, F1 and support",
                     interactive=False, elem_id="per-class-table")
    if info.curves_png is not None or info.history is not None:
        with gr.Accordion("Training curves", open=False):
            if info.curves_png is not None:
                gr.Image(value=str(info.curves_png), label="Loss and accuracy per epoch", interactive=False)
            if info.history is not None:
                gr.Dataframe(value=info.history, label="history.csv", interactive=False)
    with gr.Accordion("Model card and training settings", open=info.metrics is None):
        gr.Dataframe(value=model_table(info.card), label=f"Model ({card_path(weights).name})",
                     interactive=False, wrap=True)
        gr.Dataframe(value=training_table(info.card), label="Training settings (from the card)",
                     interactive=False, wrap=True, elem_id="training-table")


# --------------------------------------------------------------------------------------------
# About page

ABOUT = """
## What this does

1. **Finds faces** with MTCNN (a face detector trained on WIDER FACE / CelebA).
2. **Aligns each face**: rotates it so the eyes are level, frames it the way FER2013 faces are
   framed and reduces it to a 48x48 grayscale picture, the only thing the classifier sees.
3. **Classifies the expression** into FER2013's seven categories ({emotions}) with a VGG19-BN
   trained{init} on FER2013's training split.
4. **Explains** the answer with a class-activation map (Grad-CAM and friends): the warm regions
   are what pushed the score of the explained class up. Pick another *target class* to ask
   "why not happy?".

## What it can and cannot do

- FER2013 is ~36,000 small (48x48), grayscale, mostly frontal web photos of faces with noisy
  labels; humans asked to label them were estimated to be right only about 65% of the time
  (Goodfellow et al., 2013). {accuracy}
- Side views, sunglasses, masks, heavy shadows, very small faces, children and artwork are far
  from the training data and get unreliable answers, often with high confidence.
- Seven categories are a simplification: real expressions are mixed, subtle, and depend on
  context. **A facial expression is not a felt emotion.** A smile can be polite, nervous or sad;
  the model only sees pixels.
- FER2013 was scraped from web image searches. Its faces are not a balanced sample of ages,
  skin tones, genders or cultures, and expression norms differ between cultures, so accuracy
  differs between groups of people in ways nobody has measured for this model.
- The heatmaps show where the network's evidence is, not the "reason" in a human sense, and
  different CAM methods can disagree.

## Responsible use

This is a teaching demo. **Do not use it to make or support decisions about people**:
hiring or interviews, policing, border control, education or exam proctoring, health or
insurance, workplace or public surveillance, credit. Emotion recognition for such uses is
scientifically weak and is restricted by law in places (the EU AI Act bans it in workplaces
and schools). Analyse only photos of people who agreed to it.

## Privacy

- Photos and webcam snapshots are sent to this server only to be analysed. They are not
  logged, not used for training, and not shared.
- The uploaded file is deleted from the server's disk as soon as it has been read. Its bytes
  stay in the server's memory (never on disk) for {ttl} minutes after their last use, so you can
  re-run the photo with other settings; closing the tab or pressing **Clear** drops them sooner.
- Result images (the annotated photo, face crops, heatmaps) are written to a temporary cache only
  so your browser can fetch them, and deleted {grace} seconds later. The downloadable JSON result
  (boxes and probabilities, no pixels) is deleted after {json_ttl} minutes. Everything left is
  deleted when the server stops.
- The webcam is only switched on when you click it, and only the snapshot you take is sent.
- The app itself loads no third-party fonts, analytics or trackers (a hosting page around it,
  such as a Hugging Face Space, has its own policies).

## Use from code

```python
from gradio_client import Client, handle_file

client = Client("{url}")
result = client.predict(
    handle_file("photo.jpg"),  # path or URL of a photo
    "{cam}",  # explanation: {cams}
    "predicted",  # heatmap target: "predicted" or one of the 7 classes
    "none",  # test-time augmentation: none, flip or tencrop
    api_name="/predict",
)
for face in result["faces"]:
    print(face["label"], face["confidence"], face["box"])
```
"""


def about_markdown(info: ModelInfo | None = None, url: str = "http://localhost:7860/") -> str:
    if info is not None and info.metrics is not None:
        m = info.metrics
        accuracy = (f"This model is right on {m['accuracy']:.0%} of FER2013's held-out test faces "
                    f"(macro-F1 {m.get('macro_f1', float('nan')):.2f}; see the Model tab), and "
                    "less often on photos unlike FER2013's.")
    else:
        accuracy = "These weights come without evaluation results, so their accuracy is unknown."
    init = ((info.card or {}).get("training") or {}).get("init") if info is not None else None
    init = {"scratch": " from scratch", "imagenet": " (starting from ImageNet weights)"}.get(init, "")
    return ABOUT.format(emotions=", ".join(EMOTIONS), accuracy=accuracy, ttl=MEMORY_TTL_MIN, grace=limits.OUTPUT_GRACE_S,
                        json_ttl=limits.DELETE_AFTER_S // 60, url=url, init=init,
                        cam=DEFAULT_CAM, cams=", ".join(CAM_CHOICES))


# --------------------------------------------------------------------------------------------
# The app

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
            summary = gr.Markdown("Upload a photo, take one with the webcam or pick an example, then press "
                                  "**Analyze**.", elem_id="summary", render=False)
            probs = gr.Label(label="Probabilities", num_top_classes=len(EMOTIONS), scale=1,
                             elem_id="probabilities", render=False)
            gallery = gr.Gallery(label="Each face: what the model sees and the heatmap (click for its "
                                       "probabilities)", columns=3, height=290, object_fit="contain", scale=2,
                                 elem_id="faces-gallery", buttons=["fullscreen"], render=False)
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
                                          info="'none' is fastest")
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
                        gallery.render()
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
            clear.add([image, annotated, gallery, probs, table, result, result_file])
            clear.click(handler.forget_session, queue=False, api_visibility="private")
        with gr.Tab("Model", id="model"):
            build_model_tab(info, weights)
        with gr.Tab("About", id="about"):
            gr.Markdown(about_markdown(info, os.environ.get("SPACE_ID") or "http://localhost:7860/"),
                        elem_id="about")
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
