"""Model files: weights as safetensors plus a JSON model card. No pickle anywhere here.

A release is two files side by side: ``<name>.safetensors`` and ``<name>.json`` (the card:
classes, input size, normalisation, architecture, Grad-CAM target layer, training config,
data fingerprint, metrics, code version).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fer_demo import model as M

CARD_FORMAT = 1


class ModelFileError(ValueError):
    """A weights file or its card is missing, unreadable or does not match this code."""


@dataclass(frozen=True)
class ModelCard:
    classes: tuple[str, ...]
    face_size: int
    input_size: int
    mean: float
    std: float
    architecture: str
    cam_target_layer: str
    extra: dict[str, Any]  # training config, data fingerprint, metrics, code version, ...

    @classmethod
    def current(cls, **extra: Any) -> "ModelCard":
        return cls(M.EMOTIONS, M.FACE_SIZE, M.INPUT_SIZE, M.MEAN, M.STD, M.ARCHITECTURE, M.CAM_TARGET_LAYER, extra)

    def to_dict(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT, "classes": list(self.classes), "face_size": self.face_size,
                "input_size": self.input_size, "normalization": {"mean": self.mean, "std": self.std},
                "architecture": self.architecture, "cam_target_layer": self.cam_target_layer, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        try:
            known = {"format", "classes", "face_size", "input_size", "normalization", "architecture", "cam_target_layer"}
            return cls(tuple(d["classes"]), int(d["face_size"]), int(d["input_size"]), float(d["normalization"]["mean"]),
                       float(d["normalization"]["std"]), str(d["architecture"]), str(d["cam_target_layer"]),
                       {k: v for k, v in d.items() if k not in known})
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"model card is missing or has a malformed field: {e}") from None

    def check_compatible(self) -> None:
        """Serving uses this package's preprocessing: the card must describe the same model."""
        ours = ModelCard.current()
        for name in ("classes", "face_size", "input_size", "mean", "std", "architecture"):
            if getattr(self, name) != getattr(ours, name):
                raise ModelFileError(f"model card {name}={getattr(self, name)!r} but this code expects "
                                     f"{getattr(ours, name)!r}")


def card_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def atomic_write(path: Path, writer) -> None:
    """``writer(tmp)`` writes a temporary file beside ``path``, which then replaces ``path`` in one
    step: a reader (or a crash) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    writer(tmp)
    os.replace(tmp, path)


def save_model(model: torch.nn.Module, path: str | Path, card: ModelCard, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``path`` (.safetensors, tensors cast to ``dtype``; BN counters kept int) and its card."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    write_card(path, card)
    return path


def write_card(weights: str | Path, card: ModelCard) -> Path:
    """Write only the card beside ``weights`` (atomically); the weights file is left as it is."""
    out = card_path(weights)
    atomic_write(out, lambda p: p.write_text(json.dumps(card.to_dict(), indent=2) + "\n"))
    return out


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[M.FERNet, ModelCard]:
    """Load a ``.safetensors`` file and its ``.json`` card into an eval-mode float32 model."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelFileError(f"{path}: weights must be a .safetensors file (pickle files are not loaded)")
    if not path.is_file():
        raise ModelFileError(f"{path}: weights file not found")
    cpath = card_path(path)
    if not cpath.is_file():
        raise ModelFileError(f"{path}: model card {cpath.name} not found next to the weights")
    try:
        card = ModelCard.from_dict(json.loads(cpath.read_text()))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{cpath}: not valid JSON ({e})") from None
    card.check_compatible()
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError for malformed files
        raise ModelFileError(f"{path}: not a readable safetensors file ({e})") from None
    net = M.FERNet(num_classes=len(card.classes))
    ref = net.state_dict()
    missing = sorted(set(ref) - set(state))
    unexpected = sorted(set(state) - set(ref))
    if missing or unexpected:
        raise ModelFileError(f"{path}: tensors do not match the {card.architecture} model "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    try:
        net.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()})
    except RuntimeError as e:  # same names, other shapes (e.g. a head for another number of classes)
        raise ModelFileError(f"{path}: tensors do not match the {card.architecture} model ({e})") from None
    return net.to(device).eval(), card
