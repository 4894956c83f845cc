"""FER2013 loaders for both layouts people download, decoded once into memory.

- the original CSV ``emotion,pixels,Usage`` (2,304 space-separated pixels per row);
- the Kaggle image folders ``<root>/{train,test}/<class>/*.{jpg,png}``.

Both give a ``FaceDataset`` (``train.dataset``): uint8 images (N, 48, 48) and int64 labels (N,) in the
canonical order of ``fer_demo.model.EMOTIONS``.
"""

from __future__ import annotations

import csv
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from fer_demo.model import EMOTIONS, FACE_SIZE
from train.dataset import (CLASS_ALIASES, CSV_SPLITS, FOLDER_SPLITS, DataError, FaceDataset,  # noqa: F401 (re-exported)
                           class_of, labelled_files)
from train.ferplus import relabel
from train.photos import load_photo_folder
from train.votes import is_path_keyed, relabel_folder

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
CSV_HEADER = ["emotion", "pixels", "Usage"]
# Refuse a split when more than this fraction of its images cannot be read.
MAX_BAD_FRACTION = 0.01


def load_split(root: str | Path, split: str, progress: bool = True, ignore_classes: bool = False,
               faces: str = "cropped", ferplus: str | Path | None = None, ferplus_labels: str = "majority",
               ferplus_mix: float = 0.5) -> FaceDataset:
    """Load ``split`` from a folder root or a CSV file, whichever ``root`` is.

    ``faces``: "cropped" (the images are face crops, FER2013's way) or "detect" (folders of
    photos: each goes through the app's detector and aligner once, cached; ``train.photos``).
    ``ferplus``: FER+ votes to relabel the split with: FER+'s ``fer2013new.csv`` for a
    ``fer2013.csv`` (matched by row; ``ferplus_labels`` "majority" or "soft"; ``train.ferplus``),
    or a path-keyed ``votes.csv`` for the folder layout (``train.votes``; "majority", "soft", or
    "mix": ``ferplus_mix`` of the vote distribution mixed into the FER2013 one-hot label).
    """
    root = Path(root)
    if faces not in ("cropped", "detect"):
        raise DataError(f"Invalid faces mode {faces!r}. Only 'cropped' and 'detect' are supported.")
    if ferplus is not None and root.is_dir() and faces == "cropped" and is_path_keyed(ferplus):
        return relabel_folder(load_folder(root, split, progress=progress, ignore_classes=ignore_classes), ferplus,
                              ferplus_labels, ferplus_mix)
    if ferplus is not None:
        if ferplus_labels == "mix":
            raise DataError("--ferplus-labels mix needs a path-keyed votes.csv and the folder layout "
                            "(e.g. ../shared/data/ferplus/votes.csv with ../shared/data/fer2013)")
        if not (root.is_file() and root.suffix.lower() == ".csv"):
            raise DataError(f"FER+ labels need the CSV layout (--data fer2013.csv), not {root}: the vote file's rows "
                            "are matched by position, and folder file names do not say which row an image is")
        return relabel(load_csv(root, split, progress=progress), ferplus, ferplus_labels)
    if root.is_file() and root.suffix.lower() == ".csv":
        return load_csv(root, split, progress=progress)
    if root.is_dir() and faces == "detect":
        return load_photo_folder(root, split, progress=progress, ignore_classes=ignore_classes)
    if root.is_dir():
        return load_folder(root, split, progress=progress, ignore_classes=ignore_classes)
    raise DataError(f"{root}: not a FER2013 CSV file nor a folder with train/ and test/ sub-folders")


