"""The monitoring reference shipped with the weights: the model's answers and the crop statistics
on the evaluation split (PublicTest), in the columns ``fer_demo.monitor`` logs for served faces.

``python -m train export`` writes it as ``reference.csv.gz`` beside the release;
``python -m train reference --weights ... --data ...`` writes it for an existing release.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from fer_demo.classify import card_temperatures
from fer_demo.model import EMOTIONS
from fer_demo.monitor import REFERENCE_COLUMNS, REFERENCE_NAME, seen_stats
from fer_demo.weights import load_model
from train.data import load_split
from train.engine import predict_logits


def reference_frame(model: torch.nn.Module, images: torch.Tensor, temperature: float = 1.0) -> pd.DataFrame:
    """One row per face: predicted label, calibrated confidence and probabilities, and the brightness
    and contrast of what the network sees (``monitor.seen_stats``, as for served faces)."""
    probs = torch.softmax(predict_logits(model, images).float() / temperature, dim=1).numpy()
    stats = seen_stats(images.numpy())
    frame = pd.DataFrame({"label": [EMOTIONS[i] for i in probs.argmax(1)], "confidence": probs.max(1),
                          "brightness": stats[:, 0], "contrast": stats[:, 1],
                          **{f"p_{e}": probs[:, i] for i, e in enumerate(EMOTIONS)}})
    return frame[REFERENCE_COLUMNS].round(5)


def write_reference(weights: str | Path, data_root: str | Path, progress: bool = False) -> Path:
    """``reference.csv.gz`` beside ``weights``, from ``data_root``'s evaluation split."""
    weights = Path(weights)
    model, card = load_model(weights)
    data = load_split(data_root, "test", progress=progress)
    frame = reference_frame(model, data.images, card_temperatures(card.extra).get("none", 1.0))
    out = weights.parent / REFERENCE_NAME
    frame.to_csv(out, index=False, compression={"method": "gzip", "mtime": 0})  # the same bytes for the same data
    return out
