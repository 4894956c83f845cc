"""Metrics and plots (train.metrics) on a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fer_demo.model import EMOTIONS
from train.metrics import classification_metrics, confusion_matrix, history_figure, plot_confusion, plot_history

# 7 images of classes 0-2; one image of class 2 is predicted as class 3 (which has no support).
Y_TRUE = [0, 0, 1, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 0, 2, 3]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    expected = np.zeros((7, 7), dtype=np.int64)
    expected[0, 0], expected[0, 1] = 1, 1
    expected[1, 0], expected[1, 1] = 1, 2
    expected[2, 2], expected[2, 3] = 1, 1
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    assert confusion_matrix([], []).sum() == 0
    assert confusion_matrix([1, 0], [0, 1], num_classes=2).tolist() == [[0, 1], [1, 0]]


def test_classification_metrics_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED, split="test", source="toy")
    assert m["split"] == "test" and m["source"] == "toy" and m["num_images"] == 7
    assert m["classes"] == list(EMOTIONS)
    assert m["accuracy"] == pytest.approx(4 / 7)
    pc = m["per_class"]
    # angry: tp 1, predicted 2, support 2
    assert pc["angry"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    # disgust: tp 2, predicted 3, support 3
    assert pc["disgust"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    # fear: tp 1, predicted 1, support 2 -> F1 = 2 * 1 * 0.5 / 1.5
    assert pc["fear"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    # happy: predicted once, never right, no support -> all 0 and left out of the macro average
    assert pc["happy"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    for name in ("sad", "surprise", "neutral"):
        assert pc[name] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert m["confusion_matrix"] == confusion_matrix(Y_TRUE, Y_PRED).tolist()
    assert isinstance(m["confusion_matrix"][0][0], int)  # JSON-ready


def test_classification_metrics_perfect_and_empty():
    perfect = classification_metrics(list(range(7)) * 2, list(range(7)) * 2)
    assert perfect["accuracy"] == 1.0 and perfect["macro_f1"] == 1.0
    empty = classification_metrics([], [])
    assert empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0 and empty["num_images"] == 0


def _assert_png(path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200


def test_plot_confusion_writes_png(tmp_path):
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    out = plot_confusion(cm.tolist(), tmp_path / "confusion.png", title="toy")
    assert out == tmp_path / "confusion.png"
    _assert_png(out)
    _assert_png(plot_confusion(np.zeros((7, 7), dtype=int), tmp_path / "zeros.png"))  # no data at all


def test_plot_history_writes_png(tmp_path):
    rows = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.2 * e, "val_loss": 2.1 / e, "val_acc": 0.18 * e}
            for e in (1, 2, 3)]
    out = plot_history(rows, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    _assert_png(out)


def test_history_plot_has_whole_epoch_ticks():
    import matplotlib.pyplot as plt

    rows = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5} for e in (1, 2, 3)]
    fig = history_figure(rows)
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks  # no "1.5" epochs
    plt.close(fig)