def _decode(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if im.size != (FACE_SIZE, FACE_SIZE):
                im = im.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def load_folder(root: str | Path, split: str, progress: bool = True, ignore_classes: bool = False) -> FaceDataset:
    """Read ``<root>/<split>/<class>/*.{jpg,png}`` (Kaggle layout, or any labelled face folders) into memory.

    Class folders are named after ``EMOTIONS`` or an alias (``CLASS_ALIASES``: "happiness",
    "Anger", "surprised", ...); missing classes are allowed (an evaluation set may lack one),
    unknown ones are an error listing the accepted names, or are skipped with a warning when
    ``ignore_classes``. Images of any size and colour are converted to gray and resized to
    48x48. Unreadable images are skipped with a warning, unless more than 1% are bad.
    """
    root = Path(root)
    if split not in FOLDER_SPLITS:
        raise DataError(f"Invalid split {split!r} for the folder layout. Only {sorted(FOLDER_SPLITS)} exist.")
    split_dir = root / FOLDER_SPLITS[split]
    files, labels = labelled_files(split_dir, root, IMAGE_SUFFIXES, ignore_classes)
    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(tqdm(pool.map(_decode, files), total=len(files), desc=f"decode {split_dir.name}",
                            unit="img", disable=not progress))
    bad = [str(f) for f, a in zip(files, decoded) if a is None]
    if len(bad) > MAX_BAD_FRACTION * len(files):
        raise DataError(f"{split_dir}: {len(bad)} of {len(files)} images are unreadable (more than "
                        f"{MAX_BAD_FRACTION:.0%}); first: {bad[:3]}")
    if bad:
        warnings.warn(f"{split_dir}: skipped {len(bad)} unreadable image(s): {bad[:5]}", stacklevel=2)
    keep = [i for i, a in enumerate(decoded) if a is not None]
    images = torch.from_numpy(np.stack([decoded[i] for i in keep]))
    return FaceDataset(images, torch.tensor([labels[i] for i in keep], dtype=torch.int64),
                       source=str(split_dir), split=split,
                       paths=tuple(files[i].relative_to(root).as_posix() for i in keep))


def load_csv(path: str | Path, split: str, progress: bool = True) -> FaceDataset:
    """Read the rows of ``split`` (train/test/private = Training/PublicTest/PrivateTest).

    Every row of the requested split is checked (other rows only for their Usage): a wrong header, a label outside 0-6, a pixel count other than
    2,304 or a non-integer pixel raises ``DataError`` naming the line.
    """
    path = Path(path)
    if split not in CSV_SPLITS:
        raise DataError(f"Invalid split {split!r} for the CSV layout. Only {sorted(CSV_SPLITS)} exist.")
    usage = CSV_SPLITS[split]
    n_pixels = FACE_SIZE * FACE_SIZE
    images: list[np.ndarray] = []
    labels: list[int] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != CSV_HEADER:
            raise DataError(f"{path}: header must be {','.join(CSV_HEADER)}, got {header!r}")
        for line, row in enumerate(tqdm(reader, desc=f"parse {path.name}", unit="row", disable=not progress), start=2):
            if len(row) != 3:
                raise DataError(f"{path}:{line}: expected 3 fields (emotion,pixels,Usage), got {len(row)}")
            emotion, pixels, row_usage = row
            if row_usage.strip() not in CSV_SPLITS.values():
                raise DataError(f"{path}:{line}: Usage {row_usage!r} is not one of {list(CSV_SPLITS.values())}")
            if row_usage.strip() != usage:
                continue
            try:
                label = int(emotion)
            except ValueError:
                raise DataError(f"{path}:{line}: emotion {emotion!r} is not an integer 0-6") from None
            if not 0 <= label < len(EMOTIONS):
                raise DataError(f"{path}:{line}: emotion {label} is outside 0-{len(EMOTIONS) - 1}")
            values = pixels.split()
            if len(values) != n_pixels:
                raise DataError(f"{path}:{line}: {len(values)} pixel values, expected {n_pixels} (48x48)")
            try:
                arr = np.array([int(v) for v in values], dtype=np.int64)
            except ValueError:
                raise DataError(f"{path}:{line}: pixels must be integers 0-255") from None
            if arr.min() < 0 or arr.max() > 255:
                raise DataError(f"{path}:{line}: pixel values must be within 0-255")
            images.append(arr.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE))
            labels.append(label)
    if not images:
        raise DataError(f"{path}: no rows with Usage {usage!r}")
    return FaceDataset(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64),
                       source=f"{path}:{usage}", split=split)
