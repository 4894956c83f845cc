"""train.onnx_export: the release as ONNX gives the PyTorch model's answers (needs the onnx extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import IN_CI, ROOT

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from train.__main__ import main  # noqa: E402
from train import onnx_export  # noqa: E402
from train.onnx_export import (INT8_FLOAT_CONVS, MAX_PROB_DIFF, MIN_AGREEMENT, calibration_sample,  # noqa: E402
                               check_onnx, export_onnx, int8_path, onnx_probabilities, write_int8)

FER2013 = ROOT.parent / "shared" / "data" / "fer2013"
PUBLIC_TEST = FER2013 / "test"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported(release_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "fer.onnx"
    assert main(["export-onnx", "--weights", str(release_weights), "--out", str(out)]) == 0
    return out


def test_file_describes_itself(exported, release_weights):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    card = json.loads(release_weights.with_suffix(".json").read_text())
    assert json.loads(meta["classes"]) == card["classes"]
    assert float(meta["mean"]) == card["normalization"]["mean"] and float(meta["std"]) == card["normalization"]["std"]
    assert float(meta["temperature"]) == card["calibration"]["temperature"]["none"]
    assert [i.name for i in model.graph.input] == ["faces"] and [o.name for o in model.graph.output] == ["logits"]


def test_dynamic_batch_and_probabilities(exported):
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = onnx_probabilities(exported, faces, batch=3)  # batches of 3 and 2 through one session
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_same_answers_as_pytorch_on_public_test(exported, release_weights):
    if not PUBLIC_TEST.is_dir():
        if IN_CI:
            pytest.fail(f"PublicTest faces missing: {PUBLIC_TEST}")
        pytest.skip(f"PublicTest faces not on this machine ({PUBLIC_TEST})")
    from PIL import Image

    files = sorted(PUBLIC_TEST.glob("*/*.jpg"))
    faces = np.stack([np.asarray(Image.open(f).convert("L")) for f in files[:: len(files) // 300][:300]])
    check = check_onnx(exported, release_weights, faces)
    assert check.faces == 300
    assert check.agreement >= MIN_AGREEMENT and check.max_prob_diff <= MAX_PROB_DIFF and check.passed


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    assert main(["export-onnx", "--weights", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "weights file not found" in capsys.readouterr().err


# --- int8 ---------------------------------------------------------------------------------------------

def _every(files: list, n: int) -> list:
    return files[:: max(1, len(files) // n)][:n]


@pytest.fixture(scope="module")
def small_fer(tmp_path_factory):
    """A FER2013 folder root of links: 10 Training faces per class (calibration), 300 PublicTest faces."""
    if not (FER2013 / "train").is_dir() or not PUBLIC_TEST.is_dir():
        if IN_CI:
            pytest.fail(f"FER2013 faces missing: {FER2013}")
        pytest.skip(f"FER2013 faces not on this machine ({FER2013})")
    root = tmp_path_factory.mktemp("fer2013")
    for split, files in (("train", [f for d in sorted((FER2013 / "train").iterdir()) if d.is_dir()
                                    for f in _every(sorted(d.glob("*.jpg")), 10)]),
                         ("test", _every(sorted(PUBLIC_TEST.glob("*/*.jpg")), 300))):
        for f in files:
            link = root / split / f.parent.name / f.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f)
    return root


def _faces(root, split: str) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(f).convert("L")) for f in sorted((root / split).glob("*/*.jpg"))])


@pytest.fixture(scope="module")
def exported_int8(release_weights, small_fer, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx8") / "fer.onnx"
    assert main(["export-onnx", "--weights", str(release_weights), "--out", str(out), "--data", str(small_fer),
                 "--int8", "--calibration-faces", "50"]) == 0
    assert int8_path(out) == out.with_name("fer.int8.onnx") and int8_path(out).is_file()
    return int8_path(out)


def test_int8_file_is_quantized_and_describes_itself(exported_int8, release_weights):
    model = onnx.load(str(exported_int8))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") >= 10
    int8_weights = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 16
    # Blocks 4-5 read int8 weights through a DequantizeLinear; blocks 1-3 keep float weights.
    quantized = [producers.get(c.input[1]) is not None and producers[c.input[1]].op_type == "DequantizeLinear"
                 and producers[c.input[1]].input[0] in int8_weights for c in convs]
    assert quantized == [False] * INT8_FLOAT_CONVS + [True] * (16 - INT8_FLOAT_CONVS)
    meta = {p.key: p.value for p in model.metadata_props}
    card = json.loads(release_weights.with_suffix(".json").read_text())
    assert json.loads(meta["classes"]) == card["classes"]
    assert float(meta["temperature"]) == card["calibration"]["temperature"]["none"]
    assert float(meta["mean"]) == card["normalization"]["mean"] and float(meta["std"]) == card["normalization"]["std"]
    quant = json.loads(meta["quantization"])
    assert quant["format"] == "QDQ" and quant["calibration_faces"].startswith("50 FER2013 Training")
    assert [i.name for i in model.graph.input] == ["faces"] and [o.name for o in model.graph.output] == ["logits"]
    assert exported_int8.stat().st_size < 0.5 * exported_int8.with_name("fer.onnx").stat().st_size


def test_int8_gives_pytorch_answers_on_public_test_subset(exported_int8, release_weights, small_fer):
    faces = _faces(small_fer, "test")
    check = check_onnx(exported_int8, release_weights, faces)
    assert check.faces == 300 and check.passed
    assert check.agreement >= MIN_AGREEMENT and check.max_prob_diff <= MAX_PROB_DIFF
    probs = onnx_probabilities(exported_int8, faces[:5], batch=2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_int8_check_rejects_a_perturbed_model_and_keeps_no_file(release_weights, small_fer, tmp_path):
    import torch

    from fer_demo.weights import load_model, save_model

    model, card = load_model(release_weights)
    with torch.no_grad():  # a broken export: the classifier's weights perturbed by 30% of their spread
        w = model.classifier[2].weight
        w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * 0.3 * w.std())
    broken = export_onnx(save_model(model, tmp_path / "broken.safetensors", card), tmp_path / "broken.onnx")
    out = tmp_path / "fer.int8.onnx"
    out.write_bytes(b"stale")  # a file from an earlier run must not survive a failed check
    check = write_int8(broken, out, calibration_sample(_faces(small_fer, "train"), 50), release_weights,
                       _faces(small_fer, "test"))
    assert not check.passed and check.faces == 300
    assert check.max_prob_diff > MAX_PROB_DIFF
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json", "broken.onnx", "broken.safetensors"]


def test_int8_command_fails_loudly_when_a_floor_is_missed(release_weights, small_fer, tmp_path, monkeypatch, capsys):
    # Every node in int8 (nothing kept float) misses the probability floor on PublicTest (module docstring).
    monkeypatch.setattr(onnx_export, "INT8_FLOAT_CONVS", 0)
    monkeypatch.setattr(onnx_export, "INT8_FLOAT_OPS", ())
    out = tmp_path / "fer.onnx"
    assert main(["export-onnx", "--weights", str(release_weights), "--out", str(out), "--data", str(small_fer),
                 "--int8", "--calibration-faces", "50"]) == 1
    err = capsys.readouterr().err
    assert "int8 model misses the floors" in err and "max probability difference" in err
    assert not int8_path(out).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["fer.onnx"]


def test_int8_needs_data(release_weights, tmp_path, capsys):
    assert main(["export-onnx", "--weights", str(release_weights), "--out", str(tmp_path / "x.onnx"), "--int8"]) == 2
    assert "--int8 needs --data" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_calibration_sample_is_seeded_whole_batches():
    faces = np.arange(400 * 48 * 48, dtype=np.int64).reshape(400, 48, 48).astype(np.uint8)
    a, b = calibration_sample(faces, 120), calibration_sample(faces, 120)
    assert a.shape == (100, 48, 48) and np.array_equal(a, b)  # 120 -> two batches of 50
    assert calibration_sample(faces, 30).shape == (30, 48, 48)
    with pytest.raises(ValueError, match="no Training faces"):
        calibration_sample(faces[:0])
