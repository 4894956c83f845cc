"""Model files (fer_demo.weights): fp16 safetensors + JSON card round trip; everything else refused."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fer_demo.model import EMOTIONS, FACE_SIZE, INPUT_SIZE, FERNet, build_model
from fer_demo.transforms import eval_transform
from fer_demo.weights import ModelCard, ModelFileError, card_path, load_model, save_model


@pytest.fixture(scope="module")
def model() -> FERNet:
    """A model with non-trivial BatchNorm statistics and head, in eval mode."""
    torch.manual_seed(0)
    m = build_model()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn(mod.num_features, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.num_features, generator=g))
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.num_features, generator=g))
                mod.bias.copy_(0.1 * torch.randn(mod.num_features, generator=g))
                mod.num_batches_tracked.fill_(123)
        m.classifier[-1].weight.normal_(0, 0.5, generator=g)
    return m.eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "fer.safetensors"
    out = save_model(model, path, ModelCard.current(note="test", metrics={"accuracy": 0.5}))
    assert out == path
    return path


@pytest.fixture
def faces() -> torch.Tensor:
    return torch.randint(0, 256, (5, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def test_save_writes_fp16_safetensors_and_card(saved, model):
    assert saved.is_file() and card_path(saved).is_file()
    assert not list(saved.parent.glob("*.tmp"))
    with safe_open(str(saved), "pt") as f:
        keys = set(f.keys())
        assert keys == set(model.state_dict())
        assert f.get_tensor("features.0.weight").dtype == torch.float16
        assert f.get_tensor("features.1.num_batches_tracked").dtype == torch.int64  # counters stay int
    card = json.loads(card_path(saved).read_text())
    assert card["classes"] == list(EMOTIONS) and card["input_size"] == INPUT_SIZE and card["face_size"] == FACE_SIZE
    assert card["architecture"] == "vgg19_bn" and card["note"] == "test" and card["metrics"] == {"accuracy": 0.5}


def test_round_trip_is_bit_identical_after_fp16_cast(saved, model):
    loaded, card = load_model(saved)
    assert not loaded.training
    assert card.classes == EMOTIONS and card.extra == {"note": "test", "metrics": {"accuracy": 0.5}}
    orig, back = model.state_dict(), loaded.state_dict()
    assert set(orig) == set(back)
    for k, v in orig.items():
        if v.is_floating_point():
            assert back[k].dtype == torch.float32, k
            assert torch.equal(back[k].half(), v.half()), k  # the fp16 bits
            assert torch.equal(back[k], v.half().float()), k
        else:
            assert torch.equal(back[k], v), k


def test_round_trip_predictions_equal_fp16_cast_model(saved, model, faces):
    loaded, _ = load_model(saved)
    ref = FERNet()
    ref.load_state_dict({k: (v.half().float() if v.is_floating_point() else v) for k, v in model.state_dict().items()})
    ref.eval()
    x = eval_transform(faces)
    with torch.no_grad():
        assert torch.equal(loaded(x), ref(x))
        # and fp16 storage barely moves the logits of the float32 original
        torch.testing.assert_close(loaded(x), model(x), atol=0.05, rtol=0.05)


def test_save_float32_is_exact(model, tmp_path, faces):
    path = save_model(model, tmp_path / "f32.safetensors", ModelCard.current(), dtype=torch.float32)
    loaded, _ = load_model(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def _copy(saved, dest_dir, name="m.safetensors"):
    dest = dest_dir / name
    dest.write_bytes(saved.read_bytes())
    card_path(dest).write_text(card_path(saved).read_text())
    return dest


def test_missing_card(saved, tmp_path):
    w = _copy(saved, tmp_path)
    card_path(w).unlink()
    with pytest.raises(ModelFileError, match=r"model card m.json not found"):
        load_model(w)


def test_missing_weights_file(tmp_path):
    with pytest.raises(ModelFileError, match="weights file not found"):
        load_model(tmp_path / "nothing.safetensors")


def test_malformed_cards(saved, tmp_path):
    w = _copy(saved, tmp_path)
    card_path(w).write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(w)
    card = json.loads(card_path(saved).read_text())
    del card["normalization"]
    card_path(w).write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="missing or has a malformed field"):
        load_model(w)


@pytest.mark.parametrize("field, value, name", [
    ("classes", list(reversed(EMOTIONS)), "classes"),
    ("classes", list(EMOTIONS) + ["contempt"], "classes"),
    ("input_size", 48, "input_size"),
    ("face_size", 64, "face_size"),
    ("normalization", {"mean": 0.5, "std": 0.5}, "mean"),
    ("architecture", "resnet18", "architecture"),
])
def test_incompatible_card(saved, tmp_path, field, value, name):
    w = _copy(saved, tmp_path)
    card = json.loads(card_path(w).read_text())
    card[field] = value
    card_path(w).write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match=rf"model card {name}=.* but this code expects"):
        load_model(w)


def _malicious_pickle(marker) -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    return pickle.dumps({"features.0.weight": Evil()}, protocol=2)


@pytest.mark.parametrize("name", ["model.pt", "model.pkl", "model.pth", "model.bin", "model.safetensors"])
def test_pickle_files_are_refused_and_never_unpickled(saved, tmp_path, name):
    marker = tmp_path / "pwned"
    payload = _malicious_pickle(marker)
    path = tmp_path / name
    path.write_bytes(payload)
    card_path(path).write_text(card_path(saved).read_text())  # a valid card beside it
    with pytest.raises(ModelFileError, match=r"pickle files are not loaded|not a readable safetensors file"):
        load_model(path)
    assert not marker.exists()
    # Control: the file really is malicious; unpickling it runs its payload.
    pickle.loads(path.read_bytes())
    assert marker.is_dir()


def test_real_torch_checkpoint_is_refused(model, tmp_path):
    pt = tmp_path / "model.pt"
    torch.save(model.state_dict(), pt)
    card_path(pt).write_text(json.dumps(ModelCard.current().to_dict()))
    with pytest.raises(ModelFileError, match=r"must be a .safetensors file"):
        load_model(pt)


def test_tensors_that_do_not_match(model, tmp_path):
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    card = json.dumps(ModelCard.current().to_dict())

    missing = dict(state)
    del missing["classifier.2.weight"]
    w = tmp_path / "missing.safetensors"
    save_file(missing, str(w))
    card_path(w).write_text(card)
    with pytest.raises(ModelFileError, match=r"tensors do not match.*classifier.2.weight"):
        load_model(w)

    extra = dict(state, **{"head.weight": torch.zeros(2)})
    w = tmp_path / "extra.safetensors"
    save_file(extra, str(w))
    card_path(w).write_text(card)
    with pytest.raises(ModelFileError, match=r"tensors do not match.*head.weight"):
        load_model(w)

    wrong_shape = dict(state, **{"classifier.2.weight": torch.zeros(8, 512, dtype=torch.float16)})
    w = tmp_path / "shape.safetensors"
    save_file(wrong_shape, str(w))
    card_path(w).write_text(card)
    with pytest.raises(ModelFileError, match=r"(?s)tensors do not match.*size mismatch for classifier.2.weight"):
        load_model(w)


def test_truncated_safetensors(saved, tmp_path):
    w = _copy(saved, tmp_path)
    w.write_bytes(saved.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        load_model(w)
