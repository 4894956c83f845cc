"""train.real_photos: labelled photo folders, the largest face per photo, scores with film intervals."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from robustness_helpers import photo_records

from fer_demo.model import EMOTIONS
from train.dataset import DataError
from train.real_photos import labelled_photos, largest, report, run_photos, summarise


def test_labelled_photos_lists_class_folders_in_order(tmp_path):
    for cls, name in (("sad", "b.jpg"), ("happy", "z.png"), ("happy", "a.JPG"), ("happy", "notes.txt")):
        (tmp_path / cls).mkdir(exist_ok=True)
        (tmp_path / cls / name).write_bytes(b"x")
    got = [(p.relative_to(tmp_path).as_posix(), y) for p, y in labelled_photos(tmp_path)]
    assert got == [("happy/a.JPG", EMOTIONS.index("happy")), ("happy/z.png", EMOTIONS.index("happy")),
                   ("sad/b.jpg", EMOTIONS.index("sad"))]


def test_labelled_photos_says_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        labelled_photos(tmp_path / "missing")
    (tmp_path / "happy").mkdir()
    with pytest.raises(DataError, match="no photos"):
        labelled_photos(tmp_path)
    (tmp_path / "Happiness").mkdir()
    with pytest.raises(DataError, match="'Happiness' is not a class"):
        labelled_photos(tmp_path)


def face(box, label="happy"):
    return SimpleNamespace(box=box, label=label, to_dict=lambda: {"box": list(box), "guess": label, "label": label})


def test_largest_is_the_biggest_box_not_the_first():
    small, big = face((0, 0, 10, 10)), face((50, 50, 80, 90))
    assert largest([small, big]) is big and largest([]) is None


def test_run_photos_scores_the_largest_face_and_records_no_face(tmp_path):
    class Fake:
        def analyze(self, path, cam=None):
            faces = [] if "cat" in path.name else [face((0, 0, 5, 5), "sad"), face((0, 0, 30, 30), "happy")]
            return SimpleNamespace(faces=faces, faces_found=len(faces), image=np.zeros((20, 30, 3), np.uint8))

    photos = [(tmp_path / "Film_000001_00000001.jpg", EMOTIONS.index("happy")), (tmp_path / "cat.jpg", 0)]
    recs = run_photos(Fake(), photos, progress=False)
    assert [r["pred"] for r in recs] == ["happy", None]
    assert recs[0]["film"] == "Film" and recs[0]["image_size"] == [30, 20] and recs[1]["faces_found"] == 0


def test_summarise_counts_every_photo_and_brackets_with_film_intervals():
    recs = photo_records()
    s = summarise(recs, n_boot=200)
    hits = sum(r["pred"] == r["true"] for r in recs)
    assert s["num_photos"] == 28 and s["accuracy"] == pytest.approx(hits / 28)
    assert s["no_face"] == 4 and s["films"] == 4
    for key, value in (("accuracy_ci95_by_film", s["accuracy"]), ("balanced_accuracy_ci95_by_film", s["balanced_accuracy"])):
        lo, hi = s[key]
        assert lo <= value <= hi and lo < hi
    assert "Film0_" not in json.dumps(s)  # numbers only: no file name
    text = report(s)
    assert f"accuracy: {s['accuracy']:.3f}" in text and "no face found: 4 (14.3%)" in text


def test_summarise_refuses_no_records():
    with pytest.raises(ValueError, match="no photo records"):
        summarise([])


@pytest.mark.integration
def test_run_photos_with_the_apps_predictor_on_the_examples(tmp_path, release_weights):
    from fer_demo.pipeline import Predictor

    examples = Path(__file__).resolve().parents[1] / "examples"
    photos = [(examples / "astronaut.jpg", EMOTIONS.index("happy")), (examples / "no_face_cat.jpg", 0)]
    recs = run_photos(Predictor(release_weights, abstain=False), photos, crops=tmp_path, progress=False)
    assert recs[0]["pred"] in EMOTIONS and recs[0]["quality"]["face_px"] > 40 and recs[1]["pred"] is None
    assert len(list((tmp_path / "happy").glob("astronaut_*_gray.png"))) == 1
