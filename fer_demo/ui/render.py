"""A ``Prediction`` as display values: captions, the heatmap legend, the table, the summary, the JSON.

The photo with its numbered boxes and the per-face cards are in ``fer_demo.ui.cards``.

Pure functions (numpy, PIL, pandas; no Gradio), unit-tested without a server.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fer_demo.calibration import CLOSE_CALL_MARGIN
from fer_demo.model import EMOTIONS
from fer_demo.ui.options import NO_FACE_HINT

if TYPE_CHECKING:
    from fer_demo.pipeline import FaceResult, Prediction

# The photo with its boxes is shown at most this many pixels on its longer side.
DISPLAY_MAX_SIDE = 1280


def sentence(text: str) -> str:
    """``text`` as a sentence on the page: its first letter upper case (library messages start lower
    case, as Python's do: "not an image (...)")."""
    return text[:1].upper() + text[1:]


def error_html(message: str, heading: str | None = None) -> str:
    """A request that could not be analysed, said once in the page's summary (``fer-error``); the
    message as a sentence of its own."""
    head = f"<strong>{html.escape(heading)}</strong> " if heading else ""
    return f'<div class="fer-error" role="alert">{head}{html.escape(sentence(message))}</div>'


def duration(seconds: float) -> str:
    """How long an analysis took, as people read it: "40 ms" under a second (never "0.0 s"), else "1.2 s"."""
    return f"{max(1, round(seconds * 1000))} ms" if seconds < 0.9995 else f"{seconds:.1f} s"


def face_caption(index: int, face: FaceResult) -> str:
    """``"face 1: happy 87%"``, or ``"face 1: happy 48% or surprise 41%"`` for a close call
    (``index`` is 0-based)."""
    return f"face {index + 1}: {face.verdict}"


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
        return f"**No face found** (in {duration(seconds)}). {NO_FACE_HINT}"
    head = f"**{prediction.faces_found} face{'s' if prediction.faces_found != 1 else ''} found**"
    if prediction.truncated:
        head += (f", the {n} most confident analysed (limit {prediction.max_faces} per photo; "
                 f"{prediction.faces_found - n} not shown)")
    lines = [head + f" in {duration(seconds)}."]
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
