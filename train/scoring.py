"""Scoring a whole-pipeline run on labelled photos: every photo counted, a photo without a face wrong.

``score_photos`` turns (true class, predicted class or ``NO_FACE``) per photo into the numbers the
real-photo benchmark reports: accuracy, balanced accuracy (mean per-class recall), per-class recall,
the confusion matrix with a "no face" column, the share of the most-predicted class among the
answers, and how many photos had no face. ``bootstrap_by_group`` gives a percentile interval that
resamples whole groups (films: frames of one film are correlated, so resampling frames would give an
interval that is too narrow). ``film_of`` reads the film from an SFEW-style file name.
The confusion counts come from ``train.metrics.confusion_matrix``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from fer_demo.model import EMOTIONS
from train.metrics import confusion_matrix

# The prediction for a photo in which no face was found (counted as wrong everywhere).
NO_FACE = -1
# SFEW names are <Film>_<frame>_<face>.jpg, and film names contain "_" themselves
# ("HarryPotter_Deathly_Hallows_1_001234560_00000012.jpg"), so the film is the name without its two
# trailing numbers (separators "_" or "-", occasionally doubled), not the text before the first "_".
_FILM = re.compile(r"^(?P<film>.+?)[-_]+\d+_+\d+$")


def film_of(name: str) -> str:
    """The film of an SFEW-style file name: ``"AlexEmma_000225840_00000024.jpg"`` -> ``"AlexEmma"``.

    A name that does not end in two numbers gives the text before its first ``_`` (or the whole stem).
    """
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    m = _FILM.match(stem)
    return m.group("film") if m else stem.split("_", 1)[0]


@dataclass(frozen=True)
class PhotoScore:
    """What a run on labelled photos scored.

    Attributes:
        num_photos: photos scored (every photo, with or without a face).
        accuracy: share of photos whose prediction is their class (no face = wrong).
        balanced_accuracy: mean over classes (with photos) of the per-class recall.
        recall: class name -> recall (share of its photos predicted as it; no face = wrong).
        confusion: (C, C + 1) counts as lists; rows true class, columns predicted class, the last
            column "no face".
        classes: the C class names, in index order.
        no_face: photos in which no face was found; no_face_share: the same as a share of all photos.
        most_predicted: the class predicted most often; most_predicted_share: its share of the
            answers (photos with a face), 0 when there is no answer.
        answered_accuracy: accuracy on the photos with a face (0 when none).
    """

    num_photos: int
    accuracy: float
    balanced_accuracy: float
    recall: dict[str, float]
    confusion: list[list[int]]
    classes: list[str]
    no_face: int
    no_face_share: float
    most_predicted: str
    most_predicted_share: float
    answered_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def _arrays(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size} and {p.size}")
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"true classes must be in [0, {num_classes}), got {t.min()}..{t.max()}")
    if p.size and (p.min() < NO_FACE or p.max() >= num_classes):
        raise ValueError(f"predictions must be in [0, {num_classes}) or NO_FACE ({NO_FACE}), got {p.min()}..{p.max()}")
    return t, p


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Share of exact hits (``NO_FACE`` never hits); 0 for no photos."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float((t == p).mean()) if t.size else 0.0


def balanced_accuracy(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = len(EMOTIONS)) -> float:
    """Mean recall over the classes that have photos (``NO_FACE`` counts as a miss)."""
    t, p = _arrays(y_true, y_pred, num_classes)
    recalls = [float((p[t == c] == c).mean()) for c in range(num_classes) if (t == c).any()]
    return float(np.mean(recalls)) if recalls else 0.0


def score_photos(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str] = EMOTIONS) -> PhotoScore:
    """Score one run: ``y_true`` class indices, ``y_pred`` class indices or ``NO_FACE`` (same length).

    Raises:
        ValueError: lengths differ or an index is out of range.
    """
    n = len(classes)
    t, p = _arrays(y_true, y_pred, n)
    cm = confusion_matrix(t, np.where(p == NO_FACE, n, p), num_classes=n + 1)[:n]  # last column: no face
    support = cm.sum(axis=1)
    recall = {c: float(cm[i, i] / support[i]) if support[i] else 0.0 for i, c in enumerate(classes)}
    answered = p != NO_FACE
    counts = cm[:, :n].sum(axis=0)
    top = int(counts.argmax())
    return PhotoScore(
        num_photos=int(t.size),
        accuracy=accuracy(t, p),
        balanced_accuracy=balanced_accuracy(t, p, n),
        recall=recall,
        confusion=cm.tolist(),
        classes=list(classes),
        no_face=int((~answered).sum()),
        no_face_share=float((~answered).mean()) if t.size else 0.0,
        most_predicted=classes[top],
        most_predicted_share=float(counts[top] / answered.sum()) if answered.any() else 0.0,
        answered_accuracy=accuracy(t[answered], p[answered]),
    )


def bootstrap_by_group(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    groups: Sequence[str],
    statistic: Callable[[np.ndarray, np.ndarray], float] = accuracy,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(y_true, y_pred)`` when whole groups are resampled.

    Each of ``n_boot`` resamples draws as many groups as there are, with replacement, and keeps all
    photos of each drawn group. Returns (low, high) at ``level`` (e.g. 0.95: the 2.5th and 97.5th
    percentiles). Deterministic for a given ``seed``.

    Raises:
        ValueError: lengths differ, no photos, or ``level`` not in (0, 1).
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    g = np.asarray(groups)
    if not (t.shape == p.shape == g.shape) or t.ndim != 1:
        raise ValueError(f"y_true, y_pred and groups must be 1-D of one length, got {t.shape}, {p.shape}, {g.shape}")
    if t.size == 0:
        raise ValueError("no photos to bootstrap")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level} must be in (0, 1)")
    names, inverse = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(names), len(names))])
        stats[b] = statistic(t[idx], p[idx])
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
