"""train.scoring: whole-pipeline scores on labelled photos, film names, the film bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from train.scoring import NO_FACE, balanced_accuracy, bootstrap_by_group, film_of, score_photos


@pytest.mark.parametrize("name, film", [
    ("AlexEmma_000225840_00000024.jpg", "AlexEmma"),
    ("HarryPotter_Deathly_Hallows_1_001234560_00000012.jpg", "HarryPotter_Deathly_Hallows_1"),
    ("OceansThirteen-010619400_00000087.jpg", "OceansThirteen"),
    ("IAmSam_013827920__00000055.jpg", "IAmSam"),
    ("happy/IAmSam_013827920_00000034.jpg", "IAmSam"),
    ("holiday_photo.jpg", "holiday"),
])
def test_film_of(name, film):
    assert film_of(name) == film


def test_score_photos_counts_no_face_as_wrong():
    # classes 0..2 of a 3-class problem; photo 5 has no face.
    y = [0, 0, 1, 1, 2, 2]
    p = [0, 1, 1, 1, 0, NO_FACE]
    s = score_photos(y, p, classes=("a", "b", "c"))
    assert s.num_photos == 6
    assert s.accuracy == pytest.approx(3 / 6)
    assert s.recall == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert s.balanced_accuracy == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert s.no_face == 1 and s.no_face_share == pytest.approx(1 / 6)
    assert s.confusion == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 1]]
    assert s.most_predicted == "b" and s.most_predicted_share == pytest.approx(3 / 5)
    assert s.answered_accuracy == pytest.approx(3 / 5)


def test_score_photos_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        score_photos([0, 1], [0])
    with pytest.raises(ValueError, match="predictions"):
        score_photos([0], [9])


def test_balanced_accuracy_weights_classes_equally():
    y = [0] * 9 + [1]
    p = [0] * 9 + [0]
    assert balanced_accuracy(y, p, num_classes=2) == pytest.approx(0.5)


def test_bootstrap_resamples_whole_groups():
    # Two films: one all right, one all wrong. Resampling films gives 0, 0.5 or 1 only,
    # so the interval spans [0, 1]; resampling frames of 100 photos would give a narrow one.
    y = np.zeros(100, dtype=int)
    p = np.r_[np.zeros(50, dtype=int), np.ones(50, dtype=int)]
    films = np.array(["a"] * 50 + ["b"] * 50)
    lo, hi = bootstrap_by_group(y, p, films, n_boot=500, seed=1)
    assert lo == 0.0 and hi == 1.0
    # one film per photo: an ordinary bootstrap, narrow around 0.5
    lo, hi = bootstrap_by_group(y, p, np.arange(100).astype(str), n_boot=500, seed=1)
    assert 0.35 < lo < 0.5 < hi < 0.65
    assert bootstrap_by_group(y, p, films, n_boot=200, seed=3) == bootstrap_by_group(y, p, films, n_boot=200, seed=3)
    with pytest.raises(ValueError):
        bootstrap_by_group([], [], [])
