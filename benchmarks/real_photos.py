"""The whole pipeline on labelled real photos: the app's own ``Predictor``, every photo counted.

    python benchmarks/real_photos.py --data ../shared/data/sfew-dev [--out sfew.json] [--crops /tmp/crops]

``--data`` is a ``ROOT/<class>/*`` folder of photos (class folders named as ``fer_demo.model.EMOTIONS``;
other folders are an error). Each photo goes through ``Predictor.analyze`` exactly as the app runs it
(default detector settings, no heatmap, no test-time augmentation); the **largest** face of each photo
(box area) is scored (the labelled person is usually the main face) and a photo without a face counts
as wrong. Abstention is off here: the label is scored even when the face's quality assessment would
refuse it (``benchmarks/selective.py`` measures abstention from this script's JSON).

Prints accuracy, balanced accuracy, per-class recall, the confusion matrix (with a "no face" column),
the share of the most-predicted class among the answers, the photos without a face, and 95%
bootstrap intervals that resample whole films (``train.scoring.film_of``: frames of one film are
correlated). ``--out`` writes all of it and one record per photo (file name, film, label, probabilities,
box, quality) as JSON; keep that file out of the repository when the photos' licence says so (SFEW).

Detector settings can be overridden to measure alternatives (``--max-side``, ``--min-face-frac``,
``--min-score``, ``--thresholds``); without them the app's defaults (``fer_demo.limits``,
``fer_demo.detect``) are used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.classify import DEFAULT_WEIGHTS  # noqa: E402
from fer_demo.detect import FaceDetector  # noqa: E402
from fer_demo.model import EMOTIONS  # noqa: E402
from fer_demo.pipeline import Predictor  # noqa: E402
from train.scoring import NO_FACE, accuracy, balanced_accuracy, bootstrap_by_group, film_of, score_photos  # noqa: E402

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def labelled_photos(root: Path) -> list[tuple[Path, int]]:
    """(photo, class index) for every photo under ``root/<class>/``, sorted by path.

    Raises:
        SystemExit: ``root`` is not a folder, has a folder that is not a class, or has no photos.
    """
    if not root.is_dir():
        raise SystemExit(f"--data {root}: not a folder; expected ROOT/<class>/*.jpg with classes {', '.join(EMOTIONS)}")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name not in EMOTIONS:
            raise SystemExit(f"--data {root}: folder {d.name!r} is not a class; only {', '.join(EMOTIONS)} are")
        out += [(f, EMOTIONS.index(d.name)) for f in sorted(d.iterdir()) if f.suffix.lower() in PHOTO_SUFFIXES]
    if not out:
        raise SystemExit(f"--data {root}: no photos in its class folders")
    return out


def largest(faces: list) -> object | None:
    """The face with the largest box area, or None for no faces."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)


def run(predictor: Predictor, photos: list[tuple[Path, int]], crops: Path | None = None,
        progress: bool = True) -> list[dict]:
    """One record per photo: its class, the largest face's label/probabilities/box/quality (or no face)."""
    from PIL import Image

    records = []
    for path, y in tqdm(photos, desc="photos", unit="photo", disable=not progress):
        pred = predictor.analyze(path, cam=None)
        face = largest(pred.faces)
        rec = {"file": f"{path.parent.name}/{path.name}", "film": film_of(path.name), "true": EMOTIONS[y],
               "faces_found": pred.faces_found, "image_size": [int(pred.image.shape[1]), int(pred.image.shape[0])]}
        if face is None:
            rec["pred"] = None
        else:
            rec.update(face.to_dict())
            rec["pred"] = face.label
            if crops is not None:  # the 48x48 face the network saw (before equalisation) and the colour crop
                out = crops / EMOTIONS[y]
                out.mkdir(parents=True, exist_ok=True)
                Image.fromarray(face.aligned).save(out / f"{path.stem}_{face.label}_gray.png")
                Image.fromarray(face.aligned_rgb).save(out / f"{path.stem}_{face.label}_rgb.png")
        records.append(rec)
    return records


