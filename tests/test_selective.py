"""train.selective: coverage and accuracy on the answered faces at quality thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from robustness_helpers import BrightnessClassifier, band_faces, photo_records, quality

from fer_demo.quality import DEFAULT_THRESHOLDS, QualityThresholds
from train.selective import CONFIDENCES, MARGINS, curves, photo_selective, point, publictest_selective, verdicts


def test_point_is_coverage_and_accuracy_on_the_answered():
    correct = np.array([1, 1, 0, 0], bool)
    assert point(correct, np.array([1, 0, 1, 0], bool)) == {"coverage": 0.5, "answered": 2, "answered_accuracy": 0.5}
    assert point(correct, np.array([1, 1, 0, 0], bool))["answered_accuracy"] == 1.0
    assert point(correct, np.zeros(4, bool))["answered_accuracy"] == 0.0


def test_verdicts_follow_each_threshold():
    t = QualityThresholds()
    items = [quality(0.8), quality(0.15), quality(0.8, face_px=20), quality(0.8, brightness=10), quality(0.8, yaw=60),
             quality(0.8, yaw=None), quality(0.45, margin=0.01), quality(0.45, margin=None) | {"margin": None}]
    assert verdicts(items, t).tolist() == [True, False, False, False, False, True, False, True]
    with pytest.raises(ValueError, match="without 'margin'"):
        verdicts([{k: v for k, v in quality(0.8).items() if k != "margin"}], t)


def test_curves_chosen_point_gain_and_reasons():
    items = [quality(0.9)] * 6 + [quality(0.15)] * 3 + [quality(0.9, face_px=10)]
    correct = np.array([1, 1, 1, 1, 1, 0, 0, 0, 1, 0], bool)
    out = curves(items, correct, DEFAULT_THRESHOLDS)
    c = out["chosen"]
    assert out["faces"] == 10 and out["all_faces_accuracy"] == pytest.approx(0.6)
    assert c["answered"] == 6 and c["coverage"] == pytest.approx(0.6) and c["answered_accuracy"] == pytest.approx(5 / 6)
    assert c["gain_points"] == pytest.approx(100 * (5 / 6 - 0.6))
    assert c["refused_for"] == {"no clear expression": 3, "too small": 1}
    assert len(out["confidence_only"]) == len(CONFIDENCES) and out["confidence_only"][0]["coverage"] == 1.0
    assert len(out["quality_and_margin"]) == len(MARGINS) and out["quality_and_margin"][0]["min_margin"] == 0.0
    with pytest.raises(ValueError, match="10 quality records but 3"):
        curves(items, correct[:3], DEFAULT_THRESHOLDS)


def test_photo_selective_counts_photos_without_a_face_as_not_answered():
    recs = photo_records()
    out = photo_selective(recs, DEFAULT_THRESHOLDS)
    faces = [r for r in recs if r["pred"] is not None]
    assert out["faces"] == len(faces) == 24
    o = out["over_all_photos"]
    assert o["photos"] == 28 and o["coverage"] == pytest.approx(out["chosen"]["answered"] / 28)
    assert o["accuracy_all_photos_no_abstention"] == pytest.approx(sum(r["pred"] == r["true"] for r in faces) / 28)


def test_publictest_selective_refuses_a_flat_face_and_answers_clear_ones():
    faces, labels = band_faces(14)
    flat = faces.copy()
    flat[0] = 128  # no detail at all: "blurred"
    probs = BrightnessClassifier().predict(flat)
    out = publictest_selective(flat, labels, probs, DEFAULT_THRESHOLDS)
    assert out["chosen"]["refused_for"] == {"blurred": 1} and out["chosen"]["answered"] == 13
    with pytest.raises(ValueError, match="differ in length"):
        publictest_selective(flat, labels[:3], probs, DEFAULT_THRESHOLDS)


def test_the_margin_curve_refuses_near_ties_at_the_default_confidence_floor():
    # Four clear faces (margin 0.4, all right), four near ties (margin 0.02, one right) and one face
    # under the default confidence floor with a wide margin (wrong): the margin sweep keeps the
    # confidence floor, so that face stays refused at every margin.
    items = [quality(0.8, margin=0.4)] * 4 + [quality(0.4, margin=0.02)] * 4 + [quality(0.1, margin=0.1)]
    correct = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], bool)
    out = curves(items, correct, DEFAULT_THRESHOLDS)
    by_margin = {p["min_margin"]: p for p in out["quality_and_margin"]}
    assert by_margin[0.0]["answered"] == 8 and by_margin[0.0]["answered_accuracy"] == pytest.approx(5 / 8)
    assert by_margin[0.03]["answered"] == 4 and by_margin[0.03]["answered_accuracy"] == 1.0
    assert out["chosen"]["answered"] == 4 and out["chosen"]["refused_for"] == {"no clear expression": 5}
