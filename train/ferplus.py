"""FER+ relabelling: FER2013's images with the labels of ten annotators each (Barsoum et al. 2016).

The FER+ vote file, ``fer2013new.csv`` (github.com/microsoft/FERPlus), has one row per row of
the original ``fer2013.csv``, in the same order, with the same ``Usage``::

    Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF

Each emotion column counts the annotators (of ~10) who chose it. FER2013's own labels are noisy
(the FER+ authors put human accuracy on them at ~65%); the votes give cleaner labels:

- ``majority``: the emotion with the most votes. An image is dropped when its top count is tied,
  when contempt, "unknown" and "not a face" together got at least as many votes as the top
  emotion (FER2013 has no contempt class), or when FER+ gives it no image name (not a face).
- ``soft``: the vote distribution over the seven emotions as the training target (cross-entropy
  with probabilities); dropped on the same grounds except ties. Accuracy is still counted against
  the majority label, and evaluation (PublicTest) always uses majority labels.

What it changes: both splits are relabelled and a few percent of images dropped, so accuracy on
FER+ labels is not comparable with accuracy on FER2013's labels (models usually score higher:
the labels agree better with themselves). Only the CSV layout can be relabelled: the rows are
matched by position, and the Kaggle folder layout's file names do not say which row an image is.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from fer_demo.model import EMOTIONS
from train.dataset import CSV_SPLITS, DataError, FaceDataset

# FER+ column -> our class; the other vote columns are "not one of the seven".
VOTE_COLUMNS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy", "sadness": "sad",
                "surprise": "surprise", "neutral": "neutral"}
OTHER_COLUMNS = ("contempt", "unknown", "NF")
HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
          "contempt", "unknown", "NF"]
LABEL_MODES = ("majority", "soft")


@dataclass(frozen=True)
class Verdict:
    """What the FER+ rule makes of N images' votes (every caller's one copy of the rule).

    ``label``: int64 (N,), the emotion with the most votes (``EMOTIONS`` order; on a tie the first).
    ``soft``: bool (N,), the votes may serve as a training distribution: the top emotion has at least
    one vote and more votes than contempt + unknown + not-a-face together.
    ``majority``: bool (N,), ``soft`` and the top count is not tied: ``label`` is the FER+ majority.
    """

    label: np.ndarray
    soft: np.ndarray
    majority: np.ndarray

    def kept(self, mode: str) -> np.ndarray:
        """The images a relabelling in ``mode`` ("majority" or "soft") keeps: bool (N,)."""
        if mode not in LABEL_MODES:
            raise DataError(f"Invalid FER+ label mode {mode!r}. Only {', '.join(LABEL_MODES)} are supported.")
        return self.majority if mode == "majority" else self.soft


def judge(votes: np.ndarray, other: np.ndarray) -> Verdict:
    """The FER+ rule on ``votes`` ((N, 7) non-negative counts in ``EMOTIONS`` order, any numeric dtype)
    and ``other`` ((N,) contempt + unknown + not-a-face votes). An image without votes is in neither mask."""
    votes = np.asarray(votes).reshape(-1, len(EMOTIONS))
    top = votes.max(axis=1, initial=0)
    soft = (top > 0) & (np.asarray(other) < top)
    tied = (votes == top[:, None]).sum(axis=1) > 1
    return Verdict(label=votes.argmax(axis=1).astype(np.int64), soft=soft, majority=soft & ~tied)


def read_votes(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of ``split`` in file order: (votes (N, 7) in ``EMOTIONS`` order, other votes (N,),
    named (N,) bool: FER+ gave the image a name, i.e. it is a face)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: FER+ vote file not found (fer2013new.csv from github.com/microsoft/FERPlus)")
    usage = CSV_SPLITS[split]
    votes, other, named = [], [], []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if header != HEADER:
            raise DataError(f"{path}: header must be {','.join(HEADER)} (the FER+ fer2013new.csv), got {header!r}")
        col = {name: i for i, name in enumerate(header)}
        for line, row in enumerate(reader, start=2):
            if len(row) != len(HEADER):
                raise DataError(f"{path}:{line}: expected {len(HEADER)} fields, got {len(row)}")
            if row[0].strip() != usage:
                continue
            try:
                counts = {name: int(float(row[col[name]])) for name in (*VOTE_COLUMNS, *OTHER_COLUMNS)}
            except ValueError:
                raise DataError(f"{path}:{line}: vote counts must be numbers") from None
            if min(counts.values()) < 0:
                raise DataError(f"{path}:{line}: vote counts must not be negative")
            by_emotion = {VOTE_COLUMNS[name]: counts[name] for name in VOTE_COLUMNS}
            votes.append([by_emotion[e] for e in EMOTIONS])
            other.append(sum(counts[name] for name in OTHER_COLUMNS))
            named.append(bool(row[col["Image name"]].strip()))
    return (np.asarray(votes, dtype=np.int64).reshape(-1, len(EMOTIONS)), np.asarray(other, dtype=np.int64),
            np.asarray(named, dtype=bool))


def relabel(data: FaceDataset, path: str | Path, mode: str = "majority") -> FaceDataset:
    """``data`` (a split read from ``fer2013.csv``) with FER+ labels; dropped images removed."""
    if mode not in LABEL_MODES:
        raise DataError(f"Invalid FER+ label mode {mode!r}. Only {', '.join(LABEL_MODES)} are supported.")
    if ".csv:" not in data.source:
        raise DataError(f"FER+ labels need the CSV layout (--data fer2013.csv): its rows are matched by position, "
                        f"and {data.source} is a folder whose file names do not say which row an image is")
    votes, other, named = read_votes(path, data.split)
    if len(votes) != len(data):
        raise DataError(f"{path}: {len(votes)} {CSV_SPLITS[data.split]} rows, but {data.source} has {len(data)}; "
                        "the vote file must be the one published for this fer2013.csv (same rows, same order)")
    verdict = judge(votes, other)
    idx = torch.from_numpy(np.flatnonzero(named & verdict.kept(mode)))
    labels = torch.from_numpy(verdict.label).index_select(0, idx)
    kept_votes = torch.from_numpy(votes).index_select(0, idx).to(torch.float32)
    soft = kept_votes / kept_votes.sum(dim=1, keepdim=True) if mode == "soft" else None
    return replace(data, images=data.images.index_select(0, idx), labels=labels, soft=soft,
                   source=f"{data.source} (FER+ {mode} labels, {len(idx)} of {len(data)} images)")
