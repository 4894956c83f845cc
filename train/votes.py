"""FER+ labels for the FER2013 *folder* layout, from a path-keyed vote file.

``train.ferplus`` relabels ``fer2013.csv`` by row position (FER+'s own ``fer2013new.csv``). A folder
copy of FER2013 has no row numbers, so its votes come keyed by path instead::

    path,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF,...
    test/angry/PublicTest_10813312.jpg,angry,3,0,0,0,6,1,0,0,0,0,...

(``path`` relative to the folder root). The majority rule is ``train.ferplus.judge`` (one copy for
both layouts): the emotion with the most votes; no label when the top count is tied, or when
contempt + unknown + not-a-face got at least as many votes as the top emotion.

``relabel_folder`` gives a training split the labels to learn from: the FER+ majority, the vote
distribution ("soft"), or a "mix" of the FER2013 label and the vote distribution.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from fer_demo.model import EMOTIONS
import numpy as np
import torch

from train.dataset import DataError, FaceDataset
from train.ferplus import OTHER_COLUMNS, VOTE_COLUMNS, judge


LABEL_MODES = ("majority", "soft", "mix")


def read_vote_table(path: str | Path) -> dict[str, tuple[list[int], int]]:
    """``path`` column -> (the 7 emotions' vote counts in ``EMOTIONS`` order, contempt + unknown + not-a-face votes).

    Raises:
        DataError: the file is missing or lacks the vote columns, or a count is not a non-negative number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: FER+ vote file not found (a CSV with path and the ten FER+ vote columns)")
    by_emotion = {e: c for c, e in VOTE_COLUMNS.items()}
    out: dict[str, tuple[list[int], int]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"path", *VOTE_COLUMNS, *OTHER_COLUMNS}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; needs path and the FER+ vote columns")
        for line, row in enumerate(reader, start=2):
            try:
                votes = [int(float(row[by_emotion[e]])) for e in EMOTIONS]
                other = sum(int(float(row[c])) for c in OTHER_COLUMNS)
            except ValueError:
                raise DataError(f"{path}:{line}: vote counts must be numbers") from None
            if min(votes) < 0 or other < 0:
                raise DataError(f"{path}:{line}: vote counts must not be negative")
            out[row["path"]] = (votes, other)
    return out


def is_path_keyed(path: str | Path) -> bool:
    """Whether ``path`` is a vote file keyed by image path (a CSV whose first column is ``path``)."""
    try:
        with Path(path).open(newline="") as fh:
            return next(csv.reader(fh), [""])[0].strip() == "path"
    except OSError:
        return False


def relabel_folder(data: FaceDataset, path: str | Path, mode: str = "majority", mix: float = 0.5) -> FaceDataset:
    """``data`` (a split read from the folder layout, with ``paths``) with labels from the votes in ``path``.

    - "majority": the FER+ majority class; images with no majority (or no votes) are dropped.
    - "soft": train on the 7 emotions' vote distribution; images with no emotion vote are dropped.
    - "mix": ``(1 - mix) * one-hot(FER2013 label) + mix * vote distribution``; images without
      votes keep their one-hot label, and ``labels`` stay FER2013's (class weights, accuracy).

    Raises:
        DataError: an unknown mode, ``mix`` outside [0, 1], a dataset without paths, or no image with votes.
    """
    if mode not in LABEL_MODES:
        raise DataError(f"Invalid FER+ label mode {mode!r}. Only {', '.join(LABEL_MODES)} are supported.")
    if not 0.0 <= mix <= 1.0:
        raise DataError(f"ferplus_mix={mix!r}: the share of the vote distribution must lie in [0, 1]")
    if data.paths is None:
        raise DataError(f"{data.source}: FER+ votes by path need the folder layout (no image paths here)")
    table = read_vote_table(path)
    n, k = len(data), len(EMOTIONS)
    votes = np.zeros((n, k), dtype=np.float32)
    has = np.zeros(n, dtype=bool)
    other = np.zeros(n, dtype=np.int64)
    for i, p in enumerate(data.paths):
        if p in table:
            v, o = table[p]
            votes[i], other[i], has[i] = v, o, sum(v) > 0
    if not has.any():
        raise DataError(f"{path}: none of the {n} images of {data.source} has votes (paths must be relative to the "
                        f"folder root, e.g. {data.paths[0] if n else 'train/angry/x.jpg'})")
    if mode == "mix":
        soft = np.eye(k, dtype=np.float32)[data.labels.numpy()]
        dist = votes[has] / votes[has].sum(axis=1, keepdims=True)
        soft[has] = (1.0 - mix) * soft[has] + mix * dist
        return replace(data, soft=torch.from_numpy(soft),
                       source=f"{data.source} (FER2013 labels mixed {mix:g} with FER+ votes for {int(has.sum())} "
                              f"of {n} images)")
    verdict = judge(votes, other)  # an image without votes is in neither of its masks
    keep = verdict.kept(mode)
    idx = torch.from_numpy(np.flatnonzero(keep))
    out = data.subset(idx, f"{data.source} (FER+ {mode} labels, {len(idx)} of {n} images)")
    labels = torch.from_numpy(verdict.label[keep])
    soft = torch.from_numpy(votes[keep] / votes[keep].sum(axis=1, keepdims=True)) if mode == "soft" else None
    return replace(out, labels=labels, soft=soft)


def majority_labels(path: str | Path) -> dict[str, int | None]:
    """``path`` column -> FER+ majority class index (``EMOTIONS`` order), or None where there is no majority.

    Raises:
        DataError: the file is missing or lacks the vote columns, or a count is not a number.
    """
    table = read_vote_table(path)
    votes = np.array([v for v, _ in table.values()], dtype=np.int64).reshape(-1, len(EMOTIONS))
    verdict = judge(votes, np.array([o for _, o in table.values()], dtype=np.int64))
    return {key: int(label) if ok else None for key, label, ok in zip(table, verdict.label, verdict.majority)}
