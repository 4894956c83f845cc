"""fer_demo.classify.EmotionClassifier: probabilities of aligned faces, via fer_demo.transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_demo.classify import TTA_MODES, EmotionClassifier
from fer_demo.model import EMOTIONS
from fer_demo.transforms import eval_transform, tta_views
from fer_demo.weights import ModelFileError


@pytest.fixture(scope="module")
def classifier(release_weights) -> EmotionClassifier:
    return EmotionClassifier(release_weights)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Three face-like 48x48 images: smooth blobs plus noise (any uint8 image is valid input)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48]
    base = 200 - 0.08 * ((x - 24) ** 2 + (y - 22) ** 2)
    return np.clip(base[None] + rng.normal(0, 25, (3, 48, 48)), 0, 255).astype(np.uint8)


def test_classes_are_the_models(classifier):
    assert classifier.classes == EMOTIONS


@pytest.mark.parametrize("tta", list(TTA_MODES))
def test_probabilities(classifier, faces, tta):
    probs = classifier.predict(faces, tta=tta)
    assert probs.shape == (3, len(EMOTIONS)) and probs.dtype == np.float32
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_no_faces(classifier):
    out = classifier.predict(np.zeros((0, 48, 48), dtype=np.uint8))
    assert out.shape == (0, 7) and out.dtype == np.float32


def test_same_preprocessing_as_transforms(classifier, faces):
    """predict == softmax(net(eval_transform(faces)) / T): the one preprocessing path, calibrated.
    (net: the serving FastNet; its answers against the reference FERNet: tests/test_fastnet.py.)"""
    net = classifier.model if classifier.fast is None else classifier.fast
    with torch.no_grad():
        logits = net(eval_transform(torch.from_numpy(faces)))
    expected = torch.softmax(logits / classifier.temperature("none"), dim=1).numpy()
    np.testing.assert_allclose(classifier.predict(faces), expected, atol=1e-6)
    np.testing.assert_array_equal(tta_views(torch.from_numpy(faces), "none")[0], eval_transform(torch.from_numpy(faces)))


def test_flip_tta_averages_the_mirror(classifier, faces, monkeypatch):
    """With one temperature for both modes, flip is exactly the mean of the face and its mirror."""
    monkeypatch.setattr(classifier, "temperatures", {"none": 1.3, "flip": 1.3})
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    expected = (classifier.predict(faces) + classifier.predict(mirrored)) / 2
    np.testing.assert_allclose(classifier.predict(faces, tta="flip"), expected, atol=1e-6)


def test_tencrop_differs_from_centre_crop(classifier, faces):
    assert not np.allclose(classifier.predict(faces, tta="tencrop"), classifier.predict(faces), atol=1e-7)


def test_batch_equals_one_by_one(classifier, faces):
    one_by_one = np.concatenate([classifier.predict(faces[i : i + 1]) for i in range(len(faces))])
    np.testing.assert_allclose(classifier.predict(faces), one_by_one, atol=1e-5)


def test_bad_input(classifier, faces):
    with pytest.raises(TypeError, match="uint8"):
        classifier.predict(faces.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, 48, 48\)"):
        classifier.predict(faces[:, :40, :40])
    with pytest.raises(ValueError, match=r"\(N, 48, 48\)"):
        classifier.predict(faces[0])
    with pytest.raises(ValueError, match="Invalid TTA mode 'mirror'"):
        classifier.predict(faces, tta="mirror")
    with pytest.raises(TypeError):
        classifier.predict(torch.from_numpy(faces))


def test_missing_weights(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        EmotionClassifier(tmp_path / "none.safetensors")


def test_card_temperatures_are_applied_per_tta_mode(release_weights, faces, tmp_path):
    """The export's calibration (``card["calibration"]["temperature"]``) scales every view's logits."""
    import json
    import shutil

    from fer_demo.weights import card_path

    weights = tmp_path / release_weights.name
    shutil.copy(release_weights, weights)
    card = json.loads(card_path(release_weights).read_text())
    card["calibration"] = {"temperature": {"none": 2.0, "flip": 0.5, "bogus": 3.0}}
    card_path(weights).write_text(json.dumps(card))
    calibrated = EmotionClassifier(weights, precision="reference")  # exact fp32: the test checks the arithmetic
    assert calibrated.temperatures == {"none": 2.0, "flip": 0.5}
    assert calibrated.temperature("tencrop") == 1.0  # no temperature for that mode: unscaled
    with torch.no_grad():
        for tta, t in (("none", 2.0), ("flip", 0.5)):
            views = tta_views(torch.from_numpy(faces), tta)
            logits = calibrated.model(views.reshape(-1, *views.shape[2:])).reshape(views.shape[0], len(faces), -1)
            want = torch.softmax(logits / t, dim=-1).mean(0).numpy()
            np.testing.assert_allclose(calibrated.predict(faces, tta=tta), want, atol=1e-5)
    # Scaling a single view never changes the winner.
    plain = EmotionClassifier(release_weights, precision="reference")
    assert (calibrated.predict(faces).argmax(1) == plain.predict(faces).argmax(1)).all()
