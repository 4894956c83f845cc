"""Classification metrics and the plots people look at: confusion matrix, training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from fer_demo.model import EMOTIONS


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = len(EMOTIONS)) -> np.ndarray:
    """Counts (num_classes, num_classes); rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], split: str = "", source: str = "") -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    A class with no predictions (or no support) gets precision (or recall) 0.
    """
    cm = confusion_matrix(y_true, y_pred)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    total = int(cm.sum())
    return {
        "split": split,
        "source": source,
        "num_images": total,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(EMOTIONS)
        },
        "classes": list(EMOTIONS),
        "confusion_matrix": cm.tolist(),
    }


def plot_confusion(cm: Sequence[Sequence[int]], path: str | Path, title: str = "") -> Path:
    """Save the row-normalised (recall) and count confusion matrices side by side as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, data, sub, fmt in ((axes[0], norm, "row-normalised (recall)", ".2f"), (axes[1], cm, "counts", "d")):
        im = ax.imshow(data, cmap="Blues")
        ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
        ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(sub)
        hi = data.max() if data.size else 1
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                ax.text(j, i, format(data[i, j], fmt), ha="center", va="center", fontsize=8,
                        color="white" if data[i, j] > hi / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.95) if title else None)  # room for the title above the panels
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_history(rows: list[dict], path: str | Path) -> Path:
    """Loss and accuracy per epoch (train vs PublicTest) as a PNG."""
    import matplotlib.pyplot as plt

    fig = history_figure(rows)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def history_figure(rows: list[dict]):
    """The figure ``plot_history`` saves: loss and accuracy per epoch, whole-number epoch ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def col(key: str) -> list[float]:  # rows from fit (numbers) or from a history.csv (strings)
        return [float(r[key]) for r in rows]

    epochs = col("epoch")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(epochs, col("train_loss"), "o-", label="train")
    a.plot(epochs, col("val_loss"), "o-", label="eval")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(epochs, col("train_acc"), "o-", label="train (augmented)")
    b.plot(epochs, col("val_acc"), "o-", label="eval")
    ema = [(float(r["epoch"]), float(r["val_acc_ema"])) for r in rows if r.get("val_acc_ema") not in (None, "")]
    if ema:
        b.plot([e for e, _ in ema], [v for _, v in ema], "o--", label="eval, EMA weights")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.tight_layout()
    return fig


def plot_reliability(calibration: dict, path: str | Path) -> Path:
    """Reliability diagram before and after temperature scaling (``train.calibrate`` bins), with bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rel = calibration["reliability"]
    t = calibration["temperature"]["none"]
    modes = calibration["modes"]["none"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    for ax, key, title in ((axes[0], "before", "before scaling (T = 1)"), (axes[1], "after", f"after scaling (T = {t:.2f})")):
        bins = rel[key]
        centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
        width = bins[0]["hi"] - bins[0]["lo"]
        acc = [b["accuracy"] if b["count"] else 0 for b in bins]
        ax.bar(centres, acc, width=width * 0.9, color="#4c72b0", edgecolor="white", label="accuracy in bin")
        conf = [(c, b["confidence"]) for c, b in zip(centres, bins) if b["count"]]
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.plot([c for c, _ in conf], [v for _, v in conf], "o", color="#dd8452", ms=4, label="mean confidence")
        for c, b in zip(centres, bins):
            if b["count"]:
                ax.text(c, (b["accuracy"] or 0) + 0.02, str(b["count"]), ha="center", fontsize=7, rotation=90)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_title(f"{title}\nECE {modes[key]['ece']:.3f}")
    axes[0].set_ylabel("accuracy (numbers: faces per bin)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
