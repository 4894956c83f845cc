"""The release as ONNX, for other runtimes (onnxruntime, OpenVINO, a browser), checked against PyTorch.

    pip install -r requirements-onnx.txt -c requirements.lock
    python -m train export-onnx --weights weights/fer_vgg19.safetensors --out fer_vgg19.onnx \\
        --data ../shared/data/fer2013

The graph is the fp32 ``FERNet`` (BatchNorm folded by the exporter): input ``faces``, float32
(N, 1, 40, 40), the centre 40x40 of the 48x48 face after ``fer_demo.transforms.eval_transform``
(histogram equalisation, then (x/255 - mean) / std); output ``logits`` (N, 7). Probabilities are
softmax(logits / T) with the card's temperature. All of that is written into the file's metadata
(``classes``, ``mean``, ``std``, ``input_size``, ``face_size``, ``temperature``,
``preprocessing``), so the file describes itself.

The check runs the ONNX file in onnxruntime and the release in PyTorch (fp32 reference) on
PublicTest: top-1 agreement >= 99.5% and probabilities within 0.02 (issue 21's contract), or the
command fails. Needs the optional ``onnx`` and ``onnxruntime`` packages (requirements-onnx.txt).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from fer_demo.classify import card_temperatures
from fer_demo.model import FACE_SIZE, INPUT_SIZE
from fer_demo.transforms import eval_transform
from fer_demo.weights import load_model

OPSET = 17
MIN_AGREEMENT = 0.995
MAX_PROB_DIFF = 0.02


class OnnxUnavailable(ImportError):
    """The optional onnx / onnxruntime packages are not installed."""


@dataclass(frozen=True)
class OnnxCheck:
    faces: int
    agreement: float  # top-1 agreement with the PyTorch fp32 reference
    max_prob_diff: float  # largest |p_onnx - p_torch| over faces and classes

    @property
    def passed(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and self.max_prob_diff <= MAX_PROB_DIFF


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise OnnxUnavailable(f"ONNX export needs the optional packages onnx and onnxruntime ({e.name} is missing): "
                              "pip install -r requirements-onnx.txt -c requirements.lock") from None


def export_onnx(weights: str | Path, out: str | Path) -> Path:
    """Write the release ``weights`` (.safetensors + card) as an fp32 ONNX file ``out`` (dynamic batch)."""
    _require_onnx()
    import onnx

    model, card = load_model(weights)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)
    torch.onnx.export(model, (example,), str(out), input_names=["faces"], output_names=["logits"],
                      dynamic_axes={"faces": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                      dynamo=False)
    proto = onnx.load(str(out))
    meta = {
        "classes": json.dumps(list(card.classes)),
        "mean": str(card.mean),
        "std": str(card.std),
        "face_size": str(card.face_size),
        "input_size": str(card.input_size),
        "temperature": str(card_temperatures(card.extra).get("none", 1.0)),
        "preprocessing": (f"uint8 {FACE_SIZE}x{FACE_SIZE} grayscale face, histogram-equalised, centre "
                          f"{INPUT_SIZE}x{INPUT_SIZE} crop, (x / 255 - mean) / std; "
                          "probabilities = softmax(logits / temperature)"),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return out


def onnx_probabilities(onnx_path: str | Path, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """Probabilities of uint8 (N, 48, 48) faces from the ONNX file in onnxruntime, float32 (N, C)."""
    _require_onnx()
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    temperature = float(meta.get("temperature", 1.0))
    out = []
    for i in range(0, len(faces), batch):
        x = eval_transform(torch.from_numpy(np.ascontiguousarray(faces[i:i + batch]))).numpy()
        logits = session.run(["logits"], {"faces": x})[0]
        out.append(torch.softmax(torch.from_numpy(logits) / temperature, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 7), np.float32)


def check_onnx(onnx_path: str | Path, weights: str | Path, faces: np.ndarray) -> OnnxCheck:
    """Compare the ONNX file with the PyTorch fp32 release on ``faces`` (uint8 (N, 48, 48))."""
    from fer_demo.classify import EmotionClassifier

    reference = EmotionClassifier(weights, precision="reference")
    ref = np.concatenate([reference.predict(faces[i:i + 256]) for i in range(0, len(faces), 256)])
    got = onnx_probabilities(onnx_path, faces)
    return OnnxCheck(faces=len(faces), agreement=float((ref.argmax(1) == got.argmax(1)).mean()),
                     max_prob_diff=float(np.abs(ref - got).max()))


def cmd_export_onnx(weights: str | Path, out: str | Path, data: str | Path | None) -> OnnxCheck | None:
    """``python -m train export-onnx``: export, then check on ``data``'s PublicTest (unless None)."""
    path = export_onnx(weights, out)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB, fp32, opset {OPSET})")
    if data is None:
        return None
    from train.data import load_split

    split = load_split(data, "test", progress=False)
    check = check_onnx(path, weights, split.images.numpy())
    print(json.dumps({**asdict(check), "passed": check.passed}))
    return check
