"""A ``Prediction`` as display values: boxes on the photo, face thumbnails, tables, summary, JSON.

Pure functions (numpy, PIL, pandas; no Gradio), unit-tested without a server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from fer_demo.calibration import CLOSE_CALL_MARGIN
from fer_demo.model import EMOTIONS
from fer_demo.ui.options import NO_FACE_HINT

if TYPE_CHECKING:
    from fer_demo.pipeline import FaceResult, Prediction

# Crops are 48x48 (what the network sees): show them larger, with nearest-neighbour so the
# pixels stay honest instead of being smoothed into a sharper-looking face.
GALLERY_SIDE = 192
# The annotated photo is shown at most this many pixels on its longer side.
DISPLAY_MAX_SIDE = 1280


def face_caption(index: int, face: FaceResult) -> str:
    """``"face 1: happy 87%"``, or ``"face 1: happy 48% or surprise 41%"`` for a close call
    (``index`` is 0-based)."""
    return f"face {index + 1}: {face.verdict}"


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
                ) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """gr.AnnotatedImage value: (photo, [(outline mask, caption)]), one caption per face, so
    Gradio's palette gives each face its own colour (two "happy" faces are told apart).

    A plain value, not a component update with a colour map, on purpose: Gradio stores a cached
    example's *updates* with paths into its shared file cache and serves them as they are, so a
    later visitor's request that wrote (and then deleted) the same content-named file broke the
    example; a plain value is copied out of the examples cache again on every click.

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
    items = []
    for i, face in enumerate(prediction.faces):
        box = tuple(v * scale for v in face.box)
        items.append((box_outline_mask(box, h, w), face_caption(i, face)))
    return image, items


def _enlarge(image: np.ndarray, side: int = GALLERY_SIDE) -> Image.Image:
    pil = Image.fromarray(np.ascontiguousarray(image))
    if max(pil.size) >= side:
        return pil
    scale = side / max(pil.size)
    return pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.NEAREST)


# A CAM whose largest value is below this is "empty": pytorch-grad-cam found no pixel with
# positive evidence for the class (its maps are scaled to max 1 otherwise).
EMPTY_CAM_MAX = 1e-6


def has_evidence(face: FaceResult) -> bool:
    """False when the face's heatmap is empty (no positive evidence for the explained class)."""
    return face.heatmap is not None and float(np.max(face.heatmap)) > EMPTY_CAM_MAX


def cam_caption(face: FaceResult, explained: str) -> str:
    """ "why happy", or "no evidence for sad in this face" when the map is empty (a flat blue
    picture would otherwise look like an answer)."""
    return f"why {explained}" if has_evidence(face) else f"no evidence for {explained} in this face"


def heatmap_legend_html(stops: int = 9) -> str:
    """The heatmaps' colour scale as an HTML bar, sampled from the very colormap that draws them."""
    from fer_demo.pipeline import colorize

    colors = colorize(np.linspace(0, 1, stops, dtype=np.float32).reshape(1, -1))[0]
    gradient = ", ".join(f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colors)
    return ('<div class="fer-legend" style="display:flex;align-items:center;gap:0.5em;font-size:0.85em">'
            '<span>heatmap: less evidence</span>'
            f'<span style="flex:1;height:0.8em;border-radius:3px;background:linear-gradient(to right, {gradient})">'
            '</span><span>more evidence</span></div>')


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
            items.append((_enlarge(face.overlay), f"face {i + 1}: {cam_caption(face, explained)}"))
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
    rows = [{"face": i + 1, "label": f.display_label, **{e: round(100 * float(f.probabilities[e]), 1) for e in EMOTIONS}}
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
        notes = (f" (a close call: less than {100 * CLOSE_CALL_MARGIN:.0f} percentage points apart)"
                 if face.close_call else "")
        if cam and face.heatmap is not None and not has_evidence(face):
            notes += f"; the heatmap finds no evidence for {face.target or face.label} in this face"
        lines.append(f"- face {i + 1}: **{face.verdict}**{notes} "
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