def summarise(records: list[dict], n_boot: int = 2000) -> dict:
    """``score_photos`` of the records plus film-bootstrap 95% intervals of accuracy and balanced accuracy."""
    y = np.array([EMOTIONS.index(r["true"]) for r in records])
    p = np.array([NO_FACE if r["pred"] is None else EMOTIONS.index(r["pred"]) for r in records])
    films = np.array([r["film"] for r in records])
    score = score_photos(y, p).to_dict()
    score["films"] = int(len(set(films)))
    score["accuracy_ci95_by_film"] = bootstrap_by_group(y, p, films, accuracy, n_boot)
    score["balanced_accuracy_ci95_by_film"] = bootstrap_by_group(y, p, films, balanced_accuracy, n_boot)
    return score


def report(score: dict) -> str:
    """Markdown text of a ``summarise`` result."""
    lo, hi = score["accuracy_ci95_by_film"]
    blo, bhi = score["balanced_accuracy_ci95_by_film"]
    lines = [
        f"photos: {score['num_photos']} from {score['films']} films",
        f"accuracy: {score['accuracy']:.3f} (95% CI by film {lo:.3f}-{hi:.3f})",
        f"balanced accuracy: {score['balanced_accuracy']:.3f} (95% CI by film {blo:.3f}-{bhi:.3f})",
        f"no face found: {score['no_face']} ({score['no_face_share']:.1%})",
        f"most predicted: {score['most_predicted']} ({score['most_predicted_share']:.1%} of answers)",
        f"accuracy on photos with a face: {score['answered_accuracy']:.3f}",
        "",
        "| class | recall |", "|---|---:|",
        *[f"| {c} | {r:.2f} |" for c, r in score["recall"].items()],
        "",
        "confusion (rows true, columns predicted, last column no face):",
        "| | " + " | ".join(c[:4] for c in score["classes"]) + " | none |",
        "|---|" + "---:|" * (len(score["classes"]) + 1),
        *[f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(score["classes"], score["confusion"])],
    ]
    return "\n".join(lines)


def build_predictor(args: argparse.Namespace) -> Predictor:
    """The app's Predictor, with the detector settings given on the command line (else the app's)."""
    overrides = {k: v for k, v in (("max_side", args.max_side), ("min_face_frac", args.min_face_frac),
                                   ("min_score", args.min_score), ("thresholds", args.thresholds)) if v is not None}
    detector = FaceDetector(**overrides) if overrides else None
    return Predictor(args.weights, detector=detector, abstain=False)  # scored as answered; quality recorded


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="ROOT/<class>/*.jpg folder of labelled photos")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="classifier release (.safetensors)")
    p.add_argument("--out", type=Path, default=None, help="write the scores and one record per photo as JSON")
    p.add_argument("--crops", type=Path, default=None, help="save each scored face as the network saw it here")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the films [2000]")
    p.add_argument("--max-side", type=int, default=None, help="detector: longer side of the detection copy")
    p.add_argument("--min-face-frac", type=float, default=None, help="detector: smallest face / shorter side")
    p.add_argument("--min-score", type=float, default=None, help="detector: final face probability to keep")
    p.add_argument("--thresholds", type=float, nargs=3, default=None, help="detector: MTCNN stage thresholds")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    photos = labelled_photos(args.data)
    predictor = build_predictor(args)
    d = predictor.detector
    settings = {"weights": str(args.weights), "max_side": d.max_side, "min_face_frac": d.min_face_frac,
                "min_score": d.min_score, "thresholds": list(d.thresholds), "autocontrast": d.autocontrast, "face": "largest", "tta": "none"}
    t0 = time.perf_counter()
    records = run(predictor, photos, args.crops, progress=not args.no_progress)
    score = summarise(records, args.bootstrap)
    print(f"settings: {json.dumps(settings)}  ({time.perf_counter() - t0:.0f} s)")
    print(report(score))
    result = {"data": str(args.data), "settings": settings, "score": score, "records": records}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
