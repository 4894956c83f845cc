"""PublicTest through the served classifier: clean (FER2013 and FER+ majority labels) and corrupted.

The classifier path only (PublicTest faces are already 48x48 crops, no detection), batched, exactly
as served: ``EmotionClassifier.predict`` with no test-time augmentation, i.e. the app's preprocessing
(``fer_demo.transforms.eval_transform``) after any corruption. ``predict_probs`` gives the calibrated
probabilities once; ``clean_scores`` scores them against FER2013's labels and, given the path-keyed
FER+ votes (``train.votes``), against the FER+ majority of the faces that have one (the two label
sets disagree on a third of faces, so they are never mixed); ``corruption_table`` scores the faces
under every corruption of ``train.corruptions`` at each strength, deterministically (seeded), with
the mean per corruption and over all. ``stratified`` picks a class-stratified subset for a quicker
estimate. Shared by ``benchmarks/corruptions.py`` and ``python -m train robustness``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from train.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from train.data import IMAGE_SUFFIXES, labelled_files
from train.dataset import DataError
from train.votes import majority_labels


def predict_probs(clf, faces: np.ndarray, batch: int = 512) -> np.ndarray:
    """Calibrated probabilities (N, C) of uint8 (N, 48, 48) faces from an ``EmotionClassifier``, in batches."""
    if len(faces) == 0:
        return np.zeros((0, len(clf.classes)), np.float32)
    return np.concatenate([clf.predict(faces[i:i + batch]) for i in range(0, len(faces), batch)])


def stratified(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of a random subset of about ``n`` faces with the classes in their proportions (sorted)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, max(1, round(n * len(idx) / len(labels))), replace=False))
    return np.sort(np.concatenate(keep))


def ferplus_majority(data_root: str | Path, votes: str | Path, split: str = "test") -> np.ndarray:
    """FER+ majority class per face of ``data_root/<split>/`` in ``train.data.load_split``'s order
    (sorted files), -1 where the votes have no majority or no row.

    Raises:
        DataError: the votes file is unreadable (``train.votes``) or the folder has no images.
    """
    root = Path(data_root)
    files, _ = labelled_files(root / split, root, IMAGE_SUFFIXES)
    table = majority_labels(votes)
    out = [table.get(f.relative_to(root).as_posix()) for f in files]
    return np.array([-1 if v is None else v for v in out], dtype=np.int64)


def clean_scores(pred: np.ndarray, labels: np.ndarray, ferplus: np.ndarray | None = None) -> dict:
    """``fer2013_labels`` (accuracy, faces) and, with ``ferplus`` (-1 = no majority), ``ferplus_majority``.

    Raises:
        DataError: ``ferplus`` does not have one entry per face (the votes cannot be matched).
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    out = {"fer2013_labels": {"accuracy": float((pred == labels).mean()) if labels.size else 0.0,
                              "faces": int(labels.size)}}
    if ferplus is not None:
        fp = np.asarray(ferplus)
        if fp.shape != labels.shape:
            raise DataError(f"{fp.size} FER+ labels for {labels.size} faces: cannot match the votes to the faces")
        has = fp >= 0
        out["ferplus_majority"] = {"accuracy": float((pred[has] == fp[has]).mean()) if has.any() else 0.0,
                                   "faces": int(has.sum())}
    return out


def corruption_table(clf, faces: np.ndarray, labels: np.ndarray, seed: int = 0, progress: bool = True) -> dict:
    """Accuracy under each corruption and strength: ``{"corruptions": {name: {"by_severity": {"1": acc,
    ...}, "mean": m}}, "mean_corruption_accuracy": mean of the means, "faces": N}``. The k-th
    (corruption, strength) run uses seed ``seed * 1000 + k`` (as ``benchmarks/corruptions.py`` always has)."""
    table: dict[str, dict] = {}
    jobs = [(name, s) for name in CORRUPTIONS for s in SEVERITIES]
    for k, (name, s) in enumerate(tqdm(jobs, desc="corruptions", unit="run", disable=not progress)):
        bad = corrupt(faces, name, s, seed=seed * 1000 + k)
        acc = float((predict_probs(clf, bad).argmax(axis=1) == labels).mean())
        table.setdefault(name, {"by_severity": {}})["by_severity"][str(s)] = acc
    for row in table.values():
        row["mean"] = float(np.mean(list(row["by_severity"].values())))
    return {"corruptions": table, "mean_corruption_accuracy": float(np.mean([r["mean"] for r in table.values()])),
            "faces": int(len(labels))}


def corruption_markdown(table: dict) -> str:
    """The markdown table ``benchmarks/corruptions.py`` prints: one row per corruption, then the mean of all."""
    lines = ["| corruption | " + " | ".join(f"strength {s}" for s in SEVERITIES) + " | mean |",
             "|---|" + "---:|" * (len(SEVERITIES) + 1)]
    for name, row in table["corruptions"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row['by_severity'][str(s)]:.3f}" for s in SEVERITIES)
                     + f" | {row['mean']:.3f} |")
    lines.append("| **mean of all** |" + " |" * len(SEVERITIES) + f" **{table['mean_corruption_accuracy']:.3f}** |")
    return "\n".join(lines)


__all__ = ["predict_probs", "stratified", "ferplus_majority", "clean_scores", "corruption_table", "corruption_markdown"]
