"""Emotion classification of aligned 48x48 faces with the released VGG19-BN.

Preprocessing is ``fer_demo.transforms`` (the one path shared with training); this module
only batches, runs the network and turns logits into probabilities: the mean over test-time
views of softmax(logits / T), with the temperature T the export fitted for that TTA mode
(``fer_demo.calibration``; T = 1 for a card without calibration).

The network runs as ``fer_demo.fastnet.FastNet`` (BatchNorm folded, channels-last, bf16 where the
CPU has it natively), chosen once at load time by ``precision``; ``precision="reference"`` runs the
fp32 ``FERNet`` as trained, the path the fast one is tested against.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import torch

from fer_demo.fastnet import PRECISIONS, FastNet
from fer_demo.model import FACE_SIZE
from fer_demo.transforms import tta_views
from fer_demo.weights import load_model

# The release: weights/fer_vgg19.safetensors with its card weights/fer_vgg19.json.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "fer_vgg19.safetensors"
# Test-time augmentation modes of ``fer_demo.transforms.tta_views`` (views per face).
TTA_MODES = {"none": 1, "flip": 2, "tencrop": 10}


def check_faces(faces: np.ndarray) -> np.ndarray:
    """Validate a batch of aligned faces: uint8 (N, 48, 48). Returns it (contiguous)."""
    if not isinstance(faces, np.ndarray):
        raise TypeError(f"faces must be a numpy uint8 array (N, {FACE_SIZE}, {FACE_SIZE}), not {type(faces).__name__}")
    if faces.dtype != np.uint8:
        raise TypeError(f"faces must be uint8 (N, {FACE_SIZE}, {FACE_SIZE}), got dtype {faces.dtype}")
    if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"faces must have shape (N, {FACE_SIZE}, {FACE_SIZE}), got {faces.shape}")
    return np.ascontiguousarray(faces)


def check_tta(tta: str) -> str:
    if tta not in TTA_MODES:
        raise ValueError(f"Invalid TTA mode {tta!r}. Only {', '.join(map(repr, TTA_MODES))} are supported.")
    return tta


def card_temperatures(extra: dict) -> dict[str, float]:
    """TTA mode -> temperature from a card's ``calibration`` section ({} when it has none)."""
    temps = (extra.get("calibration") or {}).get("temperature") or {}
    out = {}
    for mode, t in temps.items():
        if mode in TTA_MODES and isinstance(t, (int, float)) and t > 0:
            out[mode] = float(t)
    return out


class EmotionClassifier:
    """The released classifier and its model card.

    Args:
        weights_path: a ``.safetensors`` file with its ``.json`` card next to it.
        device: torch device.
        precision: how the network runs: ``"auto"`` (default: ``FastNet`` in bf16 on a CPU with
            native bf16, else fp32), ``"fp32"``, ``"bf16"`` (``FastNet``), or ``"reference"`` (the
            fp32 ``FERNet`` as trained, slower).

    Attributes:
        model: the reference ``FERNet`` in eval mode (shared with ``fer_demo.explain.Explainer``).
        fast: the ``FastNet`` that ``predict`` runs (pass it to ``Explainer(..., fast=...)``), or
            None with ``precision="reference"``. Its passes run on ``fast.threads`` CPU threads
            (``limits.ANALYSIS_THREADS``), set for the calling thread only.
        card: its ``ModelCard``; ``classes`` are the emotion names in output order.
        lock: held while ``model`` runs. An ``Explainer`` on the same model must share it
            (``Explainer(model, layer, lock=classifier.lock)``): while a CAM is computed the
            model carries hooks that would capture, and break, a concurrent forward pass.

    Raises:
        fer_demo.weights.ModelFileError: the weights or card are missing or do not match.
    """

    def __init__(self, weights_path: str | Path = DEFAULT_WEIGHTS, device: str | torch.device = "cpu",
                 precision: str = "auto") -> None:
        if precision != "reference" and precision not in PRECISIONS:
            raise ValueError(f"Invalid precision {precision!r}. Only {', '.join(map(repr, PRECISIONS))} "
                             "or 'reference' are supported.")
        self.weights_path = Path(weights_path)
        self.device = torch.device(device)
        self.model, self.card = load_model(self.weights_path, self.device)
        self.fast = None if precision == "reference" else FastNet(self.model, self.card.cam_target_layer, precision)
        self.precision = "reference" if self.fast is None else self.fast.precision
        self.lock = threading.Lock()
        self.temperatures = card_temperatures(self.card.extra)

    def temperature(self, tta: str = "none") -> float:
        """The calibration temperature applied to the logits for ``tta`` (1.0 when uncalibrated)."""
        return self.temperatures.get(check_tta(tta), 1.0)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    def predict(self, faces: np.ndarray, tta: str = "none") -> np.ndarray:
        """Class probabilities of aligned faces.

        Args:
            faces: uint8 (N, 48, 48) grayscale faces (``AlignedFace.gray``), N >= 0.
            tta: ``"none"`` (centre crop), ``"flip"`` (+ mirror: 2 views) or ``"tencrop"``
                (corners + centre, each mirrored: 10 views); probabilities are averaged over
                views. Calibrated: each view's logits are divided by ``temperature(tta)``.

        Returns:
            float32 (N, 7): each row sums to 1, columns in ``self.classes`` order. (0, 7) for N=0.
        """
        faces = check_faces(faces)
        check_tta(tta)
        n, k = faces.shape[0], len(self.classes)
        if n == 0:
            return np.zeros((0, k), dtype=np.float32)
        threads = contextlib.nullcontext() if self.fast is None else self.fast.threads_scope()
        with self.lock, threads, torch.inference_mode():
            views = tta_views(torch.from_numpy(faces), tta)  # (V, N, 1, 40, 40)
            v = views.shape[0]
            net = self.model if self.fast is None else self.fast
            logits = net(views.reshape(v * n, *views.shape[2:]).to(self.device))
            probs = torch.softmax(logits.float() / self.temperature(tta), dim=1).reshape(v, n, k).mean(dim=0)
        out = probs.cpu().numpy().astype(np.float32)
        return out / out.sum(axis=1, keepdims=True)  # exact float32 sums after the mean
