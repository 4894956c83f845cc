"""A release's robustness report: real photos, PublicTest under FER+ labels, corruptions, abstention.

    python -m train robustness --weights weights/fer_vgg19.safetensors --data ../shared/data/fer2013 \
        --votes ../shared/data/ferplus/votes.csv --photos ../shared/data/sfew-dev

``measure`` runs each part whose data is given and ``write_robustness`` writes the result as
``robustness.json`` beside the weights, where the model card (``fer_demo.model_card``) and the app's
Model page read it:

- ``photos`` (``--photos ROOT/<class>/*``): the whole pipeline, the app's own ``Predictor`` with its
  default settings and abstention off, the largest face per photo, a photo without a face counted
  wrong (``train.real_photos``): accuracy, balanced accuracy with 95% bootstrap intervals by film,
  per-class recall, confusion, most-predicted share, photos without a face; and abstention
  (``train.selective``): the release's "no clear expression" floors chosen on these photos' faces
  (``choose``, on top of the quality floors of ``fer_demo.quality.DEFAULT_THRESHOLDS``), how that
  choice does on films it was not chosen on (``cross_validate``), and the risk-coverage curves at them.
  ``python -m train robustness`` writes the chosen floors into the release's card (``abstention``),
  where the app reads them (``fer_demo.quality.card_thresholds``).
- ``publictest`` (``--data``, FER2013 folder root): the served classifier, no test-time augmentation,
  scored against FER2013's labels and (``--votes``) the FER+ majority labels; abstention there (at the
  floors chosen on the photos, or the card's own without ``--photos``).
- ``corruptions`` (``--data``; ``corruption_faces=0`` skips it): accuracy per corruption and strength,
  the means, and the clean accuracy of the same faces (``train.publictest``).

Summary numbers only: no per-photo record and no file name is kept (SFEW's licence), and data
folders are named by their last two path parts, not by the machine's full path. The report says
which data and how many photos/faces, the command, the date, the hardware and each part's seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fer_demo.quality import QualityThresholds

ROBUSTNESS_NAME = "robustness.json"
FORMAT = 1


@dataclass(frozen=True)
class RobustnessReport:
    """What ``measure`` found; any part is None when its data was not given.

    Attributes:
        weights: the release's file name.
        command: the command line that measured it.
        date: UTC time the measurement finished (ISO 8601).
        hardware: ``train.hardware.Hardware`` as a dict (CPU name, cores, ISA, threads).
        thresholds: the quality thresholds abstention was measured at (``fer_demo.quality``): with
            photos, the floors chosen on them; without, the release card's.
        seconds: part name -> seconds it took.
        photos / publictest / corruptions: the parts (see the module docstring).
    """

    weights: str
    command: str
    date: str
    hardware: dict
    thresholds: dict
    seconds: dict[str, float] = field(default_factory=dict)
    photos: dict | None = None
    publictest: dict | None = None
    corruptions: dict | None = None
    format: int = FORMAT

    def to_dict(self) -> dict:
        return asdict(self)


def data_name(path: str | Path) -> str:
    """A data folder named without the machine's path: its last two parts (``data/sfew-dev``)."""
    parts = Path(path).resolve().parts
    return "/".join(parts[-2:])


def measure_photos(weights: str | Path, photos: str | Path, base: QualityThresholds, progress: bool = True,
                   n_boot: int = 2000) -> tuple[dict, QualityThresholds]:
    """The ``photos`` part for a ``ROOT/<class>/*`` folder of photos: score, settings and abstention,
    and the ``fer_demo.quality.QualityThresholds`` chosen on its faces (``base``'s quality floors with
    the release's own confidence and margin floors, ``train.selective.choose``)."""
    from fer_demo.pipeline import Predictor
    from train.real_photos import labelled_photos, run_photos, summarise
    from train.selective import photo_choice, photo_selective

    listed = labelled_photos(photos)
    predictor = Predictor(weights, abstain=False)  # scored as answered; each face's quality recorded
    d = predictor.detector
    records = run_photos(predictor, listed, progress=progress)
    score = summarise(records, n_boot)
    chosen, choice = photo_choice(records, base)
    selective = {**photo_selective(records, chosen), "choice": choice}
    found = sum(1 for r in records if r["pred"] is not None)
    return {"data": data_name(photos), "photos": len(records), "photos_with_a_face": found,
            "settings": {"max_side": d.max_side, "min_face_frac": d.min_face_frac, "min_score": d.min_score,
                         "thresholds": list(d.thresholds), "autocontrast": d.autocontrast, "face": "largest",
                         "tta": "none", "abstain": False},
            "score": score, "selective": selective}, chosen


