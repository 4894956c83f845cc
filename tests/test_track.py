"""fer_demo.track: faces keep their id across frames, labels do not flicker."""

from __future__ import annotations

import numpy as np
import pytest

from fer_demo.track import MIN_SIMILARITY, FaceTracker, appearance_descriptor, iou, similarity

HAPPY, SURPRISE, NEUTRAL = 3, 5, 6


def probs(**by_index: float) -> np.ndarray:
    p = np.full(7, 0.0)
    for k, v in by_index.items():
        p[int(k.removeprefix("c"))] = v
    rest = 1 - p.sum()
    p[p == 0] = rest / max(1, int((p == 0).sum()))
    return p


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0


def test_a_face_moving_across_frames_keeps_its_id_and_a_new_one_gets_another():
    tracker = FaceTracker()
    p = probs(c3=0.9)
    ids = []
    for k in range(30):  # 30 frames at 10 fps, moving 4 px a frame
        x = 100 + 4 * k
        faces = tracker.update([(x, 100, x + 80, 180)], [p], t=k / 10)
        ids.append(faces[0].track_id)
    assert set(ids) == {1}
    two = tracker.update([(220, 100, 300, 180), (500, 50, 560, 110)], [p, p], t=3.0)
    assert [f.track_id for f in two] == [1, 2]


def test_a_face_that_leaves_and_comes_back_gets_a_new_id():
    tracker = FaceTracker(max_missed_s=1.0)
    box = (0, 0, 50, 50)
    assert tracker.update([box], [probs(c3=0.9)], 0.0)[0].track_id == 1
    assert tracker.update([], [], 0.5) == []
    assert tracker.update([box], [probs(c3=0.9)], 0.9)[0].track_id == 1  # away 0.9 s: remembered
    assert tracker.update([box], [probs(c3=0.9)], 2.5)[0].track_id == 2  # away 1.6 s: a new face


def face_of(colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """A 96x96 "face": one colour with noise (a person's skin and hair under one light)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.array(colour) + rng.normal(0, 12, (96, 96, 3)), 0, 255).astype(np.uint8)


def test_appearance_descriptor_tells_people_apart_not_frames_of_one():
    a1, a2 = appearance_descriptor(face_of((200, 150, 120), 1)), appearance_descriptor(face_of((200, 150, 120), 2))
    b = appearance_descriptor(face_of((90, 70, 60), 3))
    assert a1.shape == (512,) and a1.sum() == pytest.approx(1)
    assert similarity(a1, a1) == pytest.approx(1)
    assert similarity(a1, a2) > MIN_SIMILARITY > similarity(a1, b)
    with pytest.raises(ValueError, match="uint8"):
        appearance_descriptor(np.zeros((48, 48), np.uint8))


def test_a_different_person_at_the_same_place_gets_a_new_id():
    """Issue 22, defect 7: a film cutting from one face to another at the same place kept the id
    (overlap alone decides); with appearances the new person is a new face, and the first one,
    back in the next shot within ``max_missed_s``, is new again only if it looks different."""
    box = (100, 100, 180, 180)
    a = [appearance_descriptor(face_of((200, 150, 120), k)) for k in range(6)]
    b = [appearance_descriptor(face_of((90, 70, 60), 10 + k)) for k in range(3)]
    tracker = FaceTracker()
    ids = [tracker.update([box], [probs(c3=0.9)], k / 10, appearances=[a[k]])[0].track_id for k in range(3)]
    ids += [tracker.update([box], [probs(c3=0.9)], (3 + k) / 10, appearances=[b[k]])[0].track_id for k in range(3)]
    assert ids == [1, 1, 1, 2, 2, 2]
    # Without appearances (the old behaviour) the same boxes keep one id: the check is what splits them.
    plain = FaceTracker()
    assert {plain.update([box], [probs(c3=0.9)], k / 10)[0].track_id for k in range(6)} == {1}
    with pytest.raises(ValueError, match="1 boxes but 2 appearance"):
        tracker.update([box], [probs(c3=0.9)], 1.0, appearances=a[:2])


def test_a_flickering_input_gives_a_stable_label():
    """Frame by frame the top class alternates happy/surprise; the shown label does not."""
    tracker = FaceTracker(tau_s=0.5, switch_margin=0.1)
    a, b = probs(c3=0.5, c5=0.4), probs(c3=0.4, c5=0.5)
    labels = []
    for k in range(100):  # 100 frames at 25 fps
        face = tracker.update([(10, 10, 90, 90)], [a if k % 2 == 0 else b], t=k / 25)[0]
        labels.append(face.label)
        assert face.probabilities.sum() == pytest.approx(1)
    raw_changes = 99  # the input's top class changes every frame
    assert sum(x != y for x, y in zip(labels, labels[1:])) == 0 < raw_changes
    # A real change of expression does come through, within about a second.
    for k in range(100, 130):
        face = tracker.update([(10, 10, 90, 90)], [probs(c6=0.9)], t=k / 25)[0]
    assert face.label == NEUTRAL
    assert 0 < len(tracker.history(face.track_id)) <= 10 * 25 + 1  # ~10 s of history kept


def test_smoothing_is_in_seconds_not_frames():
    """The same change seen at 5 and at 30 frames per second is followed at the same pace."""
    def after_one_second(fps: int) -> float:
        tracker = FaceTracker(tau_s=0.5)
        tracker.update([(0, 0, 50, 50)], [probs(c3=0.9)], 0.0)
        for k in range(1, fps + 1):
            face = tracker.update([(0, 0, 50, 50)], [probs(c6=0.9)], k / fps)[0]
        return float(face.probabilities[NEUTRAL])

    assert after_one_second(5) == pytest.approx(after_one_second(30), abs=1e-6)
    assert after_one_second(5) == pytest.approx(0.9 - (0.9 - probs(c3=0.9)[NEUTRAL]) * np.exp(-2), abs=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError):
        FaceTracker(min_iou=0)
    with pytest.raises(ValueError, match="2 boxes but 1"):
        FaceTracker().update([(0, 0, 1, 1), (2, 2, 3, 3)], [probs(c3=1.0)], 0.0)
