"""The face-dataset types every loader shares: ``FaceDataset``, ``DataError``, split and class names.

A module of its own so that the loaders (``train.data`` for FER2013's CSV and folders,
``train.ferplus`` for FER+ votes, ``train.photos`` for photos through the detector) all import
it and none imports another's: ``train.data.load_split`` picks a loader, nothing imports back.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from fer_demo.model import EMOTIONS

# Splits by name: folder layout -> sub-folder, CSV layout -> Usage value.
FOLDER_SPLITS = {"train": "train", "test": "test"}
CSV_SPLITS = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}
# Class folder names other datasets use for the seven expressions (compared case-insensitively):
# RAF-DB / AffectNet / CK+ / JAFFE spellings. Anything else is an error, or skipped with
# ``ignore_classes`` (e.g. AffectNet's and CK+'s "contempt", which FER2013 does not have).
CLASS_ALIASES = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral", "calm": "neutral",
}


def class_of(folder_name: str) -> str | None:
    """The expression a class folder stands for ("Happiness" -> "happy"), or None if unknown."""
    return CLASS_ALIASES.get(folder_name.strip().lower())


class DataError(ValueError):
    """The dataset is not in a layout we can read; the message says what and where."""


@dataclass
class FaceDataset:
    """Decoded faces of one split. ``images``: uint8 (N, 48, 48); ``labels``: int64 (N,);
    ``soft``: float32 (N, 7) label distributions to train on instead (FER+ votes), or None.
    ``paths``: each image's path relative to the folder root (folder layout only), or None."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str  # where it came from, e.g. "fer2013/train" or "fer2013.csv:PublicTest"
    split: str
    soft: torch.Tensor | None = None
    paths: tuple[str, ...] | None = None

    def subset(self, idx: torch.Tensor, source: str) -> FaceDataset:
        """The samples ``idx`` (in that order), as a dataset from ``source``."""
        return FaceDataset(self.images[idx], self.labels[idx], source, self.split,
                           self.soft[idx] if self.soft is not None else None,
                           tuple(self.paths[i] for i in idx.tolist()) if self.paths is not None else None)

    def targets(self, idx: torch.Tensor) -> torch.Tensor:
        """What the loss compares with: the soft labels where there are some, else the labels."""
        return self.soft[idx] if self.soft is not None else self.labels[idx]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(EMOTIONS)).tolist()

    def fingerprint(self) -> str:
        """sha256 over the sorted per-sample (label, pixels) digests: the same samples give the
        same string in any order and either layout (CSV or lossless PNG folders)."""
        labels = self.labels.numpy().astype("<i8")
        images = self.images.numpy()
        soft = self.soft.numpy().astype("<f4") if self.soft is not None else None
        digests = sorted(hashlib.sha256(labels[i].tobytes() + images[i].tobytes()
                                        + (soft[i].tobytes() if soft is not None else b"")).digest()
                         for i in range(len(labels)))
        return hashlib.sha256(b"".join(digests)).hexdigest()


def labelled_files(split_dir: Path, root: Path, suffixes: set[str], ignore_classes: bool = False
                   ) -> tuple[list[Path], list[int]]:
    """The image files of ``split_dir/<class>/`` and their labels (indices into ``EMOTIONS``).

    Class folders are named after ``EMOTIONS`` or an alias (``CLASS_ALIASES``); an unknown one
    is a ``DataError`` listing the accepted names, or skipped with a warning when
    ``ignore_classes``. No image at all is a ``DataError`` too.
    """
    if not split_dir.is_dir():
        raise DataError(f"{root}: missing split folder {split_dir.name}/ (expected {root}/train/ and {root}/test/)")
    class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
    unknown = [p.name for p in class_dirs if class_of(p.name) is None]
    if unknown and not ignore_classes:
        raise DataError(f"{split_dir}: unknown class folder(s) {unknown}; expected the expressions {list(EMOTIONS)} "
                        f"or an alias ({', '.join(sorted(set(CLASS_ALIASES) - set(EMOTIONS)))}); "
                        "--ignore-classes skips the others")
    if unknown:
        warnings.warn(f"{split_dir}: skipped class folder(s) {unknown} (not one of the 7 expressions)", stacklevel=3)
    files: list[Path] = []
    labels: list[int] = []
    for d in class_dirs:
        name = class_of(d.name)
        if name is None:
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in suffixes:
                files.append(f)
                labels.append(EMOTIONS.index(name))
    if not files:
        raise DataError(f"{split_dir}: no image files ({', '.join(sorted(suffixes))}) in any class folder")
    return files, labels