def measure(weights: str | Path, data: str | Path | None = None, votes: str | Path | None = None,
            photos: str | Path | None = None, corruption_faces: int | None = None, seed: int = 0,
            progress: bool = True, n_boot: int = 2000, command: str | None = None) -> RobustnessReport:
    """Measure the release ``weights`` on whatever data is given (see the module docstring).

    Args:
        data: FER2013 folder root (``test/<class>/*``): the ``publictest`` and ``corruptions`` parts.
        votes: path-keyed FER+ votes (``votes.csv``): the FER+ row of ``publictest`` (needs ``data``).
        photos: ``ROOT/<class>/*`` folder of labelled photos: the ``photos`` part.
        corruption_faces: corrupt a class-stratified subset of this many PublicTest faces (None: all;
            0: skip the corruptions).
        command: recorded as the command (default: this process's command line).

    Raises:
        ValueError: nothing to measure (no ``data`` and no ``photos``), or ``votes`` without ``data``.
        train.dataset.DataError, fer_demo.weights.ModelFileError: unreadable data or weights.
    """
    from fer_demo.quality import DEFAULT_THRESHOLDS, card_thresholds
    from fer_demo.weights import card_path
    from train.hardware import describe

    if data is None and photos is None:
        raise ValueError("nothing to measure: give the FER2013 folder (--data), labelled photos (--photos) or both")
    if votes is not None and data is None:
        raise ValueError("--votes scores PublicTest against FER+ labels: it needs the FER2013 folder (--data) too")
    thresholds = card_thresholds(json.loads(card_path(weights).read_text()))
    seconds: dict[str, float] = {}
    parts: dict[str, dict | None] = {"photos": None, "publictest": None, "corruptions": None}
    if photos is not None:
        t0 = time.perf_counter()
        parts["photos"], thresholds = measure_photos(weights, photos, DEFAULT_THRESHOLDS, progress, n_boot)
        seconds["photos"] = round(time.perf_counter() - t0, 1)
    if data is not None:
        import numpy as np

        from fer_demo.classify import EmotionClassifier
        from train.data import load_split
        from train.publictest import clean_scores, corruption_table, ferplus_majority, predict_probs, stratified
        from train.selective import publictest_selective

        t0 = time.perf_counter()
        split = load_split(data, "test", progress=progress)
        faces, labels = split.images.numpy(), split.labels.numpy()
        clf = EmotionClassifier(weights)
        probs = predict_probs(clf, faces)
        pred = probs.argmax(axis=1)
        fp = ferplus_majority(data, votes) if votes is not None else None
        parts["publictest"] = {"data": data_name(Path(data) / "test"), "faces": int(len(labels)), "tta": "none",
                               "votes": None if votes is None else data_name(votes),
                               "clean": clean_scores(pred, labels, fp),
                               "selective": publictest_selective(faces, labels, probs, thresholds)}
        seconds["publictest"] = round(time.perf_counter() - t0, 1)
        if corruption_faces != 0:
            t0 = time.perf_counter()
            idx = stratified(labels, corruption_faces, seed) if corruption_faces else np.arange(len(labels))
            table = corruption_table(clf, faces[idx], labels[idx], seed, progress)
            table["clean_accuracy"] = float((pred[idx] == labels[idx]).mean())
            table["subset"] = "all" if corruption_faces is None else f"class-stratified, seed {seed}"
            parts["corruptions"] = table
            seconds["corruptions"] = round(time.perf_counter() - t0, 1)
    return RobustnessReport(
        weights=Path(weights).name,
        command=command or "python -m train " + shlex.join(sys.argv[1:]),
        date=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        hardware=asdict(describe()), thresholds=asdict(thresholds), seconds=seconds, **parts)


