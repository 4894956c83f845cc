"""train.publictest: PublicTest clean (FER2013 and FER+ majority labels) and under corruptions."""

from __future__ import annotations

import numpy as np
import pytest
from robustness_helpers import BrightnessClassifier, band_faces
from train_helpers import write_folder

from train.corruptions import CORRUPTIONS, SEVERITIES
from train.data import load_split
from train.dataset import DataError
from train.publictest import (clean_scores, corruption_markdown, corruption_table, ferplus_majority, predict_probs,
                              stratified)

VOTES_HEADER = "path,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


def test_predict_probs_batches_give_the_same_answers():
    faces, _ = band_faces(21)
    clf = BrightnessClassifier()
    assert np.array_equal(predict_probs(clf, faces, batch=4), clf.predict(faces))
    assert predict_probs(clf, faces[:0]).shape == (0, 7)


def test_stratified_keeps_class_proportions_and_is_seeded():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified(labels, 20, seed=3)
    assert np.bincount(labels[idx]).tolist() == [12, 6, 2] and np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, stratified(labels, 20, seed=3)) and not np.array_equal(idx, stratified(labels, 20, seed=4))


def test_ferplus_majority_follows_load_splits_order(tmp_path):
    faces, labels = band_faces(7)
    root = write_folder(tmp_path / "fer2013", {"test": list(zip(labels.tolist(), faces))})
    # angry's face: FER+ says happy; happy's: a tie (no majority); sad's: no row at all.
    (tmp_path / "votes.csv").write_text(VOTES_HEADER + "test/angry/00000.png,angry,0,8,0,0,2,0,0,0,0,0\n"
                                        + "test/happy/00003.png,happy,5,5,0,0,0,0,0,0,0,0\n"
                                        + "test/fear/00002.png,fear,0,0,0,0,0,0,9,0,0,1\n")
    fp = ferplus_majority(root, tmp_path / "votes.csv")
    split = load_split(root, "test", progress=False)
    order = split.labels.numpy().tolist()
    want = {0: 3, 2: 2}  # FER2013 label -> FER+ majority; the others -1
    assert fp.tolist() == [want.get(y, -1) for y in order]
    with pytest.raises(DataError, match="not found"):
        ferplus_majority(root, tmp_path / "none.csv")


def test_clean_scores_keep_the_two_label_sets_apart():
    pred = np.array([0, 1, 2, 3])
    out = clean_scores(pred, np.array([0, 1, 0, 0]), np.array([-1, 1, 2, 0]))
    assert out["fer2013_labels"] == {"accuracy": 0.5, "faces": 4}
    assert out["ferplus_majority"] == {"accuracy": pytest.approx(2 / 3), "faces": 3}
    assert "ferplus_majority" not in clean_scores(pred, pred)
    with pytest.raises(DataError, match="cannot match"):
        clean_scores(pred, pred, np.array([0, 1]))


def test_corruption_table_every_corruption_and_strength_seeded():
    faces, labels = band_faces(14)
    t = corruption_table(BrightnessClassifier(), faces, labels, seed=0, progress=False)
    assert list(t["corruptions"]) == list(CORRUPTIONS) and t["faces"] == 14
    for row in t["corruptions"].values():
        assert list(row["by_severity"]) == [str(s) for s in SEVERITIES]
        assert row["mean"] == pytest.approx(np.mean(list(row["by_severity"].values())))
    assert t["mean_corruption_accuracy"] == pytest.approx(np.mean([r["mean"] for r in t["corruptions"].values()]))
    # Over-exposure clips a bright face: the brightness classifier cannot stay right on all of them.
    assert t["corruptions"]["overexposed"]["by_severity"]["3"] < 1.0
    assert t == corruption_table(BrightnessClassifier(), faces, labels, seed=0, progress=False)
    text = corruption_markdown(t)
    assert f"| **mean of all** | | | | **{t['mean_corruption_accuracy']:.3f}** |" in text
    assert text.count("\n") == len(CORRUPTIONS) + 2
