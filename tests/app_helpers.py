"""Helpers for the app tests: a generated release folder, an in-process server, a fake webcam.

The generated release holds the shipped weights file and card plus a ``metrics.json`` made by
``train.metrics.classification_metrics`` (the function training uses), so the model page is
tested on the real file format without waiting for a training run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from fer_demo.model import EMOTIONS
from fer_demo.weights import card_path
from train.config import TrainConfig
from train.metrics import classification_metrics, plot_confusion, plot_history, plot_reliability

# A FER2013 PublicTest-sized evaluation: per-class support of the real split.
SUPPORT = (467, 56, 496, 895, 653, 415, 607)


def fake_metrics(seed: int = 0, accuracy: float = 0.66) -> dict:
    """metrics.json content as ``python -m train export`` writes it, from synthetic predictions."""
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(len(EMOTIONS)), SUPPORT)
    y_pred = np.where(rng.random(len(y_true)) < accuracy, y_true, rng.integers(0, len(EMOTIONS), len(y_true)))
    metrics = classification_metrics(y_true.tolist(), y_pred.tolist(), split="test", source="fer2013/test")
    metrics.update(tta="none", epoch=3, data="../shared/data/fer2013", weights_dtype="float16",
                   accuracy_tta_flip=round(metrics["accuracy"] + 0.01, 4))
    return metrics


def fake_calibration(seed: int = 0) -> dict:
    """A card's ``calibration`` section as ``train.calibrate`` writes it, from a toy over-confident model."""
    import torch

    from fer_demo.calibration import close_call_stats, fit_temperature, view_probabilities
    from train.calibrate import _bins, two_fold_ece
    from train.engine import view_logits_metrics

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(sum(SUPPORT), len(EMOTIONS), generator=g) * 2
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    z = z * 2.0  # twice as sharp as the truth: over-confident, T comes out ~2
    t = fit_temperature(z, labels)
    m = view_logits_metrics(z.unsqueeze(0), labels, "test", "toy", "none", t)["calibration"]
    return {"method": "temperature scaling", "fitted_on": "test", "num_images": len(labels), "ece_bins": 15,
            "temperature": {"none": t, "flip": t, "tencrop": t},
            "modes": {mode: {"before": m["before"], "after": m["after"]} for mode in ("none", "flip", "tencrop")},
            "reliability": {"before": _bins(view_probabilities(z), labels), "after": _bins(view_probabilities(z, t), labels)},
            "cross_validated": two_fold_ece(z.unsqueeze(0), labels),
            "close_call": close_call_stats(view_probabilities(z, t), labels).to_dict()}


def fake_faithfulness() -> dict:
    """faithfulness.json as ``train.faithfulness.report`` writes it, with made-up numbers."""
    from train.faithfulness import (FLOOR_RATIO, SANITY_MAX_RHO, MethodFaithfulness, best_method, markdown_table,
                                    passes_sanity_check)

    def row(method: str, cam20: float, rho: float) -> MethodFaithfulness:
        return MethodFaithfulness(method, {"10%": cam20 / 2, "20%": cam20, "40%": cam20 * 2},
                                  {"10%": 0.01, "20%": 0.03, "40%": 0.06}, {"10%": 0.02, "20%": 0.05, "40%": 0.1},
                                  cam20 / 0.03, cam20 / 0.05, rho, 0, 0.02)

    results = [row("gradcam", 0.12, 0.02), row("gradcam++", 0.15, 0.8), row("hirescam", 0.10, 0.3)]
    return {"num_faces": 300, "seed": 0, "split": "test", "temperature": 1.0, "fractions": [0.1, 0.2, 0.4],
            "floor_ratio": FLOOR_RATIO, "sanity_max_rho": SANITY_MAX_RHO, "best": best_method(results),
            "methods": [{**r.to_dict(), "passes_sanity_check": passes_sanity_check(r)} for r in results],
            "table": markdown_table(results, 300)}


def make_release(dest: Path, weights: Path, metrics: bool = True, plots: bool = True) -> Path:
    """A release folder like ``weights/``: returns the path of its ``.safetensors`` file.

    ``metrics``: also write metrics.json (and put it in the card, as export does), a calibration
    (card, reliability.png) and faithfulness.json; ``plots``: also confusion.png, history.csv
    and curves.png.
    """
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / weights.name
    shutil.copy(weights, target)
    card = json.loads(card_path(weights).read_text())
    for key in ("note", "training", "metrics", "calibration"):  # whatever the shipped card says, write our own
        card.pop(key, None)
    cfg = TrainConfig()
    card["training"] = {**cfg.to_dict(), "device": "cpu", "resolved_precision": "fp32",
                        "fingerprints": {"train": "a" * 64, "test": "b" * 64}, "train_size": 28709,
                        "eval_size": sum(SUPPORT), "class_counts": [3995, 436, 4097, 7215, 4830, 3171, 4965],
                        "class_weights": [1.0] * len(EMOTIONS), "torch": "test", "code_version": "test"}
    if metrics:
        m = fake_metrics()
        card["metrics"] = m
        (dest / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
        card["calibration"] = fake_calibration()
        (dest / "faithfulness.json").write_text(json.dumps(fake_faithfulness(), indent=2) + "\n")
        if plots:
            plot_reliability(card["calibration"], dest / "reliability.png")
        if plots:
            plot_confusion(m["confusion_matrix"], dest / "confusion.png", f"test — accuracy {m['accuracy']:.4f}")
    if plots:
        rows = [{"epoch": e, "train_loss": 1.9 - 0.2 * e, "train_acc": 0.3 + 0.1 * e, "val_loss": 1.8 - 0.15 * e,
                 "val_acc": 0.35 + 0.1 * e, "val_macro_f1": 0.3 + 0.1 * e, "images_per_s": 30.0,
                 "epoch_seconds": 900.0, "lr_end": 0.001} for e in range(1, 4)]
        with open(dest / "history.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        plot_history(rows, dest / "curves.png")
    card_path(target).write_text(json.dumps(card, indent=2) + "\n")
    return target


@contextlib.contextmanager
def serve(demo, host: str = "127.0.0.1") -> Iterator[str]:
    """Queue and launch ``demo`` in this process the way ``app.main`` does, on a free port; yields its URL.

    ``launch`` returns once the page answers (Gradio checks its own local URL) and picks the
    first free port from 7860 on.
    """
    import app

    demo.queue(**app.QUEUE)
    demo.launch(**{**app.launch_settings(), "server_name": host, "server_port": None, "quiet": True,
                   "prevent_thread_lock": True})
    try:
        yield demo.local_url
    finally:
        demo.close()


def write_y4m(photo: Path, dest: Path, width: int = 640, height: int = 480, frames: int = 15) -> Image.Image:
    """A YUV4MPEG2 (4:2:0, JPEG range) video of ``photo`` for Chromium's fake webcam.

    The photo is scaled to fit the frame and placed against its LEFT edge on a gray canvas, so a
    mirrored snapshot puts the face in the right half. Returns the (unmirrored) RGB frame.
    """
    im = Image.open(photo).convert("RGB")
    im.thumbnail((width, height))
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    canvas.paste(im, (0, (height - im.height) // 2))
    y, cb, cr = canvas.convert("YCbCr").split()
    half = (width // 2, height // 2)
    u = cb.resize(half, Image.Resampling.BILINEAR)
    v = cr.resize(half, Image.Resampling.BILINEAR)
    frame = b"FRAME\n" + y.tobytes() + u.tobytes() + v.tobytes()
    with open(dest, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        fh.write(frame * frames)
    return canvas
