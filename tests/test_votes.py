"""train.votes: FER+ majority labels from a path-keyed vote file."""

from __future__ import annotations

import pytest

from train.data import DataError
from train.votes import majority_labels

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
