"""Selective prediction: accuracy on the faces the app answers against the share it answers.

A face's quality measurements (``fer_demo.quality.FaceQuality.to_dict()``) and whether the model's
label was right are all this needs. ``curves`` gives risk-coverage curves (coverage = share of faces
answered, accuracy on the answered ones) for (a) the calibrated confidence alone, swept, and (b) the
quality floors of the thresholds with the confidence floor swept on top, (c) the same with the margin
floor swept instead (the confidence floor at the thresholds' value), and the operating point of
the thresholds themselves (``chosen``: coverage, accuracy on the answered faces, the gain over no
abstention in points, and how many faces each reason refused). ``photo_selective`` does it for the
records of ``train.real_photos.run_photos`` (plus the figures over *all* photos, a photo without a
face counted as not answered); ``publictest_selective`` for 48x48 crops and their probabilities,
each face assessed as a face of 48 px without landmarks (there size and pose never refuse).
Shared by ``benchmarks/selective.py`` and ``python -m train robustness``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fer_demo.quality import QualityThresholds, assess, confidence_and_margin, judge

CONFIDENCES = np.round(np.arange(0.0, 0.96, 0.025), 3)
MARGINS = np.round(np.arange(0.0, 0.301, 0.01), 3)


def _judge(q: dict, thresholds: QualityThresholds) -> tuple[bool, tuple[str, ...]]:
    if "margin" not in q:
        raise ValueError("a quality record without 'margin' (written before fer_demo.quality measured it): "
                         "re-run benchmarks/real_photos.py")
    sharp = q["sharpness"] if q["sharpness"] is not None else float("nan")
    return judge(q["face_px"], sharp, q["brightness"], q["detection_score"], q["yaw"], q["confidence"], q["margin"],
                 thresholds)


def verdicts(items: list[dict], thresholds: QualityThresholds) -> np.ndarray:
    """Readable (bool) per face from its quality measurements under ``thresholds``."""
    return np.array([_judge(q, thresholds)[0] for q in items], dtype=bool)


def point(correct: np.ndarray, answered: np.ndarray) -> dict:
    """Coverage, faces answered and accuracy on the answered faces (0 when none is answered)."""
    n = int(answered.sum())
    return {"coverage": float(answered.mean()) if answered.size else 0.0,
            "answered": n, "answered_accuracy": float(correct[answered].mean()) if n else 0.0}


def curves(quality: list[dict], correct: np.ndarray, thresholds: QualityThresholds) -> dict:
    """Risk-coverage curves (confidence alone; quality floors + confidence; quality floors + margin)
    and the operating point.

    ``quality``: one ``FaceQuality.to_dict()`` per face; ``correct``: bool per face (the model's
    label is the true class). Returns ``all_faces_accuracy``, ``faces``, ``confidence_only``,
    ``quality_and_confidence`` (points with ``min_confidence``; no margin floor),
    ``quality_and_margin`` (points with ``min_margin``; the thresholds' confidence floor) and
    ``chosen`` (the point of ``thresholds``, with ``gain_points`` and ``refused_for``: reason -> faces).
    """
    correct = np.asarray(correct, dtype=bool)
    if len(quality) != correct.size:
        raise ValueError(f"{len(quality)} quality records but {correct.size} correctness values")
    conf = np.array([q["confidence"] for q in quality], dtype=float)
    margin = np.array([np.inf if q["margin"] is None else q["margin"] for q in quality], dtype=float)
    floors = verdicts(quality, replace(thresholds, min_confidence=0.0, min_margin=0.0))
    with_conf = floors & (conf >= thresholds.min_confidence)
    out = {"all_faces_accuracy": float(correct.mean()) if correct.size else 0.0, "faces": int(correct.size),
           "confidence_only": [], "quality_and_confidence": [], "quality_and_margin": []}
    for c in CONFIDENCES:
        out["confidence_only"].append({"min_confidence": float(c), **point(correct, conf >= c)})
        out["quality_and_confidence"].append({"min_confidence": float(c), **point(correct, floors & (conf >= c))})
    for m in MARGINS:
        out["quality_and_margin"].append({"min_margin": float(m), **point(correct, with_conf & (margin >= m))})
    chosen = verdicts(quality, thresholds)
    out["chosen"] = point(correct, chosen)
    out["chosen"]["gain_points"] = 100 * (out["chosen"]["answered_accuracy"] - out["all_faces_accuracy"])
    reasons: dict[str, int] = {}
    for q, ok in zip(quality, chosen):
        if not ok:
            for r in _judge(q, thresholds)[1]:
                key = r.split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
    out["chosen"]["refused_for"] = reasons
    return out


def photo_selective(records: list[dict], thresholds: QualityThresholds) -> dict:
    """``curves`` for the faces of ``run_photos`` records, plus ``over_all_photos``: every photo
    counted (``photos``, ``coverage`` = answered / photos, ``accuracy_all_photos_no_abstention``).
    Numbers only."""
    faces = [r for r in records if r.get("quality")]
    correct = np.array([r["guess"] == r["true"] for r in faces], dtype=bool)
    out = curves([r["quality"] for r in faces], correct, thresholds)
    n_all = len(records)
    chosen = verdicts([r["quality"] for r in faces], thresholds)
    out["over_all_photos"] = {"photos": n_all, "coverage": float(chosen.sum() / n_all) if n_all else 0.0,
                              "accuracy_all_photos_no_abstention": float(correct.sum() / n_all) if n_all else 0.0}
    return out


def publictest_selective(faces: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                         thresholds: QualityThresholds) -> dict:
    """``curves`` for uint8 (N, 48, 48) crops with true ``labels`` (N,) and calibrated ``probs`` (N, C),
    each face assessed as a 48 px face without landmarks and with detector score 1."""
    faces, labels, probs = np.asarray(faces), np.asarray(labels), np.asarray(probs)
    if not (len(faces) == len(labels) == len(probs)):
        raise ValueError(f"faces, labels and probs differ in length: {len(faces)}, {len(labels)}, {len(probs)}")
    quality = [assess(f, None, None, 1.0, *confidence_and_margin(p), thresholds).to_dict()
               for f, p in zip(faces, probs)]
    return curves(quality, probs.argmax(axis=1) == labels, thresholds)


__all__ = ["CONFIDENCES", "MARGINS", "verdicts", "point", "curves", "photo_selective", "publictest_selective"]
