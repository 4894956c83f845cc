"""The classifier (fer_demo.model): shapes, size, Grad-CAM layer, ImageNet initialisation offline."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import pytest
import torch
from torch import nn

from fer_demo.model import (
    CAM_TARGET_LAYER,
    EMOTIONS,
    FACE_SIZE,
    IMAGENET_FILENAME,
    INPUT_SIZE,
    FERNet,
    ImageNetWeightsUnavailable,
    build_model,
    imagenet_weights_path,
    load_imagenet_features,
)

# torchvision's VGG19 ("E") layout: conv widths, "M" = max-pool. Written out here rather than
# taken from torchvision so the test also checks that FERNet keeps torchvision's layer indices.
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
# The ImageNet head FERNet replaces: 25088 -> 4096 -> 4096 -> 1000.
IMAGENET_HEAD_PARAMS = (512 * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)


@pytest.fixture(scope="module")
def model() -> FERNet:
    torch.manual_seed(0)
    return build_model().eval()


@pytest.mark.parametrize("size", [INPUT_SIZE, FACE_SIZE])
def test_output_shape(model, size):
    with torch.no_grad():
        out = model(torch.randn(3, 1, size, size))
    assert out.shape == (3, len(EMOTIONS)) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_channels_last_gives_the_same_logits(model):
    x = torch.randn(2, 1, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(cl, ref, atol=1e-4, rtol=1e-4)


def test_parameter_count_well_under_imagenet_head(model):
    n = sum(p.numel() for p in model.parameters())
    assert 19_000_000 < n < 21_000_000  # VGG19-BN convolutions (~20.0M) + a 512x7 head
    assert n < IMAGENET_HEAD_PARAMS / 5
    head = model.classifier[-1]
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (512, len(EMOTIONS))
    assert model.features[0].in_channels == 1  # grayscale input


def test_cam_target_layer_is_a_block_4_relu_that_feeds_a_conv(model):
    modules = dict(model.named_modules())
    assert CAM_TARGET_LAYER in modules
    layer = modules[CAM_TARGET_LAYER]
    assert isinstance(layer, nn.ReLU)
    # In block 4 (after 3 max-pools), and followed by a conv, not by the max-pool: a layer that feeds
    # the 5x5 -> 2x2 pool gets gradient at 4 positions per channel only (flat CAMs).
    idx = int(CAM_TARGET_LAYER.split(".")[1])
    assert isinstance(model.features[idx + 1], nn.Conv2d)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features[: idx + 1]) == 3
    seen = {}

    def hook(module, inputs, output):
        seen["shape"] = tuple(output.shape)

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(torch.randn(1, 1, INPUT_SIZE, INPUT_SIZE))
    finally:
        handle.remove()
    assert seen["shape"] == (1, 512, 5, 5)  # 5x5 maps for a 40x40 input


def test_invalid_init_raises():
    with pytest.raises(ValueError, match="Invalid init 'imagenet21k'"):
        build_model("imagenet21k")


# ----------------------------------------------------------------------------- ImageNet init


def fake_vgg19_bn_state(seed: int = 0) -> OrderedDict:
    """A torchvision-style vgg19_bn state dict with the real feature shapes and random values.

    Like torchvision's released file it has no ``num_batches_tracked`` buffers; it has one
    (shrunken) ``classifier.*`` tensor that the loader must ignore.
    """
    g = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    i, cin = 0, 3
    for v in VGG19_CFG:
        if v == "M":
            i += 1
            continue
        state[f"features.{i}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.randn(v, generator=g) * 0.01
        state[f"features.{i + 1}.weight"] = 1 + 0.1 * torch.randn(v, generator=g)
        state[f"features.{i + 1}.bias"] = 0.1 * torch.randn(v, generator=g)
        state[f"features.{i + 1}.running_mean"] = 0.1 * torch.randn(v, generator=g)
        state[f"features.{i + 1}.running_var"] = 0.5 + torch.rand(v, generator=g)
        i, cin = i + 3, v
    state["classifier.6.weight"] = torch.randn(10, 16, generator=g)
    return state


@pytest.fixture(scope="module")
def fake_torch_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    ckpt = home / "hub" / "checkpoints" / IMAGENET_FILENAME
    ckpt.parent.mkdir(parents=True)
    state = fake_vgg19_bn_state()
    torch.save(state, ckpt)
    return home, ckpt, state


def _check_loaded(m: FERNet, state: OrderedDict) -> None:
    f = m.features
    torch.testing.assert_close(f[0].weight, state["features.0.weight"].sum(dim=1, keepdim=True), atol=0, rtol=0)
    assert f[0].weight.shape == (64, 1, 3, 3)
    assert torch.equal(f[0].bias, state["features.0.bias"])
    for key in ("features.3.weight", "features.49.weight", "features.50.running_var", "features.28.running_mean", "features.27.bias"):
        assert torch.equal(m.state_dict()[key], state[key]), key
    # A gray image (R=G=B) gives the same first-layer response as the RGB network would.
    gray = torch.rand(1, 1, 8, 8)
    rgb = gray.expand(1, 3, 8, 8)
    torch.testing.assert_close(f[0](gray), nn.functional.conv2d(rgb, state["features.0.weight"], state["features.0.bias"], padding=1),
                               atol=1e-5, rtol=1e-5)


def test_imagenet_init_from_explicit_path(fake_torch_home, monkeypatch, tmp_path):
    _, ckpt, state = fake_torch_home
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))  # the path argument wins over the cache
    m = build_model("imagenet", ckpt)
    _check_loaded(m, state)
    with torch.no_grad():
        assert m.eval()(torch.randn(2, 1, INPUT_SIZE, INPUT_SIZE)).shape == (2, len(EMOTIONS))


def test_imagenet_init_from_torch_hub_cache(fake_torch_home, monkeypatch):
    home, ckpt, state = fake_torch_home
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert imagenet_weights_path() == ckpt
    _check_loaded(build_model("imagenet"), state)


def test_imagenet_weights_unavailable_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(ImageNetWeightsUnavailable) as e:
        build_model("imagenet")
    msg = str(e.value)
    assert IMAGENET_FILENAME in msg and str(tmp_path / "empty-home") in msg
    assert "VGG19_BN_Weights.IMAGENET1K_V1" in msg and "--imagenet-weights PATH" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_imagenet_weights_path_that_does_not_exist(tmp_path, model):
    missing = tmp_path / "nope" / IMAGENET_FILENAME
    with pytest.raises(ImageNetWeightsUnavailable, match="not found") as e:
        build_model("imagenet", missing)
    assert str(missing) in str(e.value)
    with pytest.raises(ImageNetWeightsUnavailable):
        imagenet_weights_path(tmp_path)  # a directory is not a weights file
    with pytest.raises(ImageNetWeightsUnavailable):
        load_imagenet_features(model, str(missing))


# The error cases below use the shared model: they fail before anything is copied into it.


def test_imagenet_file_of_the_wrong_kind(tmp_path, model):
    no_features = tmp_path / "a.pth"
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, no_features)
    with pytest.raises(ValueError, match="no 'features"):
        load_imagenet_features(model, no_features)
    gray_first = fake_vgg19_bn_state()
    gray_first["features.0.weight"] = gray_first["features.0.weight"][:, :1]
    bad = tmp_path / "b.pth"
    torch.save(gray_first, bad)
    with pytest.raises(ValueError, match=r"expected features.0.weight of shape \(64, 3, 3, 3\)"):
        load_imagenet_features(model, bad)


def test_imagenet_file_is_not_unpickled(tmp_path, model):
    """The ImageNet file is loaded with weights_only=True: a pickle with code is refused."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.mkdir, (str(marker),))

    evil = tmp_path / IMAGENET_FILENAME
    evil.write_bytes(pickle.dumps({"features.0.weight": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        load_imagenet_features(model, evil)
    assert not marker.exists()
    pickle.loads(evil.read_bytes())  # control: a plain unpickle does run the payload
    assert marker.is_dir()
