"""FER+ relabelling (train.ferplus) on generated fer2013.csv / fer2013new.csv pairs."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from fer_demo.model import EMOTIONS
from train.config import TrainConfig
from train.data import DataError, load_split
from train.ferplus import HEADER, read_votes
from train_helpers import learnable_face, pixels_str, write_csv, write_folder

# Vote rows: (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF)
# and what becomes of the image. FER2013 label of every row: 0 (angry), so relabelling shows.
ROWS = [
    ((0, 8, 1, 0, 0, 0, 0, 0, 1, 0), "happy", "majority"),          # clear majority
    ((5, 0, 0, 5, 0, 0, 0, 0, 0, 0), "tie", "soft only"),           # tied: majority drops it
    ((1, 0, 0, 0, 2, 0, 0, 3, 0, 0), "contempt", "dropped"),        # contempt outvotes every emotion
    ((0, 0, 0, 0, 0, 0, 0, 0, 0, 10), "NF", "dropped"),              # not a face
    ((0, 0, 6, 0, 0, 0, 4, 0, 0, 0), "surprise", "majority"),
    ((0, 0, 0, 0, 0, 7, 3, 0, 0, 0), "unnamed", "dropped"),         # FER+ gave it no image name
]


def write_pair(root, usage: str = "Training", extra_test: int = 2):
    rng = np.random.default_rng(0)
    faces = [learnable_face(0, rng) for _ in ROWS]
    csv_rows = [(0, pixels_str(f), usage) for f in faces]
    csv_rows += [(2, pixels_str(learnable_face(1, rng)), "PublicTest") for _ in range(extra_test)]  # "fear"
    data = write_csv(root / "fer2013.csv", csv_rows)
    votes = root / "fer2013new.csv"
    with votes.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i, (v, what, _) in enumerate(ROWS):
            w.writerow([usage, "" if what == "unnamed" else f"fer{i:07d}.png", *v])
        for i in range(extra_test):
            w.writerow(["PublicTest", f"fer9{i:06d}.png", 0, 0, 0, 0, 0, 9, 1, 0, 0, 0])  # disgust
    return data, votes, faces


def test_majority_labels_follow_the_votes_and_drop_what_is_not_one_of_seven(tmp_path):
    data, votes, faces = write_pair(tmp_path)
    ds = load_split(data, "train", progress=False, ferplus=votes)
    assert [EMOTIONS[i] for i in ds.labels] == ["happy", "surprise"]
    assert torch.equal(ds.images[0], torch.from_numpy(faces[0])) and torch.equal(ds.images[1], torch.from_numpy(faces[4]))
    assert ds.soft is None and "FER+ majority labels, 2 of 6 images" in ds.source
    test = load_split(data, "test", progress=False, ferplus=votes)
    assert [EMOTIONS[i] for i in test.labels] == ["disgust", "disgust"]  # FER2013 said "fear", the votes disgust


def test_soft_labels_are_the_vote_distribution_and_keep_ties(tmp_path):
    data, votes, _ = write_pair(tmp_path)
    ds = load_split(data, "train", progress=False, ferplus=votes, ferplus_labels="soft")
    assert len(ds) == 3  # the tie is kept
    happy = ds.soft[0]
    assert happy[EMOTIONS.index("happy")] == pytest.approx(8 / 9) and happy[EMOTIONS.index("surprise")] == pytest.approx(1 / 9)
    tie = ds.soft[1]
    assert tie[EMOTIONS.index("neutral")] == pytest.approx(0.5) and tie[EMOTIONS.index("sad")] == pytest.approx(0.5)
    torch.testing.assert_close(ds.soft.sum(dim=1), torch.ones(3))
    assert torch.equal(ds.labels, ds.soft.argmax(dim=1))  # accuracy is counted against the top vote
    assert torch.equal(ds.targets(torch.tensor([2])), ds.soft[2:3])
    # The fingerprint (resume's check that the data did not change) sees the soft labels too.
    majority = load_split(data, "train", progress=False, ferplus=votes)
    assert ds.fingerprint() != majority.fingerprint()


@pytest.mark.parametrize("problem, message", [
    ("folder", "need the CSV layout"),
    ("rows", "must be the one published for this fer2013.csv"),
    ("header", "header must be"),
    ("missing", "FER+ vote file not found"),
    ("mode", "Invalid FER+ label mode"),
])
def test_bad_ferplus_input_is_a_clear_error(tmp_path, problem, message):
    data, votes, _ = write_pair(tmp_path)
    kwargs = dict(progress=False, ferplus=votes)
    if problem == "folder":
        data = write_folder(tmp_path / "folder", {"train": [(0, learnable_face(0, np.random.default_rng(1)))],
                                                  "test": [(0, learnable_face(0, np.random.default_rng(2)))]})
    elif problem == "rows":
        lines = votes.read_text().splitlines()
        votes.write_text("\n".join(lines[:-3] + lines[-2:]) + "\n")  # one Training row fewer
    elif problem == "header":
        votes.write_text("a,b,c\n")
    elif problem == "missing":
        kwargs["ferplus"] = tmp_path / "nowhere.csv"
    elif problem == "mode":
        kwargs["ferplus_labels"] = "average"
    with pytest.raises(DataError, match=re.escape(message)):
        load_split(data, "train", **kwargs)


def test_read_votes_in_emotion_order(tmp_path):
    _, votes, _ = write_pair(tmp_path)
    v, other, named = read_votes(votes, "train")
    assert v.shape == (len(ROWS), len(EMOTIONS))
    assert v[0, EMOTIONS.index("happy")] == 8 and v[0, EMOTIONS.index("surprise")] == 1 and other[0] == 1
    assert named.tolist() == [True] * 5 + [False]


@pytest.mark.slow
def test_training_on_soft_ferplus_labels(tmp_path):
    """A tiny fit on soft labels: the loss takes the vote distributions; PublicTest is scored on majority."""
    from train.fit import fit

    rng = np.random.default_rng(0)
    classes = (0, 3, 6)
    train = [(c, learnable_face(c, rng)) for _ in range(12) for c in classes]
    test = [(c, learnable_face(c, rng)) for _ in range(2) for c in classes]
    data = write_csv(tmp_path / "fer2013.csv", [(0, pixels_str(f), "Training") for _, f in train]
                     + [(0, pixels_str(f), "PublicTest") for _, f in test])  # FER2013's labels: all wrong
    votes = tmp_path / "fer2013new.csv"
    columns = {0: "anger", 3: "happiness", 6: "neutral"}
    with votes.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for usage, samples in (("Training", train), ("PublicTest", test)):
            for i, (c, _) in enumerate(samples):
                counts = {name: 0 for name in HEADER[2:]}
                counts[columns[c]] = 7
                counts["surprise"] = 3
                w.writerow([usage, f"fer{i:07d}.png", *counts.values()])
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), epochs=1, batch_size=12, eval_batch_size=64,
                      precision="fp32", seed=0, progress=False, ferplus=str(votes), ferplus_labels="soft")
    metrics = fit(cfg, device="cpu")
    assert metrics["num_images"] == len(test)
    assert sum(metrics["per_class"][EMOTIONS[c]]["support"] for c in classes) == len(test)  # majority labels


def test_judge_is_the_one_copy_of_the_rule():
    """train.ferplus.judge: the masks every relabelling reads (test_votes checks its three callers agree)."""
    from train.ferplus import judge

    votes = np.array([[0, 0, 0, 8, 0, 1, 0], [0, 0, 0, 5, 0, 0, 5], [0, 3, 0, 0, 0, 0, 0], [0] * 7])
    v = judge(votes, np.array([1, 0, 3, 0]))
    assert v.label.tolist() == [3, 3, 1, 0] and v.label.dtype == np.int64
    assert v.soft.tolist() == [True, True, False, False] and v.majority.tolist() == [True, False, False, False]
    assert v.kept("soft") is v.soft and v.kept("majority") is v.majority
    assert judge(votes.astype(np.float32), np.array([1, 0, 3, 0])).majority.tolist() == v.majority.tolist()
    empty = judge(np.zeros((0, 7), np.int64), np.zeros(0, np.int64))
    assert empty.label.shape == empty.soft.shape == empty.majority.shape == (0,)
    with pytest.raises(DataError, match="Invalid FER\\+ label mode"):
        v.kept("mix")
