"""The release in weights/: its figures are what the weights score, and the README and the model card
say the release files' figures, so a re-trained model with a stale number fails here.

- ``test_shipped_weights_score_what_metrics_json_says``: scores ``weights/`` on FER2013 PublicTest
  from ``../shared`` exactly as ``python -m train evaluate`` does (about a minute on two cores);
  skipped where that data is not on the machine.
- the others read only the files: the JSON card against ``metrics.json``/``calibration.json``,
  ``MODEL_CARD.md`` against what ``python -m train card`` writes from them, and every release
  figure the README quotes against the file it comes from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
PUBLIC_TEST = ROOT.parent / "shared" / "data" / "fer2013"
README = ROOT / "README.md"


def release(name: str) -> dict:
    return json.loads((WEIGHTS / name).read_text())


@pytest.fixture(scope="module")
def metrics() -> dict:
    return release("metrics.json")


@pytest.fixture(scope="module")
def calibration() -> dict:
    return release("calibration.json")


@pytest.fixture(scope="module")
def faithfulness() -> dict:
    return release("faithfulness.json")


@pytest.mark.integration
@pytest.mark.slow
def test_shipped_weights_score_what_metrics_json_says(metrics):
    """``python -m train evaluate --weights weights/fer_vgg19.safetensors --data ../shared/data/fer2013``:
    the same confusion matrix (every one of the 3,589 faces) and the same calibration figures."""
    if not (PUBLIC_TEST / "test").is_dir():
        pytest.skip(f"FER2013 PublicTest not on this machine ({PUBLIC_TEST}/test)")
    from fer_demo.classify import card_temperatures
    from fer_demo.weights import load_model
    from train.data import load_split
    from train.engine import evaluate

    model, card = load_model(WEIGHTS / "fer_vgg19.safetensors")
    data = load_split(PUBLIC_TEST, metrics["split"], progress=False)
    scored, _ = evaluate(model, data, tta=metrics["tta"], temperature=card_temperatures(card.extra).get(metrics["tta"]))
    assert scored["num_images"] == metrics["num_images"]
    # Batched float32 on another CPU may flip a face whose top two logits tie to ~1e-6: allow two faces.
    changed = sum(abs(a - b) for ra, rb in zip(scored["confusion_matrix"], metrics["confusion_matrix"])
                  for a, b in zip(ra, rb)) // 2
    assert changed <= 2, (scored["confusion_matrix"], metrics["confusion_matrix"])
    assert scored["accuracy"] == pytest.approx(metrics["accuracy"], abs=2 / metrics["num_images"])
    assert scored["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=0.002)
    for when in ("before", "after"):
        for k in ("ece", "nll", "brier"):
            assert scored["calibration"][when][k] == pytest.approx(metrics["calibration"][when][k], abs=2e-3), (when, k)


def test_the_json_card_carries_the_release_files_figures(metrics, calibration):
    card = json.loads((WEIGHTS / "fer_vgg19.json").read_text())
    for k in ("accuracy", "macro_f1", "confusion_matrix", "num_images"):
        assert card["metrics"][k] == metrics[k], k
    assert card["calibration"]["temperature"] == calibration["temperature"]
    assert card["calibration"]["modes"] == calibration["modes"]
    assert metrics["calibration"]["temperature"] == calibration["temperature"][metrics["tta"]]


def test_model_card_is_what_the_release_files_say(faithfulness):
    """MODEL_CARD.md is exactly what ``python -m train card`` writes from the card, faithfulness.json
    and (when there is one) robustness.json."""
    from fer_demo.model_card import model_card_markdown
    from train.robustness import read_robustness

    card = json.loads((WEIGHTS / "fer_vgg19.json").read_text())
    robustness = read_robustness(WEIGHTS / "fer_vgg19.safetensors")
    expected = model_card_markdown(card, faithfulness, front_matter=True, robustness=robustness)
    assert (WEIGHTS / "MODEL_CARD.md").read_text() == expected, "stale MODEL_CARD.md: run python -m train card"


def readme_text() -> str:
    """The README with line breaks as spaces (its paragraphs wrap anywhere)."""
    return re.sub(r"\s+", " ", README.read_text())


def claims(metrics: dict, calibration: dict, faithfulness: dict) -> list[str]:
    """Every release figure the README quotes, formatted the way it quotes it, from the release files."""
    n, acc = metrics["num_images"], metrics["accuracy"]
    per = metrics["per_class"]
    cal_none, cal_flip, cal_ten = (calibration["modes"][m] for m in ("none", "flip", "tencrop"))
    t = calibration["temperature"]
    cv, cc = calibration["cross_validated"], calibration["close_call"]
    [b80] = [b for b in calibration["reliability"]["after"] if b["lo"] <= 0.8 < b["hi"]]
    methods = {m["method"]: m for m in faithfulness["methods"]}
    best = methods[faithfulness["best"]]
    rho = best["rank_correlation_random_model"]
    se = best["rank_correlation_se"]
    return [
        f"accuracy **{acc:.3f}** ({round(acc * n):,} of {n:,};",
        f"macro-F1 {metrics['macro_f1']:.3f}; with horizontal-flip TTA {metrics['accuracy_tta_flip']:.3f}, "
        f"ten-crop {metrics['accuracy_tta_tencrop']:.3f}",
        "Recall by class: " + ", ".join(f"{c} {per[c]['recall']:.2f}" for c in metrics["classes"]),
        f"T = {t['none']:.2f} (none), {t['flip']:.2f} (flip), {t['tencrop']:.2f} (ten-crop)",
        f"ECE **{cal_none['before']['ece']:.3f} -> {cal_none['after']['ece']:.3f}**, "
        f"NLL {cal_none['before']['nll']:.3f} -> {cal_none['after']['nll']:.3f}, "
        f"Brier {cal_none['before']['brier']:.3f} -> {cal_none['after']['brier']:.3f}",
        f"measured on the other, {cv['ece_before']:.3f} -> {cv['ece_after']:.3f};",
        f"with flip {cal_flip['before']['ece']:.3f} -> {cal_flip['after']['ece']:.3f}, "
        f"with ten-crop {cal_ten['before']['ece']:.3f} -> {cal_ten['after']['ece']:.3f}",
        f"When this model says 80% ({100 * b80['lo']:.0f}-{b80['hi']:.0%}) it was right {b80['accuracy']:.0%} "
        f"of the time ({b80['count']} faces)",
        f"PublicTest {cc['share']:.0%} of the faces are close calls; for them the top label is right "
        f"{cc['top1_accuracy']:.0%} of the time and one of the two {cc['top2_accuracy']:.0%}",
        f"its top 20% lowers the explained probability {best['ratio_20']:.1f}x as much as 20% random pixels",
        f"{best['ratio_20_blobs']:.1f}x as much as random blobs",
        f"(rho {rho:.2f}, 95% CI {rho - 1.96 * se:.2f}-{rho + 1.96 * se:.2f})",
        f"HiResCAM: {methods['hirescam']['ratio_20']:.1f}x, rho {methods['hirescam']['rank_correlation_random_model']:.2f}",
        f"(rho {methods['gradcam++']['rank_correlation_random_model']:.2f}, "
        f"{methods['layercam']['rank_correlation_random_model']:.2f})",
        f"The shipped model scores {acc:.1%} on PublicTest",
    ]


def test_readme_quotes_the_release_files(metrics, calibration, faithfulness):
    """Each figure the README gives for the shipped model, rebuilt from the release files: a number
    left over from an earlier release is not found."""
    text = readme_text()
    missing = [c for c in claims(metrics, calibration, faithfulness) if c not in text]
    assert missing == [], "README figures that the release files do not say (stale?):\n" + "\n".join(missing)


def test_a_stale_readme_figure_is_caught(metrics, calibration, faithfulness):
    """The check above can fail: with the accuracy of an earlier release the accuracy claim is gone."""
    older = {**metrics, "accuracy": 0.672}
    first = claims(older, calibration, faithfulness)[0]
    assert first not in readme_text()
