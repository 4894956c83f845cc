"""Prediction-shaped fakes for the UI tests: real ``FaceResult`` objects with made-up values."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from fer_demo import limits
from fer_demo.calibration import is_close_call
from fer_demo.model import EMOTIONS
from fer_demo.pipeline import FaceResult


def fake_face(label: str = "happy", p: float = 0.87, box=(10, 20, 60, 80), target: str | None = None,
              cam: bool = True, runner_up: str | None = None, p2: float | None = None,
              evidence: bool = True) -> FaceResult:
    """A real ``FaceResult`` with made-up values; ``runner_up``/``p2`` make a close call."""
    second = runner_up or next(e for e in EMOTIONS if e != label)
    p2 = p2 if p2 is not None else (1 - p) / (len(EMOTIONS) - 1)
    rest = (1 - p - p2) / (len(EMOTIONS) - 2)
    probs = {e: (p if e == label else p2 if e == second else rest) for e in EMOTIONS}
    overlay = np.full((192, 192, 3), 100, np.uint8) if cam else None
    region = np.full((box[3] - box[1], box[2] - box[0], 3), 50, np.uint8) if cam else None
    x1, y1, x2, y2 = box  # image pixels -> the 48x48 face: the box stretched onto it
    matrix = np.array([[48 / (x2 - x1), 0, -x1 * 48 / (x2 - x1)], [0, 48 / (y2 - y1), -y1 * 48 / (y2 - y1)]])
    return FaceResult(box=box, landmarks=np.zeros((5, 2), np.float32), detection_score=0.99,
                      aligned=np.zeros((48, 48), np.uint8), aligned_rgb=np.zeros((192, 192, 3), np.uint8),
                      probabilities=probs, label=label, confidence=p, runner_up=second,
                      close_call=is_close_call(p, p2), target=(target or label) if cam else None,
                      heatmap=np.full((48, 48), 0.5 if evidence else 0.0, np.float32) if cam else None,
                      overlay=overlay, region_overlay=region, matrix=matrix)


def fake_prediction(faces: list, found: int | None = None, max_faces: int = limits.MAX_FACES) -> SimpleNamespace:
    found = len(faces) if found is None else found

    def to_dict():
        return {"faces": [{"box": list(f.box), "label": f.label, "probabilities": f.probabilities,
                           "score": np.float32(f.detection_score)} for f in faces],
                "faces_found": found, "truncated": found > max_faces, "max_faces": max_faces}

    return SimpleNamespace(faces=faces, image=np.zeros((120, 160, 3), np.uint8), faces_found=found,
                           truncated=found > len(faces), max_faces=max_faces, to_dict=to_dict)
