"""fer_demo.explain.Explainer: CAMs in the 48x48 face frame, no hooks left behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from fer_demo.classify import EmotionClassifier
from fer_demo.explain import CAM_METHODS, DEFAULT_CAM, Explainer
from fer_demo.model import CAM_TARGET_LAYER, EMOTIONS
from fer_demo.transforms import eval_transform

HAPPY, ANGRY = EMOTIONS.index("happy"), EMOTIONS.index("angry")


# Every test runs on the reference model and on the serving FastNet (in fp32, where its maps equal
# the reference's; bf16 against the reference: tests/test_fastnet.py).
@pytest.fixture(scope="module", params=["reference", "fp32"])
def classifier(release_weights, request) -> EmotionClassifier:
    return EmotionClassifier(release_weights, precision=request.param)


@pytest.fixture(scope="module")
def explainer(classifier) -> Explainer:
    explainer = Explainer(classifier.model, classifier.card.cam_target_layer, fast=classifier.fast)
    assert (explainer.fast is None) == (classifier.precision == "reference")
    return explainer


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:48, 0:48]
    base = 190 - 0.07 * ((x - 24) ** 2 + (y - 22) ** 2)
    base[16:20, 14:20] = base[16:20, 28:34] = 40  # "eyes"
    base[34:37, 17:31] = 60  # "mouth"
    return np.clip(base[None] + rng.normal(0, 20, (2, 48, 48)), 0, 255).astype(np.uint8)


def assert_no_hooks(model: torch.nn.Module, fast: torch.nn.Module | None = None) -> None:
    for name, module in [*model.named_modules(), *(fast.named_modules() if fast is not None else [])]:
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(module, hooks), f"{name or 'model'} keeps {hooks}"
    for p in model.parameters():
        assert p.requires_grad and p.grad is None


@pytest.mark.parametrize("target", [HAPPY, ANGRY])
@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_cam_maps(explainer, faces, method, target):
    cams = explainer.explain(faces, [target] * len(faces), method=method)
    assert cams.shape == (2, 48, 48) and cams.dtype == np.float32
    assert np.isfinite(cams).all() and cams.min() >= 0.0 and cams.max() <= 1.0
    # The network's 40x40 centre crop is the map; the 4 px border it never saw is 0.
    assert (cams[:, :4] == 0).all() and (cams[:, -4:] == 0).all()
    assert (cams[:, :, :4] == 0).all() and (cams[:, :, -4:] == 0).all()
    for cam in cams:
        assert cam.max() == pytest.approx(1.0, abs=1e-4) or cam.max() == 0.0
    assert_no_hooks(explainer.model, explainer.fast)


def test_gradient_maps_depend_on_the_target(explainer, faces):
    happy = explainer.explain(faces, [HAPPY, HAPPY], "gradcam")
    angry = explainer.explain(faces, [ANGRY, ANGRY], "gradcam")
    assert np.abs(happy - angry).max() > 0.05
    mixed = explainer.explain(faces, [HAPPY, ANGRY], "gradcam")  # one target per face, one batch
    np.testing.assert_allclose(mixed[0], happy[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], angry[1], atol=1e-5)


def test_eigencam_ignores_the_target(explainer, faces):
    np.testing.assert_allclose(explainer.explain(faces, [HAPPY, HAPPY], "eigencam"),
                               explainer.explain(faces, [ANGRY, ANGRY], "eigencam"), atol=1e-6)


def test_same_maps_as_plain_pytorch_grad_cam(classifier, explainer, faces):
    """Stopping the backward pass at the target layer does not change the Grad-CAM."""
    layer = dict(classifier.model.named_modules())[CAM_TARGET_LAYER]
    x = eval_transform(torch.from_numpy(faces))
    with GradCAM(model=classifier.model, target_layers=[layer]) as cam:
        reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(HAPPY)] * 2)
    classifier.model.zero_grad(set_to_none=True)
    ours = explainer.explain(faces, [HAPPY, HAPPY], "gradcam")[:, 4:44, 4:44]
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert_no_hooks(classifier.model)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_works_inside_a_callers_no_grad_block(explainer, faces, mode):
    # A class with positive evidence in both faces (the map of a class without any is all zero).
    cls = next(c for c in range(len(EMOTIONS)) if explainer.explain(faces, [c, c], "gradcam").max(axis=(1, 2)).min() > 0)
    predicted = [cls, cls]
    reference = explainer.explain(faces, predicted, "gradcam")
    context = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with context:
        cams = explainer.explain(faces, predicted, "gradcam")
        assert not torch.is_grad_enabled()  # the caller's mode is restored
    np.testing.assert_allclose(cams, reference, atol=1e-6)
    assert cams.max() > 0  # real gradients were computed
    assert_no_hooks(explainer.model, explainer.fast)


def test_probabilities_of_the_cam_pass_match_the_classifier(classifier, explainer, faces):
    cams, probs = explainer.explain_with_probabilities(faces, None, "gradcam", classifier.temperature("none"))
    np.testing.assert_allclose(probs, classifier.predict(faces), atol=1e-5)
    predicted = [int(i) for i in probs.argmax(axis=1)]
    np.testing.assert_allclose(cams, explainer.explain(faces, predicted, "gradcam"), atol=1e-5)


def test_a_calibrated_classifier_and_the_cam_pass_agree(classifier, explainer, faces, monkeypatch):
    """With a temperature, the CAM pass's probabilities equal the classifier's calibrated ones."""
    monkeypatch.setattr(classifier, "temperatures", {"none": 2.5})
    _, probs = explainer.explain_with_probabilities(faces, None, "gradcam", classifier.temperature("none"))
    calibrated = classifier.predict(faces)
    np.testing.assert_allclose(probs, calibrated, atol=1e-5)
    with torch.no_grad():
        logits = classifier.model(eval_transform(torch.from_numpy(faces)))
    np.testing.assert_allclose(calibrated, torch.softmax(logits / 2.5, 1).numpy(), atol=1e-5)


def test_the_default_method_is_the_apps(explainer, faces):
    """One default for every caller: ``DEFAULT_CAM`` (the method the export measured most faithful)."""
    import inspect

    for fn in (Explainer.explain, Explainer.explain_with_probabilities):
        assert inspect.signature(fn).parameters["method"].default == DEFAULT_CAM, fn.__name__
    np.testing.assert_allclose(explainer.explain(faces, [HAPPY, ANGRY]),
                               explainer.explain(faces, [HAPPY, ANGRY], DEFAULT_CAM), atol=1e-6)


def test_no_faces(explainer):
    cams = explainer.explain(np.zeros((0, 48, 48), np.uint8), [], "gradcam")
    assert cams.shape == (0, 48, 48)


def test_bad_arguments(explainer, faces, classifier):
    with pytest.raises(ValueError, match="Invalid CAM method 'scorecam'"):
        explainer.explain(faces, [0, 0], "scorecam")
    with pytest.raises(ValueError, match="one target per face"):
        explainer.explain(faces, [0], "gradcam")
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(faces, [0, 7], "gradcam")  # pytorch-grad-cam would swallow this IndexError
    with pytest.raises(TypeError, match="uint8"):
        explainer.explain(faces.astype(np.float32), [0, 0])
    with pytest.raises(ValueError, match="not in the model"):
        Explainer(classifier.model, "features.99")
    assert_no_hooks(explainer.model, explainer.fast)
