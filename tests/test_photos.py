"""train.photos: folders of labelled photos through the app's own detector and aligner, cached."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import train.photos as photos
from fer_demo.model import EMOTIONS
from train.data import DataError, load_split

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HAPPY, NEUTRAL = EMOTIONS.index("happy"), EMOTIONS.index("neutral")

pytestmark = pytest.mark.integration


@pytest.fixture
def photo_root(tmp_path) -> Path:
    root = tmp_path / "my_photos"
    for split, cls, name in (("train", "Happiness", "astronaut.jpg"), ("train", "neutral", "grace_hopper.jpg"),
                             ("train", "Happiness", "no_face_cat.jpg"), ("test", "happy", "astronaut.jpg")):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / name, root / split / cls / name)
    return root


def test_photos_become_the_faces_the_app_would_classify(photo_root, tmp_path):
    from fer_demo.pipeline import Predictor

    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match="no face found in 1 of 3 photos"):
        ds = photos.load_photo_folder(photo_root, "train", progress=False, cache_dir=cache)
    assert ds.labels.tolist() == [HAPPY, NEUTRAL]  # the cat is skipped
    assert ds.images.shape == (2, 48, 48) and ds.images.dtype.is_floating_point is False
    # The very same 48x48 face the app's Predictor feeds the classifier for that photo.
    app_face = Predictor().analyze(EXAMPLES / "astronaut.jpg", cam=None).faces[0].aligned
    np.testing.assert_array_equal(ds.images[0].numpy(), app_face)
    assert len(list(cache.glob("train-*.npz"))) == 1


def test_the_cache_is_reused_until_the_folder_changes(photo_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        first = photos.load_photo_folder(photo_root, "train", progress=False, cache_dir=cache)

    def no_detection(*args, **kwargs):
        raise AssertionError("detected again although nothing changed")

    monkeypatch.setattr(photos, "detect_faces", no_detection)
    with pytest.warns(UserWarning):
        again = photos.load_photo_folder(photo_root, "train", progress=False, cache_dir=cache)
    assert np.array_equal(first.images.numpy(), again.images.numpy()) and first.labels.tolist() == again.labels.tolist()
    monkeypatch.undo()
    photo = photo_root / "train" / "neutral" / "grace_hopper.jpg"
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))  # edited: a new key
    with pytest.warns(UserWarning):
        photos.load_photo_folder(photo_root, "train", progress=False, cache_dir=cache)
    assert len(list(cache.glob("train-*.npz"))) == 2


def test_load_split_detect_mode_and_errors(photo_root, tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "DEFAULT_CACHE", tmp_path / "cache")
    test = load_split(photo_root, "test", progress=False, faces="detect")
    assert test.labels.tolist() == [HAPPY] and "faces detected" in test.source
    with pytest.raises(DataError, match="Invalid faces mode 'guess'"):
        load_split(photo_root, "test", progress=False, faces="guess")
    cats = tmp_path / "cats"
    (cats / "train" / "happy").mkdir(parents=True)
    shutil.copy(EXAMPLES / "no_face_cat.jpg", cats / "train" / "happy" / "cat.jpg")
    with pytest.raises(DataError, match="no face found in any of its 1 photos"), pytest.warns(UserWarning):
        photos.load_photo_folder(cats, "train", progress=False, cache_dir=tmp_path / "cache")
    (cats / "train" / "contempt").mkdir()
    with pytest.raises(DataError, match="unknown class folder"):
        photos.load_photo_folder(cats, "train", progress=False, cache_dir=tmp_path / "cache")
