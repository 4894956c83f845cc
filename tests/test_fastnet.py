"""fer_demo.fastnet.FastNet: the serving copy gives the reference FERNet's answers.

Unit tests on random weights (exact equality in fp32); an integration test on 300 PublicTest faces
with the shipped weights for every precision: top-1 agreement >= 99.5%, probabilities within 0.02,
heatmaps with mean Spearman rank correlation >= 0.98 (issue 21's contract; benchmarks/speed.py
--agreement measures the same on all 3,589 faces).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from conftest import IN_CI, ROOT
from fer_demo import fastnet, limits, threads
from fer_demo.classify import EmotionClassifier
from fer_demo.explain import CAM_METHODS, Explainer
from fer_demo.fastnet import FastNet, fold_batchnorm, resolve_precision
from fer_demo.packedconv import PackedConv2d, packed_convolution_available
from fer_demo.model import CAM_TARGET_LAYER, FERNet
from fer_demo.transforms import eval_transform

PUBLIC_TEST = ROOT.parent / "shared" / "data" / "fer2013" / "test"
N_FACES = 300
MIN_AGREEMENT = 0.995
MAX_PROB_DIFF = 0.02
MIN_SPEARMAN = 0.98


@pytest.fixture(scope="module")
def random_net() -> FERNet:
    torch.manual_seed(0)
    net = FERNet().eval()
    # Non-trivial BatchNorm statistics, so folding them has something to get wrong.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net


def random_faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_fold_batchnorm_is_the_same_function(random_net):
    layers = list(random_net.features[:6])
    folded = fold_batchnorm(layers)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded)
    assert len(folded) == len(layers) - 2
    x = torch.randn(2, 1, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(torch.nn.Sequential(*folded)(x), torch.nn.Sequential(*layers)(x),
                                   rtol=1e-4, atol=1e-4)


needs_packed = pytest.mark.skipif(not packed_convolution_available(),
                                  reason="this torch has no oneDNN packed convolution")
PACKED = [False, pytest.param(True, marks=needs_packed)]


@pytest.mark.parametrize("packed", PACKED)
def test_fp32_matches_reference(random_net, packed):
    fast = FastNet(random_net, CAM_TARGET_LAYER, "fp32", packed=packed)
    assert fast.packed == packed
    assert any(isinstance(m, PackedConv2d) for m in fast.modules()) == packed
    x = eval_transform(torch.from_numpy(random_faces(3)))
    with torch.no_grad():
        ref = random_net(x)
    out = fast(x)
    assert out.dtype == torch.float32 and out.shape == (3, 7)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # the reference is left untouched: still has its BatchNorms and trainable weights
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in random_net.modules())
    assert all(p.requires_grad for p in random_net.parameters())


@pytest.mark.parametrize("packed", PACKED)
def test_bf16_close_to_reference(random_net, packed):
    fast = FastNet(random_net, CAM_TARGET_LAYER, "bf16", packed=packed)
    assert fast.precision == "bf16" and fast.head_dtype == torch.bfloat16
    # the tail (run backward for a CAM) is bf16 only with packed convolutions
    assert fast.tail_dtype == (torch.bfloat16 if packed else torch.float32)
    x = eval_transform(torch.from_numpy(random_faces(3)))
    with torch.no_grad():
        ref = torch.softmax(random_net(x), 1)
    probs = torch.softmax(fast(x), 1)
    assert (probs - ref).abs().max() < 0.05


def test_plain_layers_where_packed_convolution_is_missing(random_net, monkeypatch):
    asked = []
    monkeypatch.setattr(fastnet, "packed_convolution_available", lambda dtype=torch.float32: asked.append(dtype))
    fast = FastNet(random_net, CAM_TARGET_LAYER, "bf16")
    assert asked == [torch.bfloat16]  # checked for the dtype the network runs in
    assert not fast.packed and not any(isinstance(m, PackedConv2d) for m in fast.modules())
    assert fast.head_dtype == torch.bfloat16 and fast.tail_dtype == torch.float32


def test_head_is_the_cam_layer(random_net):
    fast = FastNet(random_net, CAM_TARGET_LAYER, "fp32")
    x = eval_transform(torch.from_numpy(random_faces(2)))
    seen = {}
    handle = dict(random_net.named_modules())[CAM_TARGET_LAYER].register_forward_hook(
        lambda m, a, out: seen.setdefault("a", out.detach()))
    try:
        with torch.no_grad():
            random_net(x)
    finally:
        handle.remove()
    a = fast.head(x)
    assert a.dtype == torch.float32 and not a.is_inference()
    torch.testing.assert_close(a, seen["a"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("packed", PACKED)
@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_explainer_on_fastnet_gives_the_reference_maps(random_net, method, packed):
    fast = FastNet(random_net, CAM_TARGET_LAYER, "fp32", packed=packed)
    faces = random_faces(3, seed=1)
    ref_cams, ref_probs = Explainer(random_net).explain_with_probabilities(faces, [3, 0, 6], method)
    cams, probs = Explainer(random_net, fast=fast).explain_with_probabilities(faces, [3, 0, 6], method)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-5)
    np.testing.assert_allclose(cams, ref_cams, atol=2e-3)
    for module in [random_net, fast]:
        for m in module.modules():
            assert not m._forward_hooks and not m._backward_hooks


def test_explainer_ignores_a_fastnet_split_elsewhere(random_net):
    fast = FastNet(random_net, "features.25", "fp32")
    assert Explainer(random_net, CAM_TARGET_LAYER, fast=fast).fast is None


def test_bad_arguments(random_net, monkeypatch):
    with pytest.raises(ValueError, match="Invalid precision 'fp16'"):
        FastNet(random_net, CAM_TARGET_LAYER, "fp16")
    with pytest.raises(ValueError, match="must be a layer of model.features"):
        FastNet(random_net, "classifier.2", "fp32")
    with pytest.raises(ValueError, match="is not inside model.features"):
        FastNet(random_net, "features.99", "fp32")
    with pytest.raises(ValueError, match="Invalid precision"):
        EmotionClassifier(precision="int4")


@pytest.mark.skipif(not threads.available() or not packed_convolution_available(torch.float32),
                    reason="needs torch's OpenMP runtime and oneDNN's packed convolutions")
def test_passes_run_on_the_network_threads(random_net, release_weights, monkeypatch):
    """Every convolution of a classification and of a CAM (forward and backward) runs with the
    FastNet's ``threads`` in the calling thread; the caller's own count is back afterwards."""
    seen: list[int | None] = []
    run = PackedConv2d.run

    def recording(*args, **kwargs):
        seen.append(threads.current())
        return run(*args, **kwargs)

    monkeypatch.setattr(PackedConv2d, "run", staticmethod(recording))
    before = threads.current()
    assert before is not None
    fast = FastNet(random_net, CAM_TARGET_LAYER, "fp32", packed=True, threads=1)
    assert fast.threads == 1
    seen.clear()
    Explainer(random_net, fast=fast).explain_with_probabilities(random_faces(2), [3, 0], "gradcam")
    n_convs = sum(isinstance(m, PackedConv2d) for m in fast.modules())
    n_tail = sum(isinstance(m, PackedConv2d) for m in fast.tail.modules())
    assert len(seen) == n_convs + n_tail and set(seen) == {1}  # the tail's backward ran under it too
    classifier = EmotionClassifier(release_weights, precision="fp32")
    assert classifier.fast.threads == limits.ANALYSIS_THREADS
    classifier.fast.threads = 1
    seen.clear()
    classifier.predict(random_faces(3))
    assert seen and set(seen) == {1}
    assert threads.current() == before
    seen.clear()
    FastNet(random_net, CAM_TARGET_LAYER, "fp32", packed=True, threads=None).eval()(torch.zeros(1, 1, 40, 40))
    assert set(seen) == {before}  # None: torch's own setting
    with pytest.raises(ValueError, match="threads=0"):
        FastNet(random_net, CAM_TARGET_LAYER, "fp32", threads=0)


def test_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(fastnet, "native_bf16", lambda: False)
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(fastnet, "native_bf16", lambda: True)
    assert resolve_precision("auto") == "bf16"
    assert resolve_precision("fp32") == "fp32"


def public_test_faces(n: int) -> tuple[np.ndarray, list[str]]:
    if not PUBLIC_TEST.is_dir():
        if IN_CI:
            pytest.fail(f"PublicTest faces missing: {PUBLIC_TEST}")
        pytest.skip(f"PublicTest faces not on this machine ({PUBLIC_TEST})")
    files = sorted(PUBLIC_TEST.glob("*/*.jpg"))
    picked = files[:: max(1, len(files) // n)][:n]  # spread over every class folder
    return np.stack([np.asarray(Image.open(f).convert("L")) for f in picked]), [f.parent.name for f in picked]


def rank_correlations(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Spearman rank correlation per map over the network's 40x40 crop; two flat maps agree (1),
    a flat map against one that is not does not (0)."""
    out = []
    for a, b in zip(ref[:, 4:44, 4:44], other[:, 4:44, 4:44]):
        flat_a, flat_b = np.ptp(a) == 0, np.ptp(b) == 0
        if flat_a or flat_b:
            out.append(1.0 if flat_a and flat_b else 0.0)
        else:
            out.append(float(spearmanr(a.ravel(), b.ravel())[0]))
    return np.array(out)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_answers_as_reference_on_public_test(release_weights, precision):
    faces, _ = public_test_faces(N_FACES)
    reference = EmotionClassifier(release_weights, precision="reference")
    fast = EmotionClassifier(release_weights, precision=precision)
    assert reference.fast is None and fast.fast is not None
    t = reference.temperature("none")
    ref_explainer = Explainer(reference.model, reference.card.cam_target_layer)
    fast_explainer = Explainer(fast.model, fast.card.cam_target_layer, fast=fast.fast)
    ref_cams, ref_probs, cams, probs = [], [], [], []
    for i in range(0, len(faces), 50):
        batch = faces[i:i + 50]
        c, p = ref_explainer.explain_with_probabilities(batch, None, "gradcam", t)
        ref_cams.append(c), ref_probs.append(p)
        c, p = fast_explainer.explain_with_probabilities(batch, None, "gradcam", t)
        cams.append(c), probs.append(p)
    ref_cams, ref_probs, cams, probs = map(np.concatenate, (ref_cams, ref_probs, cams, probs))
    agreement = float((ref_probs.argmax(1) == probs.argmax(1)).mean())
    assert agreement >= MIN_AGREEMENT
    assert np.abs(ref_probs - probs).max() <= MAX_PROB_DIFF
    # the classifier's own predict (its batched path) agrees with the CAM pass
    np.testing.assert_allclose(fast.predict(faces[:50]), probs[:50], atol=1e-3)
    rho = rank_correlations(ref_cams, cams)
    assert rho.mean() >= MIN_SPEARMAN, f"mean Spearman {rho.mean():.3f}, lowest {np.sort(rho)[:5]}"
