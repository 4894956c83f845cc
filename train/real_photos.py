"""The whole pipeline on labelled real photos: the app's own ``Predictor``, every photo counted.

``labelled_photos`` lists a ``ROOT/<class>/*`` folder (class folders named as
``fer_demo.model.EMOTIONS``); ``run_photos`` sends each photo through ``Predictor.analyze`` exactly as
the app does (no heatmap) and keeps the **largest** face of each photo (box area: the labelled person
is usually the main face), a photo without a face recorded as such; ``summarise`` scores the records
(``train.scoring.score_photos``: a photo without a face is wrong) and adds 95% bootstrap intervals that
resample whole films (``train.scoring.film_of``: frames of one film are correlated). ``report`` words
a summary as Markdown. Shared by ``benchmarks/real_photos.py`` and ``python -m train robustness``.

The records hold file names and per-photo answers: they stay in memory or in a file the caller
chooses, never beside a release (SFEW's licence); ``summarise`` returns numbers only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fer_demo.model import EMOTIONS
from train.dataset import DataError
from train.scoring import NO_FACE, accuracy, balanced_accuracy, bootstrap_by_group, film_of, score_photos

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def labelled_photos(root: str | Path) -> list[tuple[Path, int]]:
    """(photo, class index) for every photo under ``root/<class>/``, sorted by path.

    Raises:
        DataError: ``root`` is not a folder, has a folder that is not a class, or has no photos.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected ROOT/<class>/*.jpg with classes {', '.join(EMOTIONS)}")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name not in EMOTIONS:
            raise DataError(f"{root}: folder {d.name!r} is not a class; only {', '.join(EMOTIONS)} are")
        out += [(f, EMOTIONS.index(d.name)) for f in sorted(d.iterdir()) if f.suffix.lower() in PHOTO_SUFFIXES]
    if not out:
        raise DataError(f"{root}: no photos in its class folders ({', '.join(sorted(PHOTO_SUFFIXES))})")
    return out


def largest(faces: list) -> Any | None:
    """The face with the largest box area, or None for no faces."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)


def run_photos(predictor, photos: list[tuple[Path, int]], crops: Path | None = None,
               progress: bool = True) -> list[dict]:
    """One record per photo: file, film, true class, faces found, image size, and the largest face's
    ``FaceResult.to_dict()`` with ``pred`` (its label; None when no face was found).

    ``predictor``: a ``fer_demo.pipeline.Predictor`` (best with ``abstain=False``: the label is then
    the model's answer, and the face's quality is still recorded). ``crops``: save each scored face
    as the network saw it (48x48 grey, before equalisation, and the colour crop) under
    ``crops/<class>/``.
    """
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
            if crops is not None:
                out = Path(crops) / EMOTIONS[y]
                out.mkdir(parents=True, exist_ok=True)
                Image.fromarray(face.aligned).save(out / f"{path.stem}_{face.label}_gray.png")
                Image.fromarray(face.aligned_rgb).save(out / f"{path.stem}_{face.label}_rgb.png")
        records.append(rec)
    return records


def summarise(records: list[dict], n_boot: int = 2000) -> dict:
    """``score_photos`` of the records plus ``films`` and film-bootstrap 95% intervals of accuracy
    (``accuracy_ci95_by_film``) and balanced accuracy (``balanced_accuracy_ci95_by_film``), as
    [low, high]. Numbers and class names only: no file names.

    Raises:
        ValueError: no records.
    """
    if not records:
        raise ValueError("no photo records to summarise")
    y = np.array([EMOTIONS.index(r["true"]) for r in records])
    p = np.array([NO_FACE if r["pred"] is None else EMOTIONS.index(r["pred"]) for r in records])
    films = np.array([r["film"] for r in records])
    score = score_photos(y, p).to_dict()
    score["films"] = int(len(set(films)))
    score["accuracy_ci95_by_film"] = list(bootstrap_by_group(y, p, films, accuracy, n_boot))
    score["balanced_accuracy_ci95_by_film"] = list(bootstrap_by_group(y, p, films, balanced_accuracy, n_boot))
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


__all__ = ["PHOTO_SUFFIXES", "labelled_photos", "largest", "run_photos", "summarise", "report"]
