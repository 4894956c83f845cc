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

from fer_demo.quality import MODEL_FLOORS, QualityThresholds, assess, confidence_and_margin, judge

CONFIDENCES = np.round(np.arange(0.0, 0.96, 0.025), 3)
MARGINS = np.round(np.arange(0.0, 0.301, 0.01), 3)

# The grid a release's "no clear expression" floors are chosen from (``choose``) and the rule: the
# highest accuracy on the answered faces among the points that answer at least MIN_COVERAGE of the
# faces. 72% leaves room above the 70% for an unseen set of photos, where a floor chosen on
# these faces answers a slightly different share.
CHOICE_CONFIDENCES = CONFIDENCES[CONFIDENCES <= 0.30]
CHOICE_MARGINS = MARGINS[MARGINS <= 0.10]
MIN_COVERAGE = 0.72


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


def _floors(quality: list[dict], thresholds: QualityThresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(passes the quality floors, confidence, margin) per face: the parts ``choose`` combines."""
    conf = np.array([q["confidence"] for q in quality], dtype=float)
    margin = np.array([np.inf if q["margin"] is None else q["margin"] for q in quality], dtype=float)
    return verdicts(quality, replace(thresholds, min_confidence=0.0, min_margin=0.0)), conf, margin


def _choose(floors: np.ndarray, conf: np.ndarray, margin: np.ndarray, correct: np.ndarray,
            min_coverage: float) -> tuple[float, float]:
    """(min_confidence, min_margin) of the grid by the rule (see MIN_COVERAGE); ties go to the
    larger coverage, then the lower floors. (0, 0) when no point reaches the coverage."""
    best, key = (0.0, 0.0), None
    for c in CHOICE_CONFIDENCES:
        for m in CHOICE_MARGINS:
            answered = floors & (conf >= c) & (margin >= m)
            coverage = answered.mean() if answered.size else 0.0
            if not answered.any() or coverage < min_coverage:
                continue
            k = (correct[answered].mean(), coverage, -c, -m)
            if key is None or k > key:
                best, key = (float(c), float(m)), k
    return best


def choose(quality: list[dict], correct: np.ndarray, thresholds: QualityThresholds,
           min_coverage: float = MIN_COVERAGE) -> QualityThresholds:
    """``thresholds`` with its ``min_confidence`` and ``min_margin`` chosen on these faces: of the grid
    ``CHOICE_CONFIDENCES`` x ``CHOICE_MARGINS``, on top of the thresholds' quality floors (size,
    sharpness, light, pose), the point with the highest accuracy on the answered faces among those
    answering >= ``min_coverage`` of them. A model's confidence is its own, so each release gets its own
    (``python -m train robustness`` chooses them on the real photos and writes them into the card)."""
    correct = np.asarray(correct, dtype=bool)
    c, m = _choose(*_floors(quality, thresholds), correct, min_coverage)
    return replace(thresholds, min_confidence=c, min_margin=m)


def cross_validate(quality: list[dict], correct: np.ndarray, groups: list[str], thresholds: QualityThresholds,
                   min_coverage: float = MIN_COVERAGE, folds: int = 5, repeats: int = 20, seed: int = 0) -> dict:
    """How ``choose`` does on faces it did not choose on: grouped k-fold by ``groups`` (films: frames of
    one film are correlated), repeated ``repeats`` times over random splits of the groups.

    In each fold the floors are chosen on the other folds' faces and applied to the fold's; a repeat's
    figures pool its folds (every face judged once). Returns the mean and the 5th-95th percentiles
    over repeats of ``coverage``, ``answered_accuracy`` and ``gain_points`` (over the all-faces
    accuracy), and ``folds``, ``repeats`` and ``groups`` (how many).
    """
    correct = np.asarray(correct, dtype=bool)
    groups_arr = np.asarray(groups)
    if not (len(quality) == correct.size == groups_arr.size):
        raise ValueError(f"quality, correct and groups differ in length: {len(quality)}, {correct.size}, "
                         f"{groups_arr.size}")
    names = np.unique(groups_arr)
    if names.size < folds:
        raise ValueError(f"{names.size} groups cannot be split into {folds} folds")
    floors, conf, margin = _floors(quality, thresholds)
    rng = np.random.default_rng(seed)
    runs = {"coverage": [], "answered_accuracy": [], "gain_points": []}
    for _ in range(repeats):
        fold_of = dict(zip(rng.permutation(names), np.arange(names.size) % folds))
        fold = np.array([fold_of[g] for g in groups_arr])
        answered = np.zeros(correct.size, dtype=bool)
        for k in range(folds):
            held, rest = fold == k, fold != k
            c, m = _choose(floors[rest], conf[rest], margin[rest], correct[rest], min_coverage)
            answered[held] = floors[held] & (conf[held] >= c) & (margin[held] >= m)
        acc = float(correct[answered].mean()) if answered.any() else 0.0
        runs["coverage"].append(float(answered.mean()))
        runs["answered_accuracy"].append(acc)
        runs["gain_points"].append(100 * (acc - float(correct.mean())))
    out: dict = {"folds": folds, "repeats": repeats, "groups": int(names.size)}
    for name, values in runs.items():
        v = np.array(values)
        out[name] = float(v.mean())
        out[f"{name}_p05_p95"] = [float(np.percentile(v, 5)), float(np.percentile(v, 95))]
    return out


def photo_choice(records: list[dict], base: QualityThresholds,
                 min_coverage: float = MIN_COVERAGE) -> tuple[QualityThresholds, dict]:
    """The thresholds ``choose`` picks on the faces of ``run_photos`` records (``base``'s quality floors,
    the release's own confidence and margin floors) and the record of that choice: ``rule``,
    ``min_coverage``, ``thresholds`` (the chosen floors), ``at_base`` (the operating point of ``base``
    itself, for comparison) and ``cross_validated`` (``cross_validate`` by film, up to 5 folds; None
    with fewer than 2 films)."""
    found = [r for r in records if r.get("quality")]
    quality = [r["quality"] for r in found]
    correct = np.array([r["guess"] == r["true"] for r in found], dtype=bool)
    films = [r["film"] for r in found]
    chosen = choose(quality, correct, base, min_coverage)
    n_films = len(set(films))
    return chosen, {
        "rule": f"the highest accuracy on the answered faces at >= {min_coverage:.0%} of them answered, over a "
                "grid of confidence and margin floors (train.selective.choose)",
        "min_coverage": min_coverage, "thresholds": {k: getattr(chosen, k) for k in MODEL_FLOORS},
        "at_base": curves(quality, correct, base)["chosen"],
        "cross_validated": (cross_validate(quality, correct, films, base, min_coverage, folds=min(5, n_films))
                            if n_films >= 2 else None)}


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


__all__ = ["CONFIDENCES", "MARGINS", "CHOICE_CONFIDENCES", "CHOICE_MARGINS", "MIN_COVERAGE", "verdicts", "point",
           "curves", "choose", "cross_validate", "photo_choice", "photo_selective", "publictest_selective"]
