"""The Model page: accuracy, confusion matrix, per-class table, calibration, explanation
faithfulness, real photos and robustness, the model card and training settings.

Everything is read from the files released next to the weights (card, ``metrics.json``,
``faithfulness.json``, ``robustness.json``, plots, ``history.csv``); nothing is typed by hand, and no path of the
machine that trained the model is shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from fer_demo.model import EMOTIONS
from fer_demo.model_card import (failure_modes, model_card_markdown, robustness_section, split_name,
                                  what_a_percentage_means)
from fer_demo.weights import card_path

# Training settings that are paths on the machine that trained the model: never shown.
RELIABILITY_TITLE = "Reliability diagram before and after temperature scaling"
# The faithfulness table (Markdown) keeps each cell on one line ("gradcam", not "gradca m" or one
# letter a line on a phone) and scrolls sideways inside its own (focusable) box when the screen is
# narrower.
MODEL_CSS = """
#faithfulness .fer-scroll { max-width: 100%; overflow-x: auto; }
#faithfulness th, #faithfulness td { white-space: nowrap; word-break: normal; overflow-wrap: normal; }
#robustness .fer-scroll { max-width: 100%; overflow-x: auto; }
#robustness th, #robustness td { white-space: nowrap; word-break: normal; overflow-wrap: normal; }
"""
LOCAL_PATH_SETTINGS = ("data", "out", "imagenet_weights")

@dataclass
class ModelInfo:
    """What the release folder says about the model. Any part can be missing (``None``)."""

    card: dict | None
    metrics: dict | None
    confusion_png: Path | None
    curves_png: Path | None
    history: pd.DataFrame | None
    problems: list[str]
    reliability_png: Path | None = None
    faithfulness: dict | None = None
    robustness: dict | None = None

    @property
    def calibration(self) -> dict | None:
        cal = (self.card or {}).get("calibration")
        return cal if isinstance(cal, dict) and isinstance(cal.get("modes"), dict) else None

    @classmethod
    def load(cls, weights: str | Path) -> "ModelInfo":
        """Read ``<weights>.json`` (card), ``metrics.json``, ``confusion.png``, ``curves.png``, ``history.csv``,
        ``faithfulness.json`` and ``robustness.json``.

        ``metrics.json`` falls back to the card's ``metrics`` entry. Unreadable files are reported
        in ``problems``, never raised: the app must start with whatever is there.
        """
        weights = Path(weights)
        folder = weights.parent
        problems: list[str] = []

        def read_json(path: Path) -> dict | None:
            if not path.is_file():
                return None
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                problems.append(f"{path.name} is unreadable ({e})")
                return None
            if not isinstance(data, dict):
                problems.append(f"{path.name} does not hold a JSON object")
                return None
            return data

        card = read_json(card_path(weights))
        metrics = read_json(folder / "metrics.json")
        if metrics is None and card and isinstance(card.get("metrics"), dict):
            metrics = card["metrics"]
        if metrics is not None and not _valid_metrics(metrics):
            problems.append("metrics.json lacks accuracy, per_class or confusion_matrix")
            metrics = None
        history = None
        if (folder / "history.csv").is_file():
            try:
                history = pd.read_csv(folder / "history.csv")
            except (OSError, ValueError) as e:
                problems.append(f"history.csv is unreadable ({e})")
        png = lambda name: folder / name if (folder / name).is_file() else None  # noqa: E731
        faithfulness = read_json(folder / "faithfulness.json")
        if faithfulness is not None and not isinstance(faithfulness.get("methods"), list):
            problems.append("faithfulness.json lacks its methods")
            faithfulness = None
        robustness = read_json(folder / "robustness.json")
        if robustness is not None and not _valid_robustness(robustness):
            problems.append("robustness.json lacks its parts (photos, publictest or corruptions)")
            robustness = None
        return cls(card, metrics, png("confusion.png"), png("curves.png"), history, problems,
                   png("reliability.png"), faithfulness, robustness)


def _valid_metrics(m: dict) -> bool:
    return (isinstance(m.get("accuracy"), (int, float)) and isinstance(m.get("per_class"), dict)
            and isinstance(m.get("confusion_matrix"), list))


def _valid_robustness(r: dict) -> bool:
    """At least one part, each present part a dict with its headline numbers."""
    photos, pt, k = r.get("photos"), r.get("publictest"), r.get("corruptions")
    if not any(isinstance(x, dict) for x in (photos, pt, k)):
        return False
    return ((photos is None or isinstance((photos.get("score") or {}).get("accuracy"), (int, float)))
            and (pt is None or isinstance(((pt.get("clean") or {}).get("fer2013_labels") or {}).get("accuracy"),
                                          (int, float)))
            and (k is None or isinstance(k.get("corruptions"), dict)))


def robustness_markdown(rob: dict | None) -> str:
    """Real photos, PublicTest against FER+ labels, corruptions and abstention, from ``robustness.json``
    (the model card's section, without its heading); "" when there is none."""
    return "\n".join(robustness_section(rob, heading="")).strip()


def corruption_figure(rob: dict):
    """Bars: accuracy under each corruption at each strength, with the clean accuracy of the same
    faces as a line (a matplotlib figure), from ``robustness.json``'s ``corruptions``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = rob["corruptions"]
    names = list(k["corruptions"])
    severities = list(k["corruptions"][names[0]]["by_severity"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / len(severities)
    x = np.arange(len(names))
    for j, sev in enumerate(severities):
        vals = [100 * k["corruptions"][n]["by_severity"][sev] for n in names]
        ax.bar(x + (j - (len(severities) - 1) / 2) * width, vals, width, label=f"strength {sev}",
               color=plt.cm.Blues(0.4 + 0.5 * j / max(len(severities) - 1, 1)))
    if isinstance(k.get("clean_accuracy"), (int, float)):
        ax.axhline(100 * k["clean_accuracy"], color="black", ls="--", lw=1,
                   label=f"clean {100 * k['clean_accuracy']:.1f}%")
    ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"PublicTest under corruptions ({k.get('faces', '?')} faces); mean "
                 f"{100 * k['mean_corruption_accuracy']:.1f}%", fontsize=10)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def metrics_markdown(info: ModelInfo) -> str:
    """The headline: accuracy, macro-F1, which split and how many images; or why there is none."""
    m = info.metrics
    if m is None:
        note = ["**No evaluation results for these weights** (no `metrics.json` next to them), so "
                "there is no measured accuracy to show."]
        if info.card and info.card.get("note"):
            note.append(f"The model card says: *{info.card['note']}*.")
        note.extend(f"Problem: {p}." for p in info.problems)
        return "\n\n".join(note)
    split = split_name(m.get("split"))
    lines = [f"### Accuracy {m['accuracy']:.1%} · macro-F1 {m.get('macro_f1', float('nan')):.3f}",
             f"Measured on FER2013 {split}: {int(m.get('num_images', 0)):,} face images not used for training. "
             f"{split} also chose the training epoch, so it is a validation set rather than an unseen test."]
    extras = []
    if m.get("epoch") is not None:
        training = (info.card or {}).get("training") or {}
        of = f" of {training['epochs']}" if isinstance(training.get("epochs"), int) else ""
        extras.append(f"weights from epoch {m['epoch']}{of}")
    if m.get("tta") and m["tta"] != "none":
        extras.append(f"test-time augmentation `{m['tta']}`")
    if m.get("weights_dtype"):
        extras.append(f"scored as shipped ({m['weights_dtype']})")
    for key, value in m.items():
        if key.startswith("accuracy_tta_") and isinstance(value, (int, float)):
            extras.append(f"accuracy with `{key.removeprefix('accuracy_tta_')}` test-time augmentation {value:.1%}")
    if extras:
        text = "; ".join(extras)
        lines.append(text[0].upper() + text[1:] + ".")
    majority = max((c.get("support", 0) for c in m["per_class"].values()), default=0)
    if m.get("num_images"):
        lines.append(f"For scale: always answering the most common class would score "
                     f"{majority / m['num_images']:.1%}; chance over 7 classes is 14.3%.")
    weak = failure_modes(m)
    if weak:
        lines.append("**Known weaknesses** (read from the confusion matrix):\n" + "\n".join(f"- {w}" for w in weak))
    lines.extend(f"Problem: {p}." for p in info.problems)
    return "\n\n".join(lines)


def calibration_markdown(cal: dict | None) -> str:
    """ECE/NLL/Brier before and after scaling, and what "80%" means, from the card's calibration."""
    if not cal:
        return ("These weights carry no calibration: the percentages are the network's raw softmax and may be "
                "over- or under-confident (`python -m train calibrate` fits it).")
    m = cal["modes"]["none"]
    t = cal["temperature"]["none"]
    text = [f"Percentages are temperature-scaled (T = {t:.2f}, fitted on {split_name(cal.get('fitted_on'))}). "
            f"Expected calibration error {m['before']['ece']:.3f} before scaling, {m['after']['ece']:.3f} after "
            f"(15 bins; 0 = a face shown at p% is right p% of the time)."]
    meaning = what_a_percentage_means(cal)
    if meaning:
        text.append(meaning)
    return "\n\n".join(text)


def faithfulness_markdown(faith: dict | None) -> str:
    if not faith:
        return "Not measured for these weights yet (`python benchmarks/cam_faithfulness.py --out weights/faithfulness.json`)."
    best = next((m for m in faith["methods"] if m["method"] == faith["best"]), None)
    text = [faith["table"]]
    if best:
        text.append(f"**{faith['best']}** measures best and is the default: removing its top 20% lowers the explained "
                    f"probability {best['ratio_20']:.1f}x as much as removing 20% random pixels, and its maps change "
                    f"when the network's weights are randomised (rank correlation "
                    f"{best['rank_correlation_random_model']:.2f}).")
    return "\n\n".join(text)


def per_class_table(metrics: dict | None) -> pd.DataFrame:
    """class, precision, recall, F1, support: one row per class in the metrics' class order."""
    columns = ["class", "precision", "recall", "F1", "support"]
    if not metrics:
        return pd.DataFrame(columns=columns)
    names = metrics.get("classes") or list(metrics["per_class"])
    rows = []
    for name in names:
        c = metrics["per_class"].get(name, {})
        rows.append({"class": name, "precision": f"{float(c.get('precision', 0)):.3f}",
                     "recall": f"{float(c.get('recall', 0)):.3f}", "F1": f"{float(c.get('f1', 0)):.3f}",
                     "support": int(c.get("support", 0))})
    return pd.DataFrame(rows, columns=columns)


def readable_history(history: pd.DataFrame) -> pd.DataFrame:
    """history.csv for people: rounded numbers (no 4.189053934176135e-08), LR in scientific notation."""
    out = history.copy()
    for col in out.columns:
        if not pd.api.types.is_float_dtype(out[col]):
            continue
        if col.startswith("lr"):
            out[col] = out[col].map(lambda v: f"{v:.2e}")
        elif col.endswith("seconds") or col == "images_per_s":
            out[col] = out[col].round(1)
        else:
            out[col] = out[col].map(lambda v: f"{v:.4f}")
    return out


def confusion_figure(metrics: dict):
    """Row-normalised confusion matrix (rows: true class; each row sums to 1) as a matplotlib
    figure, each cell its share in percent. Small and with large type, so it stays readable on a
    phone (the release's ``confusion.png``, with the counts, puts two matrices side by side).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    names = metrics.get("classes") or list(EMOTIONS)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=10)
    ax.set_yticks(range(len(names)), names, fontsize=10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("% of each true class (diagonal = recall)", fontsize=10)
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=11,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def model_table(card: dict | None) -> pd.DataFrame:
    """What the card says the model is: architecture, classes, sizes, normalisation, CAM layer."""
    if not card:
        return pd.DataFrame(columns=["property", "value"])
    rows = [(k, _fmt(v)) for k, v in card.items() if k not in ("training", "metrics", "format")]
    return pd.DataFrame(rows, columns=["property", "value"])


def training_table(card: dict | None) -> pd.DataFrame:
    """Every training setting recorded in the card (``card["training"]``), as setting/value rows."""
    training = (card or {}).get("training")
    if not isinstance(training, dict):
        return pd.DataFrame(columns=["setting", "value"])
    rows = []
    for key, value in training.items():
        if key in LOCAL_PATH_SETTINGS:
            continue
        if key == "class_counts" and isinstance(value, list) and len(value) == len(EMOTIONS):
            value = dict(zip(EMOTIONS, value))
        rows.append((key, _fmt(value)))
    return pd.DataFrame(rows, columns=["setting", "value"])


def build_model_tab(info: ModelInfo, weights: str | Path) -> None:
    """Lay out the model page's components (inside the caller's ``gr.Tab``) from the release files."""
    gr.Markdown(metrics_markdown(info), elem_id="model-metrics")
    if info.metrics is not None:
        # Row-normalised first, compact, its title in the page (a component label would cover the
        # plot's top row on a phone); the release's plot (two matrices side by side) below it.
        gr.Markdown(f"### Confusion matrix ({split_name(info.metrics.get('split'))})\nEach row is one true class: the percentage "
                    "of its faces given each label (the diagonal is each class's recall).", elem_id="confusion-title")
        gr.Plot(value=confusion_figure(info.metrics), show_label=False, elem_id="confusion-matrix",
                format="png")
        if info.confusion_png is not None:
            with gr.Accordion("Confusion matrix: counts and shares side by side", open=False):
                gr.Image(value=str(info.confusion_png), show_label=False, interactive=False,
                         buttons=["fullscreen", "download"], elem_id="confusion-png")
        gr.Dataframe(value=per_class_table(info.metrics), label="Per-class precision, recall, F1 and support",
                     interactive=False, elem_id="per-class-table")
    with gr.Accordion("Calibration: what the percentages mean", open=True):
        cal = info.calibration
        if info.reliability_png is not None and cal is not None:
            # Its title in the page, not as the component's label (which floats over the plot's top).
            gr.Markdown(f"**{RELIABILITY_TITLE}**", elem_id="reliability-title")
            gr.Image(value=str(info.reliability_png), label=RELIABILITY_TITLE, show_label=False,
                     interactive=False, buttons=["fullscreen", "download"], elem_id="reliability-diagram")
        gr.Markdown(calibration_markdown(cal), elem_id="calibration-text")
    with gr.Accordion("Explanations: how faithful each heatmap method is", open=True):
        # In a region that keyboard users can focus and scroll (the table is wider than a phone).
        gr.Markdown('<div class="fer-scroll" tabindex="0" role="region" aria-label="Faithfulness of each heatmap '
                    f'method">\n\n{faithfulness_markdown(info.faithfulness)}\n\n</div>', elem_id="faithfulness")
    if info.robustness is not None:  # nothing at all without robustness.json
        with gr.Accordion("Real photos and robustness", open=True):
            gr.Markdown('<div class="fer-scroll" tabindex="0" role="region" aria-label="Real photos and '
                        f'robustness">\n\n{robustness_markdown(info.robustness)}\n\n</div>', elem_id="robustness")
            if (info.robustness.get("corruptions") or {}).get("corruptions"):
                gr.Plot(value=corruption_figure(info.robustness), show_label=False, elem_id="corruption-plot",
                        format="png")
    with gr.Accordion("Model card", open=False):
        gr.Markdown(model_card_markdown(info.card or {}, info.faithfulness, robustness=info.robustness),
                    elem_id="model-card")
    if info.curves_png is not None or info.history is not None:
        with gr.Accordion("Training curves", open=False):
            if info.curves_png is not None:
                gr.Markdown("**Loss and accuracy per epoch**")
                gr.Image(value=str(info.curves_png), label="Loss and accuracy per epoch", show_label=False,
                         interactive=False, elem_id="training-curves")
            if info.history is not None:
                gr.Dataframe(value=readable_history(info.history), label="history.csv", interactive=False,
                             elem_id="history-table")
    # One thing is called "Model card" on the page (the accordion above); this one shows the model
    # file's settings and the training run's, read from the card.
    with gr.Accordion("Model file and training settings", open=info.metrics is None):
        gr.Dataframe(value=model_table(info.card), label=f"Model ({card_path(weights).name})",
                     interactive=False, wrap=True)
        gr.Dataframe(value=training_table(info.card), label="Training settings (from the card)",
                     interactive=False, wrap=True, elem_id="training-table")
