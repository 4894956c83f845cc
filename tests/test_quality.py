"""fer_demo.quality: measurements, the verdict, and refusals through the Predictor on real photos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFilter

from example_photos import EXAMPLES
from fer_demo.quality import (
    DEFAULT_THRESHOLDS,
    UNREADABLE,
    QualityThresholds,
    assess,
    card_thresholds,
    confidence_and_margin,
    judge,
    pose,
    sharpness,
)


def textured_face() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(128 + rng.normal(0, 40, (48, 48)), 0, 255).astype(np.uint8)


def test_sharpness_falls_with_blur_and_ignores_contrast():
    face = textured_face()
    blurred = cv2.GaussianBlur(face, (0, 0), 2.0)
    assert sharpness(blurred) < 0.2 * sharpness(face)
    dull = np.clip(np.rint((face.astype(np.float32) - 128) * 0.5 + 128), 0, 255).astype(np.uint8)
    assert sharpness(dull) == pytest.approx(sharpness(face), rel=0.05)
    assert math.isnan(sharpness(np.full((48, 48), 7, np.uint8)))


def test_pose_from_landmarks():
    frontal = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], dtype=np.float32)
    roll, yaw = pose(frontal)
    assert abs(roll) < 1e-6 and abs(yaw) < 1e-6
    turned = frontal.copy()
    turned[2, 0] = 58  # nose 8 px towards the right eye (half eye distance is 10 px)
    assert pose(turned)[1] == pytest.approx(math.degrees(math.asin(0.8)), abs=0.1)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    tilted = frontal @ np.array([[c, s], [-s, c]], dtype=np.float32)
    assert pose(tilted)[0] == pytest.approx(30, abs=0.1)


def test_judge_names_every_reason():
    t = QualityThresholds(min_face_px=40, min_sharpness=0.2, min_brightness=20, max_brightness=235, max_yaw=45,
                          min_detection=0.9, min_confidence=0.3, min_margin=0.05)
    assert judge(100, 0.5, 120, 0.99, 5, 0.8, 0.6, t) == (True, ())
    ok, why = judge(30, 0.1, 10, 0.5, 60, 0.2, 0.1, t)
    assert not ok
    assert why == ("too small (30 px)", "blurred", "too dark", "turned away", "hardly a face", "no clear expression")
    assert judge(100, 0.5, 250, 0.99, None, 0.8, 0.6, t) == (False, ("over-exposed",))
    assert judge(100, float("nan"), 120, 0.99, 0.0, 0.8, 0.6, t)[1] == ("blurred",)


def test_judge_refuses_a_near_tie_once_and_leaves_an_unknown_margin_unjudged():
    t = QualityThresholds(min_confidence=0.3, min_margin=0.05)
    assert judge(100, 0.5, 120, 0.99, 5, 0.45, 0.04, t) == (False, ("no clear expression",))
    assert judge(100, 0.5, 120, 0.99, 5, 0.25, 0.04, t) == (False, ("no clear expression",))  # one reason for both
    assert judge(100, 0.5, 120, 0.99, 5, 0.45, 0.05, t) == (True, ())
    assert judge(100, 0.5, 120, 0.99, 5, 0.45, None, t) == (True, ())


def test_confidence_and_margin_of_one_face():
    assert confidence_and_margin([0.1, 0.5, 0.3, 0.1]) == pytest.approx((0.5, 0.2))
    assert confidence_and_margin(np.array([[0.45, 0.45, 0.1]], np.float32)) == (pytest.approx(0.45), 0.0)


def test_assess_face_size_from_the_alignment_matrix():
    face = textured_face()
    m = np.array([[0.5, 0, 0], [0, 0.5, 0]])  # the photo's face is twice the 48 px frame
    q = assess(face, m, None, 0.99, 0.9, 0.85)
    assert q.face_px == pytest.approx(96)
    assert q.readable and q.message == "" and q.roll is None and q.margin == pytest.approx(0.85)
    small = assess(face, np.array([[2.0, 0, 0], [0, 2.0, 0]]), None, 0.99, 0.9, 0.85)
    assert small.face_px == pytest.approx(24) and not small.readable
    assert small.message == f"{UNREADABLE} (too small (24 px))"
    assert small.to_dict()["reasons"] == ["too small (24 px)"]
    with pytest.raises(ValueError, match="uint8"):
        assess(face.astype(np.float32), None, None, 1.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def predictor(release_weights):
    from fer_demo.pipeline import Predictor

    return Predictor(release_weights)


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    return Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB")


def only_face(predictor, image):
    faces = predictor.predict(image, cam=None)
    assert len(faces) == 1
    return faces[0]


def test_clear_faces_are_read(predictor):
    # The astronaut's broad smile: a sharp, frontal, well-lit face with a clear expression.
    face = only_face(predictor, Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    assert face.quality.readable and not face.abstained
    assert face.display_label.startswith(face.label) and UNREADABLE not in face.verdict
    top, second = sorted(face.probabilities.values())[-2:][::-1]
    assert face.quality.confidence == pytest.approx(top) and face.quality.margin == pytest.approx(top - second)


def test_every_example_face_is_judged_by_its_own_measurements(predictor):
    # Size, light and pose never refuse the examples' faces; a near tie between two expressions
    # (margin under the floor) is the only way one of them is refused ("no clear expression").
    t = predictor.quality_thresholds
    for name in ("astronaut.jpg", "grace_hopper.jpg", "group_three_faces.jpg"):
        for f in predictor.predict(EXAMPLES / name, cam=None):
            q = f.quality
            clear = q.confidence >= t.min_confidence and q.margin >= t.min_margin
            assert q.readable == clear and f.abstained == (not clear), (name, q)
            assert q.reasons == (() if clear else ("no clear expression",)), (name, q)


def test_tiny_face_is_refused(predictor, hopper):
    tiny = hopper.resize((70, round(hopper.size[1] * 70 / hopper.size[0])), Image.LANCZOS)
    face = only_face(predictor, tiny)
    assert face.abstained and not face.quality.readable
    assert any(r.startswith("too small") for r in face.quality.reasons)
    assert face.verdict.startswith(UNREADABLE) and face.display_label.startswith(UNREADABLE)
    d = face.to_dict()
    assert d["label"] is None and d["guess"] == face.label and d["abstained"] is True
    assert "too small" in d["display_label"]


def test_blurred_face_is_refused(predictor, hopper):
    face = only_face(predictor, hopper.filter(ImageFilter.GaussianBlur(5)))
    assert face.abstained and "blurred" in face.quality.reasons
    assert face.verdict == f"{UNREADABLE} (blurred)"


def test_abstention_off_answers_every_face(release_weights, hopper):
    from fer_demo.pipeline import Predictor

    p = Predictor(release_weights, abstain=False)
    face = only_face(p, hopper.filter(ImageFilter.GaussianBlur(5)))
    assert not face.quality.readable and not face.abstained
    assert face.verdict.startswith(face.label)


def test_card_thresholds_take_the_release_floors_over_the_defaults():
    assert card_thresholds({}) == DEFAULT_THRESHOLDS == card_thresholds(None) == card_thresholds({"abstention": {}})
    t = card_thresholds({"abstention": {"thresholds": {"min_confidence": 0.1, "min_margin": 0}}})
    assert (t.min_confidence, t.min_margin) == (0.1, 0.0)
    assert t.min_face_px == DEFAULT_THRESHOLDS.min_face_px and t.max_yaw == DEFAULT_THRESHOLDS.max_yaw
    with pytest.raises(ValueError, match="must set only min_confidence, min_margin"):
        card_thresholds({"abstention": {"thresholds": {"max_yaw": 90}}})
    for bad in (1.5, -0.1, "0.2", True, None):
        with pytest.raises(ValueError, match="must be a number in \\[0, 1\\]"):
            card_thresholds({"abstention": {"thresholds": {"min_margin": bad}}})


def test_the_pipeline_judges_by_its_release_floors(release_weights, tmp_path):
    import json
    import shutil

    from fer_demo.pipeline import Predictor
    from fer_demo.weights import ModelFileError

    dest = tmp_path / release_weights.name
    shutil.copy(release_weights, dest)
    card = json.loads(release_weights.with_suffix(".json").read_text())
    card["abstention"] = {"thresholds": {"min_confidence": 0.05, "min_margin": 0.09}}
    dest.with_suffix(".json").write_text(json.dumps(card))
    t = Predictor(dest).quality_thresholds
    assert (t.min_confidence, t.min_margin) == (0.05, 0.09) and t.max_yaw == DEFAULT_THRESHOLDS.max_yaw
    mine = QualityThresholds(min_margin=0.2)
    assert Predictor(dest, quality_thresholds=mine).quality_thresholds is mine
    card["abstention"]["thresholds"]["min_margin"] = 2
    dest.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="min_margin=2 must be a number"):
        Predictor(dest)
