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
