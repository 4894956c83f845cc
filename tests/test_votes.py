"""train.votes: FER+ labels (majority, soft, mixed with FER2013's) from a path-keyed vote file."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from train.data import DataError, load_split
from train.votes import majority_labels, relabel_folder

HEADER = "path,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF,ferplus_image,similarity\n"


def test_majority_rule(tmp_path):
    f = tmp_path / "votes.csv"
    f.write_text(HEADER
                 + "test/angry/a.jpg,angry,3,0,0,0,6,1,0,0,0,0,x.png,0.99\n"    # anger majority
                 + "test/sad/b.jpg,sad,5,0,0,5,0,0,0,0,0,0,y.png,0.9\n"        # tie: no label
                 + "test/fear/c.jpg,fear,0,0,0,0,0,0,3,1,1,2,z.png,0.9\n"      # other votes >= top: no label
                 + "train/happy/d.jpg,happy,1,9,0,0,0,0,0,0,0,0,w.png,0.9\n")
    m = majority_labels(f)
    assert m == {"test/angry/a.jpg": 0, "test/sad/b.jpg": None, "test/fear/c.jpg": None, "train/happy/d.jpg": 3}


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        majority_labels(tmp_path / "none.csv")
    f = tmp_path / "v.csv"
    f.write_text("path,neutral\nx,1\n")
    with pytest.raises(DataError, match="missing column"):
        majority_labels(f)


# --- relabel_folder: the training labels a folder split gets from the votes -------------------------

def _toy_split(tmp_path):
    """A 3-image folder split (labels angry, happy, sad) and a vote file keyed by their paths."""
    from train_helpers import write_folder

    rng = np.random.default_rng(0)
    root = write_folder(tmp_path / "fer", {"train": [(0, rng.integers(0, 256, (48, 48), dtype=np.uint8)),
                                                     (3, rng.integers(0, 256, (48, 48), dtype=np.uint8)),
                                                     (4, rng.integers(0, 256, (48, 48), dtype=np.uint8))]})
    # folder order: angry/00000, happy/00001, sad/00002 (EMOTIONS: angry disgust fear happy sad surprise neutral)
    votes = tmp_path / "votes.csv"
    votes.write_text(HEADER
                     + "train/angry/00000.png,angry,2,0,0,0,8,0,0,0,0,0,a.png,0.9\n"  # anger 8, neutral 2
                     + "train/happy/00001.png,happy,5,5,0,0,0,0,0,0,0,0,b.png,0.9\n")  # tie; sad image: no votes
    return root, votes


def test_mix_blends_the_fer2013_label_with_the_votes_and_keeps_every_image(tmp_path):
    root, votes = _toy_split(tmp_path)
    data = load_split(root, "train", progress=False, ferplus=votes, ferplus_labels="mix", ferplus_mix=0.25)
    assert len(data) == 3 and data.labels.tolist() == [0, 3, 4]  # FER2013's labels stay
    soft = data.soft.numpy()
    np.testing.assert_allclose(soft[0], [0.75 + 0.25 * 0.8, 0, 0, 0, 0, 0, 0.25 * 0.2], atol=1e-6)
    np.testing.assert_allclose(soft[1], [0, 0, 0, 0.75 + 0.125, 0, 0, 0.125], atol=1e-6)
    np.testing.assert_allclose(soft[2], np.eye(7)[4], atol=1e-6)  # no votes: its one-hot label
    assert np.allclose(soft.sum(1), 1) and (soft.argmax(1) == data.labels.numpy()).all()
    assert "votes for 2 of 3" in data.source


def test_majority_and_soft_follow_the_votes_and_drop_what_they_cannot_label(tmp_path):
    root, votes = _toy_split(tmp_path)
    major = load_split(root, "train", progress=False, ferplus=votes, ferplus_labels="majority")
    assert major.labels.tolist() == [0] and major.soft is None and major.paths == ("train/angry/00000.png",)
    soft = load_split(root, "train", progress=False, ferplus=votes, ferplus_labels="soft")
    assert soft.labels.tolist() == [0, 3]  # the tie is kept as a distribution; argmax picks the first (happy)
    np.testing.assert_allclose(soft.soft[1].numpy(), [0, 0, 0, 0.5, 0, 0, 0.5], atol=1e-6)


def test_relabel_folder_errors(tmp_path):
    root, votes = _toy_split(tmp_path)
    data = load_split(root, "train", progress=False)
    with pytest.raises(DataError, match="Invalid FER\\+ label mode"):
        relabel_folder(data, votes, "average")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        relabel_folder(data, votes, "mix", mix=1.5)
    with pytest.raises(DataError, match="none of the 3 images"):
        other = tmp_path / "other.csv"
        other.write_text(HEADER + "test/angry/x.png,angry,0,0,0,0,5,0,0,0,0,0,a.png,0.9\n")
        relabel_folder(data, other, "mix")
    with pytest.raises(DataError, match="folder layout"):
        relabel_folder(replace(data, paths=None), votes, "mix")
    with pytest.raises(DataError, match="mix needs a path-keyed votes.csv"):
        load_split(root, "train", progress=False, ferplus=tmp_path / "fer2013new.csv", ferplus_labels="mix")


# --- One rule, three callers: majority_labels, relabel_folder and train.ferplus.relabel agree ------

# (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF), the FER+
# majority (None: no label) and, in "soft" mode, the label accuracy is counted against (None: dropped).
RULE_CASES = [
    ((0, 8, 1, 0, 0, 0, 0, 0, 1, 0), "happy", "happy"),        # clear majority
    ((5, 0, 0, 5, 0, 0, 0, 0, 0, 0), None, "sad"),             # tied top: no majority; soft keeps it (first in EMOTIONS)
    ((3, 3, 3, 0, 0, 0, 0, 0, 0, 1), None, "happy"),           # three-way tie
    ((1, 6, 1, 0, 0, 0, 0, 0, 0, 0), "happy", "happy"),        # a tie below the top does not matter
    ((0, 0, 0, 0, 3, 0, 0, 1, 1, 1), None, None),              # contempt + unknown + NF == top: dropped
    ((0, 0, 0, 0, 3, 0, 0, 1, 1, 0), "angry", "angry"),        # ... one fewer: kept
    ((1, 0, 0, 0, 2, 0, 0, 3, 0, 0), None, None),              # contempt outvotes every emotion
    ((0, 4, 0, 0, 0, 0, 0, 0, 4, 0), None, None),              # "unknown" ties the top
    ((0, 4, 0, 0, 0, 0, 0, 0, 3, 0), "happy", "happy"),        # "unknown" below the top
    ((2, 2, 0, 0, 0, 0, 0, 2, 0, 0), None, None),              # tied and outvoted
    ((0, 0, 0, 0, 0, 0, 0, 0, 0, 10), None, None),             # not a face
    ((0, 0, 0, 0, 0, 0, 0, 0, 0, 0), None, None),              # no votes at all
    ((0, 0, 0, 0, 0, 0, 1, 0, 0, 0), "fear", "fear"),          # a single vote
    ((0, 0, 0, 0, 0, 5, 0, 0, 0, 0), "disgust", "disgust"),
    ((0, 1, 7, 0, 0, 0, 0, 0, 0, 0), "surprise", "surprise"),
]
VOTE_ORDER = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")  # the file's 7 emotion columns


def _rule_files(tmp_path):
    """The cases as a path-keyed votes.csv (+ a folder split with those paths) and as a fer2013new.csv
    (+ a CSV-layout Training split)."""
    import torch

    from train.dataset import FaceDataset
    from train.ferplus import HEADER as CSV_HEADER

    n = len(RULE_CASES)
    paths = tuple(f"train/angry/{i:05d}.png" for i in range(n))
    keyed = tmp_path / "votes.csv"
    keyed.write_text(HEADER + "".join(f"{p},angry,{','.join(map(str, v))},x.png,0.9\n"
                                      for p, (v, _, _) in zip(paths, RULE_CASES)))
    by_row = tmp_path / "fer2013new.csv"
    by_row.write_text(",".join(CSV_HEADER) + "\n" + "".join(f"Training,fer{i:07d}.png,{','.join(map(str, v))}\n"
                                                            for i, (v, _, _) in enumerate(RULE_CASES)))
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(n, 48, 48).contiguous()  # image i is all i
    labels = torch.zeros(n, dtype=torch.int64)
    folder = FaceDataset(images, labels, "fer/train", "train", paths=paths)
    rows = FaceDataset(images, labels, "fer2013.csv:Training", "train")
    return keyed, folder, by_row, rows


def _kept(data):
    """image index -> (label name, soft row or None) of a relabelled split (image i is filled with i)."""
    from fer_demo.model import EMOTIONS

    return {int(data.images[j, 0, 0]): (EMOTIONS[int(data.labels[j])],
                                        None if data.soft is None else data.soft[j].numpy())
            for j in range(len(data))}


def test_every_caller_of_the_majority_rule_agrees_on_ties_and_other_votes(tmp_path):
    from fer_demo.model import EMOTIONS
    from train.ferplus import relabel

    keyed, folder, by_row, rows = _rule_files(tmp_path)
    majority = {i: m for i, (_, m, _) in enumerate(RULE_CASES) if m is not None}
    soft = {i: s for i, (_, _, s) in enumerate(RULE_CASES) if s is not None}

    named = majority_labels(keyed)
    assert named == {p: (None if m is None else EMOTIONS.index(m)) for p, (_, m, _) in zip(folder.paths, RULE_CASES)}
    for relabelled in (relabel_folder(folder, keyed, "majority"), relabel(rows, by_row, "majority")):
        assert {i: name for i, (name, _) in _kept(relabelled).items()} == majority
        assert relabelled.soft is None and f"FER+ majority labels, {len(majority)} of {len(RULE_CASES)}" in relabelled.source
    for relabelled in (relabel_folder(folder, keyed, "soft"), relabel(rows, by_row, "soft")):
        kept = _kept(relabelled)
        assert {i: name for i, (name, _) in kept.items()} == soft
        for i, (_, dist) in kept.items():
            v = np.array(RULE_CASES[i][0][:7], dtype=np.float32)
            expect = np.array([v[VOTE_ORDER.index(e)] for e in EMOTIONS]) / v.sum()
            np.testing.assert_allclose(dist, expect, rtol=0, atol=1e-7)
            assert dist.dtype == np.float32
