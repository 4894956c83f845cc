"""Labelled *photos* (not face crops) as training data: each photo goes through the app's own
detector and aligner once (``fer_demo.detect`` + ``fer_demo.align``), exactly as a visitor's
photo would, and the 48x48 faces are cached next to nothing the user owns.

    python -m train fit --data MY_PHOTOS --faces detect --init weights/fer_vgg19.safetensors ...

``MY_PHOTOS/{train,test}/<class>/*`` as for face folders (class names and aliases as in
``train.data``). A photo contributes its most confident face; a photo without a face is skipped
and counted. The cache (``<cache>/<split>-<key>.npz``) is keyed by every file's path, size and
modification time and by the detector's settings, so editing the folder re-detects.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fer_demo import limits
from fer_demo.weights import atomic_write
from train.dataset import FOLDER_SPLITS, DataError, FaceDataset, labelled_files

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_CACHE = Path.home() / ".cache" / "fer-demo" / "faces"


def cache_key(files: list[Path], labels: list[int]) -> str:
    h = hashlib.sha256()
    settings = {"detect_max_side": limits.DETECT_MAX_SIDE, "min_face_frac": limits.MIN_FACE_FRAC, "version": 1}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for f, y in zip(files, labels):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}|{y}\n".encode())
    return h.hexdigest()[:24]


def detect_faces(files: list[Path], progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(faces uint8 (M, 48, 48), index of each face's photo (M,)): the most confident face per photo."""
    from fer_demo.align import align_face
    from fer_demo.detect import FaceDetector
    from fer_demo.io import InvalidImageError, load_image

    detector = FaceDetector()
    faces, owners = [], []
    for i, f in enumerate(tqdm(files, desc="detect faces", unit="photo", disable=not progress)):
        try:
            image = load_image(f)
        except InvalidImageError:
            continue
        found = detector.detect(image)
        if found:
            faces.append(align_face(image, found[0]).gray)
            owners.append(i)
    if not faces:
        return np.zeros((0, 48, 48), np.uint8), np.zeros(0, np.int64)
    return np.stack(faces), np.asarray(owners, dtype=np.int64)


def load_photo_folder(root: str | Path, split: str, progress: bool = True, ignore_classes: bool = False,
                      cache_dir: str | Path | None = None) -> FaceDataset:
    """Faces of ``<root>/<split>/<class>/*`` photos, detected and aligned like the app does (cached)."""
    root = Path(root)
    if split not in FOLDER_SPLITS:
        raise DataError(f"Invalid split {split!r} for the folder layout. Only {sorted(FOLDER_SPLITS)} exist.")
    split_dir = root / FOLDER_SPLITS[split]
    files, labels = labelled_files(split_dir, root, PHOTO_SUFFIXES, ignore_classes)
    cache = Path(cache_dir or DEFAULT_CACHE)
    path = cache / f"{split}-{cache_key(files, labels)}.npz"
    if path.is_file():
        with np.load(path) as z:
            faces, owners = z["faces"], z["owners"]
    else:
        faces, owners = detect_faces(files, progress)
        cache.mkdir(parents=True, exist_ok=True)

        def write(p: Path) -> None:
            with open(p, "wb") as fh:  # a file object: np.savez would add ".npz" to a name
                np.savez(fh, faces=faces, owners=owners)

        atomic_write(path, write)
    missed = len(files) - len(owners)
    if missed:
        warnings.warn(f"{split_dir}: no face found in {missed} of {len(files)} photos; they are skipped", stacklevel=2)
    if len(owners) == 0:
        raise DataError(f"{split_dir}: no face found in any of its {len(files)} photos")
    y = torch.tensor([labels[i] for i in owners], dtype=torch.int64)
    return FaceDataset(torch.from_numpy(faces), y, source=f"{split_dir} (faces detected)", split=split)


__all__ = ["load_photo_folder", "detect_faces", "cache_key", "DEFAULT_CACHE"]
