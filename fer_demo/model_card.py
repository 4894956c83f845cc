"""The model card (Mitchell et al., "Model Cards for Model Reporting", 2019), generated from a
release's own files: its JSON card (training config, metrics, calibration) and, when present,
``faithfulness.json`` and ``robustness.json`` (``python -m train robustness``). Nothing here is typed by hand about a particular model: numbers, weak
classes and confusions are read from the files, so a new release gets a new card.

``model_card_markdown`` is what the app's Model page shows and what the export writes as
``MODEL_CARD.md`` beside the weights (with Hugging Face front matter). No path of the machine
that trained the model appears in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_NAMES = {"test": "PublicTest", "train": "Training", "private": "PrivateTest"}
BOOTSTRAP_SAMPLES = 1000


def split_name(split: str | None) -> str:
    """FER2013's official name of a split ("test" -> "PublicTest")."""
    return SPLIT_NAMES.get(split or "", split or "the evaluation split")


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float

    def fmt(self, pct: bool = True) -> str:
        if pct:
            return f"{100 * self.value:.1f}% ({100 * self.lo:.1f}-{100 * self.hi:.1f})"
        return f"{self.value:.3f} ({self.lo:.3f}-{self.hi:.3f})"


def bootstrap(confusion: list[list[int]], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
              ) -> dict[str, Interval | dict[str, Interval]]:
    """95% percentile intervals of accuracy, macro-F1 and per-class recall/F1 from a bootstrap over
    the evaluation images. The confusion matrix holds every (true, predicted) pair, so resampling
    images is a multinomial draw over its cells."""
    cm = np.asarray(confusion, dtype=np.int64)
    k, n = cm.shape[0], int(cm.sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, (cm / max(n, 1)).ravel(), size=samples).reshape(samples, k, k)

    def stats(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c = c.astype(np.float64)
        tp = np.diagonal(c, axis1=-2, axis2=-1)
        support, predicted = c.sum(-1), c.sum(-2)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
        acc = tp.sum(-1) / np.maximum(c.sum((-1, -2)), 1)
        return acc, f1.mean(-1), recall, f1

    point = stats(cm)
    boot = stats(draws)

    def ci(p: float, b: np.ndarray) -> Interval:
        lo, hi = np.percentile(b, [2.5, 97.5])
        return Interval(float(p), float(lo), float(hi))

    return {"accuracy": ci(point[0], boot[0]), "macro_f1": ci(point[1], boot[1]),
            "recall": {i: ci(point[2][i], boot[2][:, i]) for i in range(k)},
            "f1": {i: ci(point[3][i], boot[3][:, i]) for i in range(k)}}


def _num(x: object, fmt: str = "{:.3f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def failure_modes(metrics: dict) -> list[str]:
    """Sentences read from the metrics: classes never or rarely found, and the biggest confusions."""
    names = metrics.get("classes") or list(metrics["per_class"])
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    out = []
    for i, name in enumerate(names):
        c = metrics["per_class"].get(name, {})
        support, recall = int(c.get("support", 0)), float(c.get("recall", 0))
        predicted = int(cm[:, i].sum())
        if support and predicted == 0:
            out.append(f"**{name}** is never predicted: all {support} {name} faces of the evaluation split get "
                       "another label.")
        elif support and recall < 0.25:
            out.append(f"**{name}** is rarely found: recall {recall:.0%} ({int(cm[i, i])} of {support}).")
    off = [(int(cm[i, j]), i, j) for i in range(len(names)) for j in range(len(names)) if i != j]
    for count, i, j in sorted(off, reverse=True)[:3]:
        share = count / max(int(cm[i].sum()), 1)
        out.append(f"{share:.0%} of **{names[i]}** faces are called **{names[j]}** ({count} faces).")
    return out


def _calibration_section(cal: dict | None) -> list[str]:
    if not cal:
        return ["No calibration recorded for these weights: the probabilities are the network's raw softmax."]
    none = cal["modes"]["none"]
    t = cal["temperature"]
    lines = [f"Temperature scaling (one scalar per test-time augmentation mode, fitted by minimising NLL on "
             f"{split_name(cal.get('fitted_on'))}): T = {t['none']:.3f} (none), "
             + ", ".join(f"{t[m]:.3f} ({m})" for m in ("flip", "tencrop") if m in t) + ".",
             "",
             "| output | ECE (15 bins) | NLL | Brier |", "|---|---:|---:|---:|",
             f"| before scaling | {none['before']['ece']:.4f} | {none['before']['nll']:.4f} | "
             f"{none['before']['brier']:.4f} |",
             f"| after scaling | {none['after']['ece']:.4f} | {none['after']['nll']:.4f} | "
             f"{none['after']['brier']:.4f} |"]
    cv = cal.get("cross_validated")
    if cv:
        lines += ["", f"Fitted and measured on the same split; fitted on one half and measured on the other "
                      f"(2-fold), ECE is {cv['ece_before']:.4f} before and {cv['ece_after']:.4f} after."]
    meaning = what_a_percentage_means(cal)
    if meaning:
        lines += ["", meaning]
    cc = cal.get("close_call")
    if cc and cc.get("share"):
        lines += ["", f"**Close calls.** When the runner-up is within {100 * cc['margin']:.0f} percentage points of "
                      f"the top class ({cc['share']:.0%} of {split_name(cal.get('fitted_on'))} faces) the app names "
                      f"both (\"happy or surprise\"): for those faces the top label is right "
                      f"{cc['top1_accuracy']:.0%} of the time, the runner-up {cc['runner_up_accuracy']:.0%}, and one "
                      f"of the two {cc['top2_accuracy']:.0%}."]
    return lines


def what_a_percentage_means(cal: dict, at: float = 0.8) -> str | None:
    """One sentence: how often the model is right when it says ``at`` (from the reliability bins)."""
    bins = (cal.get("reliability") or {}).get("after") or []
    b = next((b for b in bins if b["lo"] <= at < b["hi"]), None)
    if not b or not b["count"]:
        return None
    return (f"**What \"{at:.0%}\" means:** when this model says {at:.0%} (a confidence between "
            f"{b['lo']:.0%} and {b['hi']:.0%}), it was right {b['accuracy']:.0%} of the time on "
            f"{b['count']} {split_name(cal.get('fitted_on'))} faces.")


def _faithfulness_section(faith: dict | None) -> list[str]:
    if not faith:
        return ["Not measured for these weights (`python benchmarks/cam_faithfulness.py --out "
                "weights/faithfulness.json`)."]
    lines = [faith["table"], ""]
    best = next((m for m in faith["methods"] if m["method"] == faith["best"]), None)
    if best:
        ok = "meets" if best["ratio_20"] >= faith.get("floor_ratio", 2.0) else "does not meet"
        lines.append(f"The app's default method is **{faith['best']}**: among the methods that explain a chosen "
                     f"class and whose maps change when the weights are randomised (upper end of the 95% interval "
                     f"of the rank correlation below {faith.get('sanity_max_rho', 0.5):g}), removing its top 20% "
                     f"lowers the explained probability {best['ratio_20']:.1f}x as much as removing 20% random "
                     f"pixels ({ok} the {faith.get('floor_ratio', 2.0):g}x floor).")
    bad = [m["method"] for m in faith["methods"] if not m.get("passes_sanity_check", True)]
    if bad:
        lines.append(f"Fails or only borderline passes the randomisation check (much the same map for a random "
                     f"network): {', '.join(bad)}; read those pictures as outlines of the face more than as "
                     "explanations of this model.")
    return lines


# Training settings the reproduce command spells out.
_RECIPE = ("init", "epochs", "schedule", "optimizer", "lr", "weight_decay", "warmup_frac", "decay_frac", "ema_decay",
           "batch_size", "label_smoothing", "class_weight_power", "max_rotation", "scale_min", "scale_max",
           "max_shift", "erase_p", "photo_aug", "ferplus", "ferplus_labels", "ferplus_mix", "seed")
# Of those, the ones left out of the command where the run kept the trainer's default (the others are
# always spelled out, so the command reads as the recipe). Whether a setting kept its default is read
# from the release's own record, ``training["changed_from_defaults"]`` (the trainer writes it from
# ``TrainConfig.changed_from_defaults``).
OMITTED_AT_DEFAULT = ("init", "schedule", "ema_decay", "max_rotation", "scale_min", "scale_max", "max_shift",
                      "erase_p", "photo_aug", "ferplus", "ferplus_labels", "ferplus_mix")
# Fallback for a release trained before the trainer recorded ``changed_from_defaults`` (the shipped
# weights: code 0.1.0+gd550ffc): TrainConfig's defaults of those settings at that code, compared with
# the recorded values. Copied because this package must not import ``train``; only such old releases
# use it, and tests/test_model_card.py fails if it and TrainConfig's defaults drift apart (then retrain
# the release with the current trainer, which records its own, or keep these as the old release's).
UNRECORDED_DEFAULTS = {"init": "scratch", "schedule": "onecycle", "ema_decay": 0.0, "max_rotation": 10.0,
                       "scale_min": 0.9, "scale_max": 1.1, "max_shift": 4.0, "erase_p": 0.5, "photo_aug": 0.0,
                       "ferplus": None, "ferplus_labels": "majority", "ferplus_mix": 0.5}


def _at_default(training: dict, key: str) -> bool:
    """Whether the run left ``key`` (one of ``OMITTED_AT_DEFAULT``) at the trainer's default: from its
    ``changed_from_defaults`` record, or for an older release by comparing with ``UNRECORDED_DEFAULTS``."""
    changed = training.get("changed_from_defaults")
    if isinstance(changed, list):
        return key not in changed
    return training[key] == UNRECORDED_DEFAULTS[key]


def _reproduce(training: dict, run: str, to: str) -> list[str]:
    """The two commands (fit, export) that rebuild a release from its recorded training settings."""
    flags = []
    for key in _RECIPE:
        if key not in training or (key in OMITTED_AT_DEFAULT and _at_default(training, key)):
            continue
        if key == "ferplus_mix" and training.get("ferplus_labels") != "mix":
            continue
        value = training[key]
        if key == "init" and str(value).endswith(".safetensors"):
            value = "BASE/fer_vgg19.safetensors"
        elif key == "ferplus":
            value = "FERPLUS_VOTES"
        flags.append(f"--{key.replace('_', '-')} {value}")
    return [f"python -m train fit --data FER2013_ROOT --out {run} " + " ".join(flags),
            f"python -m train export --run {run} --to {to}"]


def _origin(training: dict) -> str:
    """Where the weights started: from scratch, ImageNet, or an earlier release fine-tuned."""
    base = training.get("init_release")
    if isinstance(base, dict):
        acc = base.get("accuracy")
        told = f", PublicTest {acc:.1%}" if isinstance(acc, (int, float)) else ""
        first = (base.get("training") or {}).get("init", "scratch")
        root = "itself trained from scratch" if first == "scratch" else f"itself started from {first}"
        return (f"Fine-tuned from an earlier release (`{base.get('file')}`, sha256 {str(base.get('sha256'))[:12]}..."
                f"{told}), {root}.")
    if str(training.get("init", "")).endswith(".safetensors"):  # a run from before the trainer recorded it
        return f"Fine-tuned from an earlier release (`{Path(str(training['init'])).name}`; not recorded which)."
    if training.get("init") == "imagenet":
        return "Started from torchvision's ImageNet weights."
    return "Trained from scratch (no ImageNet weights)."


def _targets_and_augmentation(training: dict) -> list[str]:
    """What the loss compared with and the photo-like augmentation, when they differ from FER2013's labels alone."""
    out = []
    mode = training.get("ferplus_labels")
    if training.get("ferplus"):
        if mode == "mix":
            share = float(training.get("ferplus_mix", 0.5))
            out.append(f"Targets: the FER2013 label mixed with the FER+ votes (Barsoum et al. 2016; 10 annotators per "
                       f"image): {1 - share:.0%} the FER2013 label, {share:.0%} the distribution of the votes over the "
                       "7 expressions, where an image has votes (the FER2013 label alone elsewhere).")
        elif mode == "soft":
            out.append("Targets: the distribution of the FER+ votes (Barsoum et al. 2016) over the 7 expressions.")
        else:
            out.append("Targets: the FER+ majority label (Barsoum et al. 2016); images without a majority left out.")
    photo = training.get("photo_aug") or 0.0
    if photo > 0:
        out.append(f"Augmentation: besides flips, turns, zoom ({training.get('scale_min', 0.9):g}-"
                   f"{training.get('scale_max', 1.1):g}x), shifts (up to {training.get('max_shift', 4.0):g} px) and "
                   f"erasing, {photo:.0%} of the training faces got one photo-like corruption (blur, noise, JPEG, low "
                   "resolution, dim or over-exposed light, occlusion, in-plane or out-of-plane turn) at a random "
                   "strength.")
    return [" ".join(out), ""] if out else []


def _pct(x: object) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def _ci(value: object, ci: object) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"{_pct(value)} ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})"
    return _pct(value)


def robustness_section(rob: dict | None, heading: str = "## Real photos and robustness") -> list[str]:
    """Markdown lines of ``robustness.json`` (``train.robustness``): real photos, PublicTest against
    FER+ labels, corruptions and abstention; [] when there is none. Numbers only: no photo or file name.
    ``heading``: the section's title line ("" for none)."""
    if not rob:
        return []
    lines = [heading, ""] if heading else []
    hw = rob.get("hardware") or {}
    lines += [f"Measured by `python -m train robustness` ({(rob.get('date') or '?')[:10]}, "
              f"{hw.get('name', '?')}, {hw.get('cores', '?')} cores) on the weights as shipped, no test-time "
              "augmentation.", ""]
    photos = rob.get("photos")
    if photos:
        s = photos["score"]
        name = photos.get("data", "photos").rsplit("/", 1)[-1]
        if "sfew" in name.lower():
            why = (f"**{name}** (film frames from SFEW, in the wild) is a development set: the app's pipeline and "
                   "its abstention thresholds were tuned on it, so it is not held out and an unseen set of such "
                   "photos will likely score lower. Its frames are not shipped or shown; numbers only.")
        else:
            why = f"**{name}**: labelled photos; whether they were used for tuning is not recorded here."
        lines += [f"**Real photos: the whole pipeline.** {why} {s['num_photos']} photos from {s.get('films', '?')} "
                  "films; the app's own detector and classifier with its default settings and abstention off, "
                  "the largest face of each photo scored, a photo without a face counted as wrong. 95% intervals "
                  "from a bootstrap that resamples whole films (frames of one film are correlated).", "",
                  "| measure | value |", "|---|---:|",
                  f"| accuracy (95% CI by film) | {_ci(s['accuracy'], s.get('accuracy_ci95_by_film'))} |",
                  f"| balanced accuracy (95% CI by film) | "
                  f"{_ci(s['balanced_accuracy'], s.get('balanced_accuracy_ci95_by_film'))} |",
                  f"| photos with no face found | {s['no_face']} ({_pct(s['no_face_share'])}) |",
                  f"| most predicted class (share of answers) | {s['most_predicted']} "
                  f"({_pct(s['most_predicted_share'])}) |",
                  f"| accuracy on the photos with a face | {_pct(s['answered_accuracy'])} |", "",
                  "| recall | " + " | ".join(s["recall"]) + " |", "|---|" + "---:|" * len(s["recall"]),
                  "| | " + " | ".join(f"{v:.2f}" for v in s["recall"].values()) + " |", ""]
    pt = rob.get("publictest")
    if pt:
        c = pt["clean"]
        text = (f"**PublicTest against FER+ labels.** FER2013 labels: **{_pct(c['fer2013_labels']['accuracy'])}** "
                f"({c['fer2013_labels']['faces']:,} faces)")
        if c.get("ferplus_majority"):
            f = c["ferplus_majority"]
            text += (f"; FER+ majority labels (ten annotators per face, Barsoum et al. 2016): **{_pct(f['accuracy'])}** "
                     f"({f['faces']:,} faces with a majority; the two label sets disagree on about a third of "
                     "faces, so the numbers are not comparable with each other).")
        else:
            text += "; not scored against FER+ labels (no votes given)."
        lines += [text, ""]
    k = rob.get("corruptions")
    if k and k.get("corruptions"):
        sev = list(next(iter(k["corruptions"].values()))["by_severity"])
        lines += [f"**Corruptions** (photo-like damage to the 48x48 face, ImageNet-C style, each at {len(sev)} "
                  f"strengths; {k['faces']:,} PublicTest faces, FER2013 labels; clean accuracy on them "
                  f"{_pct(k.get('clean_accuracy'))}):", "",
                  "| corruption | " + " | ".join(f"strength {v}" for v in sev) + " | mean |",
                  "|---|" + "---:|" * (len(sev) + 1)]
        for cname, row in k["corruptions"].items():
            lines.append(f"| {cname} | " + " | ".join(_pct(row["by_severity"].get(v)) for v in sev)
                         + f" | {_pct(row.get('mean'))} |")
        lines += [f"| **mean of all** |" + " |" * len(sev) + f" **{_pct(k.get('mean_corruption_accuracy'))}** |", ""]
    rows = []
    if photos and photos.get("selective"):
        sel = photos["selective"]
        ch = sel["chosen"]
        rows.append(f"| {photos.get('data', 'photos').rsplit('/', 1)[-1]}, faces found | {sel['faces']} | "
                    f"{_pct(sel['all_faces_accuracy'])} | {_pct(ch['coverage'])} | {_pct(ch['answered_accuracy'])} "
                    f"| {ch['gain_points']:+.1f} |")
        o = sel.get("over_all_photos")
        if o:
            rows.append(f"| {photos.get('data', 'photos').rsplit('/', 1)[-1]}, every photo (no face = not answered) | "
                        f"{o['photos']} | {_pct(o['accuracy_all_photos_no_abstention'])} | {_pct(o['coverage'])} | "
                        f"{_pct(ch['answered_accuracy'])} | |")
    if pt and pt.get("selective"):
        sel = pt["selective"]
        ch = sel["chosen"]
        rows.append(f"| PublicTest (48 px crops, no pose) | {sel['faces']:,} | {_pct(sel['all_faces_accuracy'])} | "
                    f"{_pct(ch['coverage'])} | {_pct(ch['answered_accuracy'])} | {ch['gain_points']:+.1f} |")
    if rows:
        t = rob.get("thresholds") or {}
        at = ", ".join(f"{key} {val:g}" for key, val in t.items() if isinstance(val, (int, float)))
        choice = (photos or {}).get("selective", {}).get("choice")
        how = (f" The confidence and margin floors are this release's own, chosen on these photos' faces: "
               f"{choice['rule']}." if choice else "")
        lines += ["**Abstention** (\"can't read this face reliably\"): at the app's quality thresholds"
                  + (f" ({at})" if at else "") + ", the share of faces answered and the accuracy on them, "
                  "against the accuracy on all faces with abstention off." + how, "",
                  "| set | faces | accuracy, all faces | answered (coverage) | accuracy on the answered | gain (points) |",
                  "|---|---:|---:|---:|---:|---:|", *rows, ""]
        cv = (choice or {}).get("cross_validated")
        if cv:
            lo, hi = cv["gain_points_p05_p95"]
            lines += [f"Chosen and scored on the same faces, that gain flatters the floors. Chosen on some films and "
                      f"scored on the others ({cv['folds']}-fold by film, {cv['repeats']} random splits of "
                      f"{cv['groups']} films), they answer {_pct(cv['coverage'])} of the faces at "
                      f"{_pct(cv['answered_accuracy'])}: **{cv['gain_points']:+.1f} points** (5th-95th percentile "
                      f"over splits {lo:+.1f} to {hi:+.1f}), the better guide to an unseen set of such photos.", ""]
    return lines


def model_card_markdown(card: dict, faithfulness: dict | None = None, front_matter: bool = False,
                        robustness: dict | None = None) -> str:
    """The whole card as Markdown, from a release's JSON card (+ faithfulness report, + robustness
    report: its section only when given)."""
    metrics = card.get("metrics") or {}
    training = card.get("training") or {}
    cal = card.get("calibration")
    names = card.get("classes") or metrics.get("classes") or []
    lines: list[str] = []
    if front_matter:
        lines += ["---", "license: mit", "library_name: pytorch", "pipeline_tag: image-classification",
                  "tags: [facial-expression-recognition, fer2013, vgg19]", "datasets: [fer2013]", "---", ""]
    lines += ["# Model card: fer-demo VGG19-BN facial-expression classifier", "",
              "## Model", "",
              f"VGG19 with BatchNorm (torchvision's configuration E), one grayscale input channel, global average "
              f"pooling and a 512 -> {len(names)} linear head; input: the centre {card.get('input_size')}x"
              f"{card.get('input_size')} of a {card.get('face_size')}x{card.get('face_size')} aligned face. Classes: "
              f"{', '.join(names)}. {_origin(training)} Grad-CAM layer "
              f"`{card.get('cam_target_layer')}`.", "",
              "## Intended use", "",
              "- A demonstration of facial-expression recognition and of what such models attend to: trying it on "
              "your own photos, teaching, comparing explanation methods.",
              "- Research and prototyping on posed or near-frontal faces similar to FER2013's.", "",
              "## Out of scope", "",
              "- Any decision about a person: hiring, grading, policing, medical or psychological assessment, "
              "lie or intent detection. A facial expression is not an emotion: people smile when they are not "
              "happy and look neutral when they are not calm.",
              "- Surveillance or identifying people (the model does not recognise identities and must not be "
              "combined with a system that does).",
              "- Children, faces in profile, heavily occluded or very small faces, and cultures or age groups "
              "under-represented in FER2013: accuracy there is unmeasured and likely lower.", "",
              "## Training data", "",
              f"FER2013 (Goodfellow et al. 2013): {training.get('train_size', 28709):,} 48x48 grayscale faces of the "
              "official Training split, collected by Google image search for emotion-related keywords. Known "
              "issues: noisy labels (its authors estimated human accuracy on the set at about 65%, and the FER+ "
              "relabelling by 10 annotators per image, Barsoum et al. 2016, changed many of them), strong class "
              "imbalance (disgust is about 1.5% of the training images, happy about 25%), mostly frontal faces of "
              "adults from web photos with unknown and likely skewed demographics, and some images that are not "
              "faces at all (FER+ marks them).", ""]
    counts = training.get("class_counts")
    if isinstance(counts, list) and len(counts) == len(names):
        lines += ["Training images per class: " + ", ".join(f"{n} {c:,}" for n, c in zip(names, counts)) + ".", ""]
    lines += _targets_and_augmentation(training)

    lines += ["## Evaluation", ""]
    if metrics.get("confusion_matrix"):
        split = split_name(metrics.get("split"))
        b = bootstrap(metrics["confusion_matrix"])
        lines += [f"On FER2013 {split} ({int(metrics.get('num_images', 0)):,} images). {split} was also used to "
                  "choose the training epoch, so it is a validation set, not an unseen test set; FER2013's "
                  "PrivateTest is the number the literature reports. 95% intervals from a bootstrap over the "
                  f"evaluation images ({BOOTSTRAP_SAMPLES} resamples).", "",
                  f"- Accuracy: **{b['accuracy'].fmt()}** (no test-time augmentation"
                  + "".join(f"; {m} {metrics[f'accuracy_tta_{m}']:.1%}" for m in ("flip", "tencrop")
                            if isinstance(metrics.get(f"accuracy_tta_{m}"), (int, float)))
                  + ")", f"- Macro-F1: {b['macro_f1'].fmt(pct=False)}", "",
                  "| class | recall (95% CI) | F1 (95% CI) | precision | support |", "|---|---:|---:|---:|---:|"]
        for i, name in enumerate(names):
            c = metrics["per_class"].get(name, {})
            lines.append(f"| {name} | {b['recall'][i].fmt()} | {b['f1'][i].fmt(pct=False)} | "
                         f"{_num(c.get('precision'))} | {int(c.get('support', 0))} |")
        lines += ["", "## Known failure modes", ""]
        lines += [f"- {s}" for s in failure_modes(metrics)]
        lines += ["- Faces unlike FER2013's (profile, children, strong make-up, low light) are outside what it was "
                  "measured on; on posed photos from another dataset an earlier release answered mostly "
                  "\"neutral\".", ""]
    else:
        lines += ["No evaluation results are recorded for these weights.", ""]

    lines += robustness_section(robustness)
    lines += ["## Calibration", ""] + _calibration_section(cal) + [""]
    lines += ["## Explanations: how faithful the heatmaps are", ""] + _faithfulness_section(faithfulness) + [""]

    lines += ["## How to reproduce", ""]
    if training:
        base = training.get("init_release")
        lines += ["```bash"]
        if isinstance(base, dict) and base.get("training"):
            lines += [f"# the release fine-tuned from ({base.get('file')}, sha256 {str(base.get('sha256'))[:12]}...):"]
            lines += _reproduce(base["training"], "BASE_RUN", "BASE")
            lines += ["# then the fine-tuning run:"]
        lines += _reproduce(training, "RUN", "weights") + ["```", ""]
        epoch = (card.get("metrics") or {}).get("epoch")
        planned = training.get("epochs")
        done = training.get("epochs_done")  # epochs the run had trained when it was exported
        if isinstance(epoch, int) and isinstance(planned, int):
            if epoch >= planned:
                how = "the best on PublicTest so far."
            elif isinstance(done, int) and done >= planned:
                how = (f"its best on PublicTest (the run finished all {planned} epochs; the later ones scored "
                       f"lower; the table below counts the epochs up to {epoch}).")
            else:
                how = ("the best on PublicTest so far (an interim checkpoint: export took the run's best epoch "
                       "before it finished).")
            lines.append(f"These weights are epoch {epoch} of that {planned}-epoch run, {how}")
        compute = training.get("compute") or {}
        if compute.get("parts"):
            lines.append("")
            lines.append("| epochs | hardware | precision | hours (training + evaluation) | CPU-hours |")
            lines.append("|---|---|---|---:|---:|")
            for part in compute["parts"]:
                lines.append(f"| {part['first_epoch']}-{part['last_epoch']} | {part['hardware']} | {part['precision']} "
                             f"| {part['hours']:.2f} | {part['cpu_hours']:.2f} |")
            lines.append(f"| **{compute['epochs']}** | | | **{compute['hours']:.2f}** | **{compute['cpu_hours']:.2f}** |")
            lines.append("")
            lines.append("CPU-hours are the training process's CPU time (all threads); with a GPU they count the "
                         "host's share only.")
        else:
            segments = training.get("segments") or []
            hw = sorted({s.get("hardware", {}).get("label", "?") + f" ({s.get('precision', '?')})" for s in segments})
            if hw:
                lines.append("Hardware: " + "; ".join(hw) + ".")
        if training.get("code_version"):
            lines.append(f"Code version {training['code_version']}, torch {training.get('torch', '?')}.")
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["model_card_markdown", "robustness_section", "bootstrap", "failure_modes", "what_a_percentage_means", "split_name", "Interval"]
