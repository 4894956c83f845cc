"""fer_demo.ui.model_page: the Model tab's content, read from a generated release folder (``release``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from app_helpers import fake_metrics, make_release

from fer_demo.model import EMOTIONS
from fer_demo.ui import model_page

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "fer_vgg19.safetensors"


def test_model_info_reads_every_release_file(release):
    info = model_page.ModelInfo.load(release)
    assert info.metrics == json.loads((release.parent / "metrics.json").read_text())
    assert info.card["architecture"] == "vgg19_bn" and "training" in info.card
    assert info.confusion_png == release.parent / "confusion.png"
    assert info.curves_png == release.parent / "curves.png"
    assert list(info.history["epoch"]) == [1, 2, 3]
    assert info.problems == []


def test_model_info_without_metrics_says_so(bare_release):
    info = model_page.ModelInfo.load(bare_release)
    assert info.metrics is None and info.confusion_png is None and info.history is None
    text = model_page.metrics_markdown(info)
    assert "No evaluation results" in text and "metrics.json" in text


def test_model_info_falls_back_to_the_cards_metrics(tmp_path, release):
    weights = make_release(tmp_path, WEIGHTS, plots=False)
    (tmp_path / "metrics.json").unlink()
    info = model_page.ModelInfo.load(weights)
    assert info.metrics is not None and info.metrics["accuracy"] == fake_metrics()["accuracy"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"accuracy": 0.5}'])
def test_model_info_survives_a_broken_metrics_file(tmp_path, content):
    weights = make_release(tmp_path, WEIGHTS, plots=False)
    card = json.loads(weights.with_suffix(".json").read_text())
    card.pop("metrics")
    weights.with_suffix(".json").write_text(json.dumps(card))
    (tmp_path / "metrics.json").write_text(content)
    info = model_page.ModelInfo.load(weights)
    assert info.metrics is None and info.problems
    assert "Problem:" in model_page.metrics_markdown(info)


def test_metrics_markdown_states_accuracy_f1_split_and_size(release):
    m = fake_metrics()
    text = model_page.metrics_markdown(model_page.ModelInfo.load(release))
    assert f"Accuracy {m['accuracy']:.1%}" in text and f"macro-F1 {m['macro_f1']:.3f}" in text
    assert "PublicTest" in text and f"{m['num_images']:,}" in text and "validation set" in text
    assert "fer2013/test" not in text and "shared" not in text  # no path of the training machine
    assert "**Known weaknesses**" in text and "faces are called" in text  # from the confusion matrix
    assert f"{m['accuracy_tta_flip']:.1%}" in text and "epoch 3 of" in text
    majority = max(c["support"] for c in m["per_class"].values()) / m["num_images"]
    assert f"{majority:.1%}" in text


def test_per_class_table_matches_metrics():
    m = fake_metrics()
    table = model_page.per_class_table(m)
    assert list(table.columns) == ["class", "precision", "recall", "F1", "support"]
    assert table["class"].tolist() == list(EMOTIONS)
    for _, row in table.iterrows():
        c = m["per_class"][row["class"]]
        assert row["support"] == c["support"]
        assert float(row["recall"]) == pytest.approx(c["recall"], abs=5e-4)
        assert float(row["F1"]) == pytest.approx(c["f1"], abs=5e-4)
        assert all(len(row[k].split(".")[1]) == 3 for k in ("precision", "recall", "F1"))  # "0.000", never "0"
    assert table["support"].sum() == m["num_images"]
    assert model_page.per_class_table(None).empty


def test_history_is_shown_with_readable_numbers():
    import pandas as pd

    raw = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.36110001, 0.5], "lr_end": [4.189053934176135e-08, 1e-3],
                        "epoch_seconds": [2128.123, 300.0], "hardware": ["cpu", "cpu"]})
    shown = model_page.readable_history(raw)
    assert shown["lr_end"].tolist() == ["4.19e-08", "1.00e-03"]
    assert shown["val_acc"].tolist() == ["0.3611", "0.5000"] and shown["epoch_seconds"].tolist() == [2128.1, 300.0]
    assert shown["epoch"].tolist() == [1, 2] and shown["hardware"].tolist() == ["cpu", "cpu"]


def test_confusion_figure_is_row_normalised():
    m = fake_metrics()
    fig = model_page.confusion_figure(m)
    shown = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    cm = np.asarray(m["confusion_matrix"], float)
    np.testing.assert_allclose(shown, cm / cm.sum(axis=1, keepdims=True))
    texts = [t.get_text() for t in fig.axes[0].texts]  # each cell: its share in percent
    assert texts[0] == f"{100 * cm[0, 0] / cm[0].sum():.0f}" and len(texts) == cm.size


def test_training_and_model_tables_come_from_the_card(release):
    card = json.loads(release.with_suffix(".json").read_text())
    training = model_page.training_table(card)
    assert training["setting"].tolist() == [k for k in card["training"] if k not in ("data", "out", "imagenet_weights")]
    values = dict(zip(training["setting"], training["value"]))
    assert values["epochs"] == str(card["training"]["epochs"]) and values["lr"] == f"{card['training']['lr']:g}"
    assert json.loads(values["class_counts"]) == dict(zip(EMOTIONS, card["training"]["class_counts"]))
    model = model_page.model_table(card)
    assert {"architecture", "input_size", "cam_target_layer"} <= set(model["property"])
    assert "training" not in set(model["property"]) and "metrics" not in set(model["property"])
    assert model_page.training_table(None).empty and model_page.model_table(None).empty



def test_calibration_and_faithfulness_sections(release):
    info = model_page.ModelInfo.load(release)
    assert info.reliability_png is not None and info.faithfulness is not None and info.calibration is not None
    cal = info.calibration
    text = model_page.calibration_markdown(cal)
    assert f"T = {cal['temperature']['none']:.2f}" in text
    assert f"{cal['modes']['none']['before']['ece']:.3f} before" in text and "What \"80%\" means" in text
    bin80 = next(b for b in cal["reliability"]["after"] if b["lo"] <= 0.8 < b["hi"])
    assert f"right {bin80['accuracy']:.0%} of the time on {bin80['count']}" in text
    assert "carry no calibration" in model_page.calibration_markdown(None)
    faith = model_page.faithfulness_markdown(info.faithfulness)
    assert "| gradcam |" in faith and "**gradcam** measures best" in faith  # gradcam++ scores higher but fails the check
    assert "Not measured" in model_page.faithfulness_markdown(None)


@pytest.mark.integration
def test_the_shipped_release_fills_the_model_page(release_weights):
    """weights/ as released: metrics.json, card and plots are there and in the expected format."""
    info = model_page.ModelInfo.load(release_weights)
    if info.metrics is None:
        message = f"no evaluation results next to {release_weights} (python -m train export writes them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    assert info.problems == []
    m = info.metrics
    assert f"Accuracy {m['accuracy']:.1%}" in model_page.metrics_markdown(info)
    table = model_page.per_class_table(m)
    assert table["class"].tolist() == list(EMOTIONS) and table["support"].sum() == m["num_images"]
    assert np.asarray(m["confusion_matrix"]).sum() == m["num_images"]
    assert info.confusion_png is not None
    assert not model_page.training_table(info.card).empty
    # Calibrated and measured as export/calibrate write it; the app's default CAM is the one that measured best.
    from fer_demo.ui.options import DEFAULT_CAM

    cal = info.calibration
    assert cal is not None and info.reliability_png is not None
    assert cal["modes"]["none"]["after"]["nll"] <= cal["modes"]["none"]["before"]["nll"]
    assert info.faithfulness is not None and info.faithfulness["best"] == DEFAULT_CAM
    card_text = (release_weights.parent / "MODEL_CARD.md").read_text()
    assert card_text.startswith("---\n") and "## Calibration" in card_text and "shared/" not in card_text



def _tab_components(info: model_page.ModelInfo, weights: Path) -> dict:
    import gradio as gr

    with gr.Blocks() as demo:
        model_page.build_model_tab(info, weights)
    return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_robustness_is_shown_from_its_file_and_absent_without_it(tmp_path):
    from robustness_helpers import fake_robustness

    weights = make_release(tmp_path, WEIGHTS, plots=False)
    without = model_page.ModelInfo.load(weights)
    assert without.robustness is None and without.problems == []
    parts = _tab_components(without, weights)
    assert "robustness" not in parts and "corruption-plot" not in parts
    assert "Real photos and robustness" not in parts["model-card"].value

    rob = fake_robustness()
    (tmp_path / "robustness.json").write_text(json.dumps(rob))
    info = model_page.ModelInfo.load(weights)
    assert info.robustness == rob and info.problems == []
    parts = _tab_components(info, weights)
    shown = parts["robustness"].value
    s = rob["photos"]["score"]
    assert f"{100 * s['balanced_accuracy']:.1f}%" in shown and "development set" in shown
    assert f"{100 * rob['corruptions']['mean_corruption_accuracy']:.1f}%" in shown and "FER+ majority" in shown
    assert "Film0" not in shown and "corruption-plot" in parts
    assert "## Real photos and robustness" in parts["model-card"].value


def test_a_broken_robustness_file_is_a_problem_not_a_crash(tmp_path):
    weights = make_release(tmp_path, WEIGHTS, plots=False)
    (tmp_path / "robustness.json").write_text('{"photos": {"score": {}}}')
    info = model_page.ModelInfo.load(weights)
    assert info.robustness is None and any("robustness.json" in p for p in info.problems)
    assert "robustness" not in _tab_components(info, weights)
    assert model_page.robustness_markdown(None) == ""


def test_corruption_figure_has_a_bar_per_corruption_and_strength():
    from robustness_helpers import fake_robustness

    rob = fake_robustness()
    fig = model_page.corruption_figure(rob)
    ax = fig.axes[0]
    k = rob["corruptions"]["corruptions"]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    want = sorted(round(100 * v, 6) for row in k.values() for v in row["by_severity"].values())
    assert heights == want
    assert [t.get_text() for t in ax.get_xticklabels()] == [n.replace("_", " ") for n in k]
    assert ax.lines[0].get_ydata()[0] == pytest.approx(100 * rob["corruptions"]["clean_accuracy"])
