"""fer_demo.model_card: the card's numbers come from the release files (bootstrap, failure modes,
calibration, faithfulness), and it never shows a path of the training machine."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import fake_calibration, fake_faithfulness, fake_metrics

from fer_demo.model import EMOTIONS
from fer_demo.model_card import bootstrap, failure_modes, model_card_markdown, split_name, what_a_percentage_means
from train.config import TrainConfig


def card(metrics: dict | None = None, calibration: dict | None = None) -> dict:
    training = {**TrainConfig(data="/root/secret/fer2013", out="/root/fer-runs/x").to_dict(),
                "class_counts": [3995, 436, 4097, 7215, 4830, 3171, 4965], "code_version": "0.2.0+gabc",
                "torch": "2.15.0", "segments": [{"hardware": {"label": "Some CPU, 2 cores"}, "precision": "fp32"}]}
    return {"classes": list(EMOTIONS), "input_size": 40, "face_size": 48, "cam_target_layer": "features.38",
            "training": training, "metrics": metrics if metrics is not None else fake_metrics(),
            "calibration": calibration}


def test_bootstrap_intervals_bracket_the_point_estimates():
    m = fake_metrics()
    b = bootstrap(m["confusion_matrix"], samples=400)
    assert b["accuracy"].value == pytest.approx(m["accuracy"])
    assert b["accuracy"].lo < m["accuracy"] < b["accuracy"].hi
    assert 0.005 < b["accuracy"].hi - b["accuracy"].lo < 0.05  # ~3,600 images: about +-1.6 points
    for i, name in enumerate(EMOTIONS):
        r = b["recall"][i]
        assert r.value == pytest.approx(m["per_class"][name]["recall"]) and r.lo <= r.value <= r.hi
    # The rare class (56 disgust images) has a much wider interval than the common one (895 happy).
    width = {i: b["recall"][i].hi - b["recall"][i].lo for i in range(7)}
    assert width[1] > 2 * width[3]
    assert bootstrap(m["confusion_matrix"], samples=50, seed=3) == bootstrap(m["confusion_matrix"], samples=50, seed=3)


def test_failure_modes_are_read_from_the_confusion_matrix():
    m = fake_metrics()
    cm = np.asarray(m["confusion_matrix"])
    cm[:, 1] = 0  # nobody is called disgust
    cm[1, 6] += 56 - cm[1].sum()  # all 56 disgust faces go to neutral
    m = {**m, "confusion_matrix": cm.tolist(),
         "per_class": {**m["per_class"], "disgust": {**m["per_class"]["disgust"], "recall": 0.0, "support": 56}}}
    modes = failure_modes(m)
    assert any("**disgust** is never predicted" in s and "all 56 disgust faces" in s for s in modes)
    assert sum("faces are called" in s for s in modes) == 3


def test_model_card_sections_numbers_and_no_paths():
    cal = fake_calibration()
    text = model_card_markdown(card(calibration=cal), fake_faithfulness(), front_matter=True)
    assert text.startswith("---\nlicense: mit\n")
    for section in ("## Intended use", "## Out of scope", "## Training data", "## Evaluation",
                    "## Known failure modes", "## Calibration", "## Explanations", "## How to reproduce"):
        assert section in text, section
    m = fake_metrics()
    assert f"Accuracy: **{100 * m['accuracy']:.1f}% (" in text and "PublicTest" in text
    assert "validation set, not an unseen test set" in text
    assert f"T = {cal['temperature']['none']:.3f} (none)" in text
    assert "**gradcam**" in text and "Fails or only borderline passes the randomisation check" in text and "gradcam++" in text
    assert "python -m train fit --data FER2013_ROOT --out RUN" in text and "Some CPU, 2 cores (fp32)" in text
    assert "/root" not in text and "secret" not in text and "fer-runs" not in text
    bare = model_card_markdown(card(calibration=None), None)
    assert "No calibration recorded" in bare and "Not measured for these weights" in bare


def test_what_80_percent_means():
    cal = fake_calibration()
    sentence = what_a_percentage_means(cal)
    b = next(b for b in cal["reliability"]["after"] if b["lo"] <= 0.8 < b["hi"])
    assert f"right {b['accuracy']:.0%} of the time on {b['count']} PublicTest faces" in sentence
    assert what_a_percentage_means({"reliability": {"after": []}}) is None


def test_split_names():
    assert [split_name(s) for s in ("test", "train", "private")] == ["PublicTest", "Training", "PrivateTest"]


def test_the_card_says_which_epoch_of_the_run_the_weights_are():
    c = card()
    c["metrics"]["epoch"], c["training"]["epochs"] = 8, 60
    assert "These weights are epoch 8 of that 60-epoch run" in model_card_markdown(c)
    assert "an interim checkpoint" in model_card_markdown(c)
    c["training"]["epochs_done"] = 60  # the run went on to the end; epoch 8 stayed its best
    text = model_card_markdown(c)
    assert "epoch 8 of that 60-epoch run, its best on PublicTest (the run finished all 60 epochs" in text
    assert "interim" not in text
    c["metrics"]["epoch"] = 60
    text = model_card_markdown(c)
    assert "epoch 60 of that 60-epoch run, the best on PublicTest so far." in text and "interim" not in text


def test_a_fine_tuned_release_says_what_it_started_from_and_how_to_rebuild_both_steps():
    c = card()
    base_training = dict(c["training"], epochs=83, schedule="wsd", ema_decay=0.999)
    c["training"].update(init="/root/secret/weights/fer_vgg19.safetensors", epochs=4, lr=1e-4,
                         ferplus="/root/secret/votes.csv", ferplus_labels="mix", ferplus_mix=0.3, photo_aug=0.5,
                         scale_min=0.85, scale_max=1.2, max_shift=5.0,
                         init_release={"file": "fer_vgg19.safetensors", "sha256": "ab" * 32, "accuracy": 0.701,
                                       "epoch": 76, "training": base_training})
    text = model_card_markdown(c)
    assert "Fine-tuned from an earlier release (`fer_vgg19.safetensors`, sha256 abababababab..., PublicTest 70.1%), " \
           "itself trained from scratch." in text
    assert "Trained from scratch" not in text
    assert "70% the FER2013 label, 30% the distribution of the votes" in text
    assert "50% of the training faces got one photo-like corruption" in text and "zoom (0.85-1.2x)" in text
    base_cmd, then = text.index("--epochs 83 --schedule wsd"), text.index("# then the fine-tuning run:")
    fine = text.index("--init BASE/fer_vgg19.safetensors --epochs 4")
    assert base_cmd < then < fine
    assert "python -m train export --run BASE_RUN --to BASE" in text
    line = text[fine:].splitlines()[0]
    for flag in ("--photo-aug 0.5", "--ferplus FERPLUS_VOTES", "--ferplus-labels mix", "--ferplus-mix 0.3",
                 "--scale-min 0.85", "--scale-max 1.2", "--max-shift 5.0"):
        assert flag in line, flag
    assert "/root" not in text and "secret" not in text
    plain = model_card_markdown(card())
    assert "Trained from scratch (no ImageNet weights)." in plain and "--photo-aug" not in plain
    assert "--ferplus" not in plain and "then the fine-tuning run" not in plain


def test_real_photos_and_robustness_section_only_with_the_report():
    from robustness_helpers import fake_robustness

    from fer_demo.model_card import robustness_section

    rob = fake_robustness()
    text = model_card_markdown(card(calibration=fake_calibration()), None, robustness=rob)
    assert "## Real photos and robustness" not in model_card_markdown(card(), None)
    assert robustness_section(None) == []
    # One section, between the failure modes and the calibration.
    assert text.count("## Real photos and robustness") == 1
    assert text.index("## Known failure modes") < text.index("## Real photos and robustness") < text.index("## Calibration")
    s = rob["photos"]["score"]
    lo, hi = s["accuracy_ci95_by_film"]
    assert f"| accuracy (95% CI by film) | {100 * s['accuracy']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f}) |" in text
    assert f"| photos with no face found | 4 (14.3%) |" in text
    assert f"| most predicted class (share of answers) | {s['most_predicted']} " in text
    assert "| | " + " | ".join(f"{v:.2f}" for v in s["recall"].values()) + " |" in text
    assert "development set" in text and "not held out" in text  # sfew-dev was tuned on
    c = rob["publictest"]["clean"]
    assert f"FER+ majority labels" in text and f"**{100 * c['ferplus_majority']['accuracy']:.1f}%** (28 faces" in text
    k = rob["corruptions"]
    row = k["corruptions"]["blur"]
    assert (f"| blur | " + " | ".join(f"{100 * row['by_severity'][v]:.1f}%" for v in ("1", "2", "3"))
            + f" | {100 * row['mean']:.1f}% |") in text
    assert f"**{100 * k['mean_corruption_accuracy']:.1f}%** |" in text
    ch = rob["photos"]["selective"]["chosen"]
    assert f"| sfew-dev, faces found | 24 | " in text and f"{100 * ch['coverage']:.1f}% | {100 * ch['answered_accuracy']:.1f}%" in text
    assert "| PublicTest (48 px crops, no pose) | 35 |" in text and "min_confidence 0.2, min_margin 0.03" in text
    assert "Film0" not in text and ".jpg" not in text  # numbers only: no frame's name
    # The floors were chosen on these faces: the card says so and gives the gain on films held out.
    cv = rob["photos"]["selective"]["choice"]["cross_validated"]
    assert "floors are this release's own, chosen on these photos' faces" in text
    assert f"4-fold by film, 20 random splits of 4 films" in text and f"**{cv['gain_points']:+.1f} points**" in text
    no_choice = {**rob, "photos": {**rob["photos"], "selective": {k: v for k, v in rob["photos"]["selective"].items()
                                                                  if k != "choice"}}}
    plain = model_card_markdown(card(calibration=fake_calibration()), None, robustness=no_choice)
    assert "this release's own" not in plain and "-fold by film" not in plain


def test_robustness_section_with_only_some_parts():
    from robustness_helpers import fake_robustness

    from fer_demo.model_card import robustness_section

    rob = {**fake_robustness(), "photos": None, "corruptions": None}
    text = "\n".join(robustness_section(rob))
    assert "PublicTest against FER+ labels" in text and "Real photos: the whole pipeline" not in text
    assert "**Corruptions**" not in text and "| PublicTest (48 px crops, no pose) |" in text
    other = {**fake_robustness(), "photos": {**fake_robustness()["photos"], "data": "data/my-photos"}}
    assert "whether they were used for tuning is not recorded" in "\n".join(robustness_section(other))


def test_a_fine_tune_without_a_recorded_base_says_so_instead_of_from_scratch():
    c = card()
    c["training"]["init"] = "/root/secret/weights/fer_vgg19.safetensors"
    text = model_card_markdown(c)
    assert "Fine-tuned from an earlier release (`fer_vgg19.safetensors`; not recorded which)." in text
    assert "Trained from scratch" not in text and "secret" not in text


# --- Which settings the reproduce command leaves out: the release's own record, not a copied list ---

def test_the_fallback_for_releases_without_a_record_is_the_trainers_defaults():
    """``UNRECORDED_DEFAULTS`` (only for releases trained before ``changed_from_defaults`` was recorded,
    like the shipped one) is a copy of TrainConfig's defaults; this fails as soon as they drift apart."""
    from fer_demo.model_card import OMITTED_AT_DEFAULT, UNRECORDED_DEFAULTS

    assert set(UNRECORDED_DEFAULTS) == set(OMITTED_AT_DEFAULT)
    defaults = TrainConfig()
    drifted = {k: (v, getattr(defaults, k)) for k, v in UNRECORDED_DEFAULTS.items() if getattr(defaults, k) != v}
    assert not drifted, f"fer_demo.model_card.UNRECORDED_DEFAULTS != TrainConfig's defaults (copy, trainer): {drifted}"


def test_the_reproduce_command_reads_which_settings_were_given_from_the_release():
    def fit_line(c):
        text = model_card_markdown(c)
        return next(line for line in text.splitlines() if line.startswith("python -m train fit"))

    given = TrainConfig(data="/root/secret/fer2013", out="/x", epochs=4, lr=1e-4, photo_aug=0.5, scale_min=0.85)
    recorded, unrecorded = card(), card()
    recorded["training"].update(given.to_dict(), changed_from_defaults=given.changed_from_defaults())
    unrecorded["training"].update(given.to_dict())
    line = fit_line(recorded)
    assert line == fit_line(unrecorded)  # today's defaults: the record and the fallback say the same
    assert "--photo-aug 0.5" in line and "--scale-min 0.85" in line and "--schedule" not in line
    # A release whose trainer had other defaults: its record decides, not today's TrainConfig.
    older = card()
    older["training"].update(schedule="wsd", photo_aug=0.0, changed_from_defaults=["data", "out", "photo_aug"])
    line = fit_line(older)
    assert "--schedule" not in line  # wsd was that trainer's default
    assert "--photo-aug 0.0" in line  # given on its command line (its trainer's default was something else)
    assert "--epochs 3" in line and "--lr 0.001" in line  # the always-spelled settings stay
