"""train.selective: coverage and accuracy on the answered faces at quality thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from robustness_helpers import BrightnessClassifier, band_faces, photo_records, quality

from fer_demo.quality import DEFAULT_THRESHOLDS, QualityThresholds
from train.selective import (
    CONFIDENCES,
    MARGINS,
    choose,
    cross_validate,
    curves,
    photo_choice,
    photo_selective,
    point,
    publictest_selective,
    verdicts,
)


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


def test_choose_takes_the_most_accurate_floors_that_answer_enough():
    # 5 sure and right, two at 0.28 wrong, one at 0.22 right, two at 0.12 wrong; margins never refuse.
    conf = [0.9] * 5 + [0.28] * 2 + [0.22] + [0.12] * 2
    items = [quality(c, margin=0.5) for c in conf]
    correct = np.array([1] * 5 + [0, 0, 1, 0, 0], bool)
    t = choose(items, correct, DEFAULT_THRESHOLDS, min_coverage=0.72)  # >= 8 of 10 answered: drop the 0.12s
    assert (t.min_confidence, t.min_margin) == (0.125, 0.0)
    assert t.max_yaw == DEFAULT_THRESHOLDS.max_yaw and t.min_face_px == DEFAULT_THRESHOLDS.min_face_px
    t = choose(items, correct, DEFAULT_THRESHOLDS, min_coverage=0.5)  # 5 of 10 may do: only the sure ones
    assert (t.min_confidence, t.min_margin) == (0.3, 0.0)
    # A near tie is what is wrong: the margin floor, not the confidence floor, refuses it.
    items = [quality(0.6, margin=0.3)] * 8 + [quality(0.6, margin=0.01)] * 2
    t = choose(items, np.array([1] * 6 + [0, 1, 0, 0], bool), DEFAULT_THRESHOLDS, min_coverage=0.72)
    assert (t.min_confidence, t.min_margin) == (0.0, 0.02)
    # No point answers enough (the quality floors refuse most faces): no floor of its own.
    items = [quality(0.9, face_px=10)] * 5 + [quality(0.9)] * 2
    t = choose(items, np.array([1, 0, 1, 0, 1, 1, 0], bool), DEFAULT_THRESHOLDS, min_coverage=0.72)
    assert (t.min_confidence, t.min_margin) == (0.0, 0.0)


def _films(n: int, seed: int, signal: bool) -> tuple[list[dict], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.15, 0.9, n)
    right = rng.uniform(0, 1, n) < (np.where(conf > 0.35, 0.6, 0.15) if signal else 0.4)
    return [quality(float(c), margin=float(c) / 2) for c in conf], right, [f"film{i % 12}" for i in range(n)]


def test_cross_validation_judges_each_film_by_floors_chosen_on_the_others():
    items, right, films = _films(240, seed=3, signal=True)
    cv = cross_validate(items, right, films, DEFAULT_THRESHOLDS, folds=4, repeats=5)
    assert cv["folds"] == 4 and cv["repeats"] == 5 and cv["groups"] == 12
    assert cv["gain_points"] > 5 and cv["coverage"] >= 0.6  # a real signal survives
    lo, hi = cv["gain_points_p05_p95"]
    assert lo - 1e-9 <= cv["gain_points"] <= hi + 1e-9
    # No signal at all: choosing on the same faces shows a gain (it picks the lucky floors); judged on
    # films it was not chosen on, the gain is gone (means over 10 made-up sets of 60 faces).
    in_sample, held_out = [], []
    for seed in range(10):
        items, right, films = _films(60, seed=seed, signal=False)
        in_sample.append(curves(items, right, choose(items, right, DEFAULT_THRESHOLDS))["chosen"]["gain_points"])
        held_out.append(cross_validate(items, right, films, DEFAULT_THRESHOLDS, folds=4, repeats=5)["gain_points"])
    assert np.mean(in_sample) > 0.5 and np.mean(held_out) < 0 and min(in_sample) >= 0
    with pytest.raises(ValueError, match="12 groups cannot be split into 13 folds"):
        cross_validate(items, right, films, DEFAULT_THRESHOLDS, folds=13)
    with pytest.raises(ValueError, match="differ in length"):
        cross_validate(items, right[:-1], films, DEFAULT_THRESHOLDS)


def test_photo_choice_records_the_floors_and_how_they_were_chosen():
    records = photo_records()
    chosen, choice = photo_choice(records, DEFAULT_THRESHOLDS)
    assert choice["thresholds"] == {"min_confidence": chosen.min_confidence, "min_margin": chosen.min_margin}
    assert choice["at_base"] == photo_selective(records, DEFAULT_THRESHOLDS)["chosen"]
    assert choice["cross_validated"]["groups"] == 4 and choice["cross_validated"]["folds"] == 4
    one_film = [{**r, "film": "Film0"} for r in records]
    assert photo_choice(one_film, DEFAULT_THRESHOLDS)[1]["cross_validated"] is None
