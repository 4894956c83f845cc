"""benchmarks/weight_mix.py: mixes are parsed strictly; a soup and an ensemble of a release with itself."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from train_helpers import learnable_dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import weight_mix  # noqa: E402


def test_parse_mix_shares_and_errors():
    assert weight_mix.parse_mix("a+b", ["a", "b"]) == {"a": 0.5, "b": 0.5}
    assert weight_mix.parse_mix("0.3*a+0.7*b", ["a", "b"]) == {"a": 0.3, "b": 0.7}
    with pytest.raises(SystemExit, match="unknown model"):
        weight_mix.parse_mix("a+c", ["a", "b"])
    with pytest.raises(SystemExit, match="sum to 0.9"):
        weight_mix.parse_mix("0.3*a+0.6*b", ["a", "b"])


def test_a_release_mixed_with_itself(tmp_path, release_weights):
    data = learnable_dataset(tmp_path / "data", (0, 3, 6), n_train_per_class=8, n_test_per_class=6)
    rows = weight_mix.main(["--data", str(data), "--model", f"a={release_weights}", "--model", f"b={release_weights}",
                            "--soup", "a+b", "--ensemble", "0.4*a+0.6*b"])
    by = {r["model"]: r for r in rows}
    assert list(by) == ["a", "b", "soup a+b", "ensemble 0.4*a+0.6*b"]
    # The ensemble of a model with itself is the model; the soup is too, but with BatchNorm
    # statistics recomputed on these 24 made-up faces, so it only has to give a valid score.
    assert by["ensemble 0.4*a+0.6*b"]["publictest"] == by["a"]["publictest"] == by["b"]["publictest"]
    assert 0.0 <= by["soup a+b"]["publictest"] <= 1.0


def test_loaded_states_are_copies(tmp_path, release_weights):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other.safetensors"
    save_file({k: (t * 0.5 if t.is_floating_point() else t) for k, t in load_file(release_weights).items()}, other)
    shutil.copy(release_weights.with_suffix(".json"), other.with_suffix(".json"))
    states, model = weight_mix.load_states({"a": str(release_weights), "b": str(other)})
    before = {k: t.clone() for k, t in states["a"].items()}
    model.load_state_dict(states["b"])  # what scoring model b does
    assert all(torch.equal(before[k], states["a"][k]) for k in before)
    assert not all(torch.equal(states["a"][k], states["b"][k]) for k in before)


def test_photo_faces_are_the_faces_the_classifier_received(tmp_path, release_weights, monkeypatch):
    """The sfew-dev faces the mixes are scored on are the largest face of each photo exactly as the
    app's classifier received it (uint8 48x48, before the equalisation both apply themselves)."""
    import shutil

    import numpy as np

    from example_photos import EXAMPLES
    from fer_demo.classify import EmotionClassifier
    from fer_demo.pipeline import Predictor
    from train.real_photos import largest

    for cls, name in (("happy", "astronaut.jpg"), ("happy", "group_three_faces.jpg"), ("neutral", "no_face_cat.jpg")):
        (tmp_path / cls).mkdir(exist_ok=True)
        shutil.copy(EXAMPLES / name, tmp_path / cls / name)
    group = Predictor(release_weights, abstain=False).analyze(tmp_path / "happy" / "group_three_faces.jpg", cam=None)
    biggest = [f.box for f in group.faces].index(largest(group.faces).box)  # FaceResults are in batch order

    received: list[np.ndarray] = []
    predict = EmotionClassifier.predict

    def spy(self, faces, tta="none"):
        received.append(np.array(faces))
        return predict(self, faces, tta)

    monkeypatch.setattr(EmotionClassifier, "predict", spy)
    gray, ys, found = weight_mix.photo_faces(tmp_path)
    assert gray.shape == (3, 48, 48) and gray.dtype == np.uint8
    assert ys.tolist() == [3, 3, 6] and found.tolist() == [True, True, False]
    assert [r.shape[0] for r in received] == [1, 3]  # the cat photo has no face: no classifier call
    np.testing.assert_array_equal(gray[0], received[0][0])
    np.testing.assert_array_equal(gray[1], received[1][biggest])
    assert not np.array_equal(gray[1], received[1][(biggest + 1) % 3])
    assert (gray[2] == 0).all()
