"""train.selective: coverage and accuracy on the answered faces at quality thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from robustness_helpers import BrightnessClassifier, band_faces, photo_records, quality

from fer_demo.quality import DEFAULT_THRESHOLDS, QualityThresholds
from train.selective import CONFIDENCES, curves, photo_selective, point, publictest_selective, verdicts


def test_point_is_coverage_and_accuracy_on_the_answered():
    correct = np.array([1, 1, 0, 0], bool)
    assert point(correct, np.array([1, 0, 1, 0], bool)) == {"coverage": 0.5, "answered": 2, "answered_accuracy": 0.5}
    assert point(correct, np.array([1, 1, 0, 0], bool))["answered_accuracy"] == 1.0
    assert point(correct, np.zeros(4, bool))["answered_accuracy"] == 0.0


def test_verdicts_follow_each_threshold():
    t = QualityThresholds()
    items = [quality(0.8), quality(0.2), quality(0.8, face_px=20), quality(0.8, brightness=10), quality(0.8, yaw=60),
             quality(0.8, yaw=None)]
    assert verdicts(items, t).tolist() == [True, False, False, False, False, True]


def test_curves_chosen_point_gain_and_reasons():
    items = [quality(0.9)] * 6 + [quality(0.2)] * 3 + [quality(0.9, face_px=10)]
    correct = np.array([1, 1, 1, 1, 1, 0, 0, 0, 1, 0], bool)
    out = curves(items, correct, DEFAULT_THRESHOLDS)
    c = out["chosen"]
    assert out["faces"] == 10 and out["all_faces_accuracy"] == pytest.approx(0.6)
    assert c["answered"] == 6 and c["coverage"] == pytest.approx(0.6) and c["answered_accuracy"] == pytest.approx(5 / 6)
    assert c["gain_points"] == pytest.approx(100 * (5 / 6 - 0.6))
    assert c["refused_for"] == {"no clear expression": 3, "too small": 1}
    assert len(out["confidence_only"]) == len(CONFIDENCES) and out["confidence_only"][0]["coverage"] == 1.0
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
