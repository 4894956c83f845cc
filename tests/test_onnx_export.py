"""train.onnx_export: the release as ONNX gives the PyTorch model's answers (needs the onnx extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import IN_CI, ROOT

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from train.__main__ import main  # noqa: E402
from train.onnx_export import MAX_PROB_DIFF, MIN_AGREEMENT, check_onnx, onnx_probabilities  # noqa: E402

PUBLIC_TEST = ROOT.parent / "shared" / "data" / "fer2013" / "test"

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