def write_chosen_thresholds(weights: str | Path, report: RobustnessReport | dict) -> Path | None:
    """Write the abstention floors ``report`` chose on its photos into the release's card
    (``abstention``: the floors, where and how they were chosen, the cross-validated estimate), where
    ``fer_demo.quality.card_thresholds`` reads them. None (card unchanged) when no photos were measured."""
    from fer_demo.weights import ModelCard, card_path, write_card

    r = report.to_dict() if isinstance(report, RobustnessReport) else report
    if not r.get("photos"):
        return None
    choice = r["photos"]["selective"]["choice"]
    chosen = r["photos"]["selective"]["chosen"]
    card = ModelCard.from_dict(json.loads(card_path(weights).read_text()))
    section = {"thresholds": choice["thresholds"], "chosen_on": r["photos"]["data"],
               "faces": r["photos"]["selective"]["faces"], "rule": choice["rule"], "date": r["date"],
               "in_sample": {k: chosen[k] for k in ("coverage", "answered_accuracy", "gain_points")},
               "cross_validated": choice["cross_validated"]}
    return write_card(weights, replace(card, extra={**card.extra, "abstention": section}))


def write_robustness(weights: str | Path, report: RobustnessReport) -> Path:
    """``robustness.json`` beside ``weights`` (written whole, atomically)."""
    from fer_demo.weights import atomic_write

    out = Path(weights).parent / ROBUSTNESS_NAME
    text = json.dumps(report.to_dict(), indent=1) + "\n"
    atomic_write(out, lambda p: Path(p).write_text(text))
    return out


def read_robustness(weights: str | Path) -> dict | None:
    """The ``robustness.json`` beside ``weights``, or None when there is none.

    Raises:
        ValueError: the file exists but is not a JSON object (measure it again: ``python -m train robustness``).
    """
    path = Path(weights).parent / ROBUSTNESS_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); measure it again with python -m train robustness") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def summary_lines(report: RobustnessReport | dict) -> list[str]:
    """A few lines for the terminal: the headline numbers of each part measured."""
    r = report.to_dict() if isinstance(report, RobustnessReport) else report
    out = []
    if r.get("photos"):
        s = r["photos"]["score"]
        lo, hi = s["accuracy_ci95_by_film"]
        c = r["photos"]["selective"]["chosen"]
        out.append(f"{r['photos']['data']}: {s['num_photos']} photos, accuracy {s['accuracy']:.3f} "
                   f"(95% CI by film {lo:.3f}-{hi:.3f}), balanced {s['balanced_accuracy']:.3f}, no face "
                   f"{s['no_face_share']:.1%}, most predicted {s['most_predicted']} {s['most_predicted_share']:.1%}; "
                   f"abstention answers {c['coverage']:.1%} of faces at {c['answered_accuracy']:.3f}")
    if r.get("publictest"):
        p = r["publictest"]
        c = p["clean"]
        line = f"PublicTest ({p['faces']} faces): FER2013 labels {c['fer2013_labels']['accuracy']:.4f}"
        if "ferplus_majority" in c:
            line += f", FER+ majority {c['ferplus_majority']['accuracy']:.4f} ({c['ferplus_majority']['faces']} faces)"
        ch = p["selective"]["chosen"]
        out.append(line + f"; abstention answers {ch['coverage']:.1%} at {ch['answered_accuracy']:.4f}")
    if r.get("corruptions"):
        k = r["corruptions"]
        out.append(f"corruptions ({k['faces']} faces, clean {k['clean_accuracy']:.3f}): mean "
                   f"{k['mean_corruption_accuracy']:.3f}")
    out.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in r.get("seconds", {}).items()))
    return out


__all__ = ["ROBUSTNESS_NAME", "RobustnessReport", "measure", "measure_photos", "write_robustness",
           "write_chosen_thresholds", "read_robustness", "summary_lines", "data_name"]
