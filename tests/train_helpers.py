"""Tiny generated FER2013-like datasets for the training tests (no real FER2013 data).

Everything is written under a test's ``tmp_path``: a folder layout ``<root>/{train,test}/<class>/*.png``
and/or the CSV layout ``emotion,pixels,Usage``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from fer_demo.model import EMOTIONS, FACE_SIZE

# Where each class's bright block sits in a "learnable" face (row, col of its top-left corner).
_BLOCKS = [(4, 4), (4, 28), (28, 16), (28, 4), (28, 28), (4, 16), (16, 16)]


def noise_face(rng: np.random.Generator) -> np.ndarray:
    """A random 48x48 uint8 gray image."""
    return rng.integers(0, 256, size=(FACE_SIZE, FACE_SIZE), dtype=np.uint8)


def learnable_face(label: int, rng: np.random.Generator) -> np.ndarray:
    """Dark noisy background plus one bright 16x16 block whose position encodes ``label``."""
    img = rng.normal(60, 15, size=(FACE_SIZE, FACE_SIZE))
    r, c = _BLOCKS[label]
    img[r : r + 16, c : c + 16] = rng.normal(220, 10, size=(16, 16))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_folder(root: Path, splits: dict[str, list[tuple[int, np.ndarray]]], suffix: str = ".png") -> Path:
    """``splits``: split folder name -> [(label, image)]; files are named so that the loader's
    order (class folders sorted by name, files sorted by name) keeps each class's list order."""
    for split, samples in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i, (label, arr) in enumerate(samples):
            write_image(root / split / EMOTIONS[label] / f"{i:05d}{suffix}", arr)
    return root


def folder_order(samples: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """The order ``load_folder`` returns ``samples`` written by ``write_folder`` in."""
    indexed = list(enumerate(samples))
    indexed.sort(key=lambda t: (EMOTIONS[t[1][0]], t[0]))
    return [s for _, s in indexed]


def pixels_str(arr: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in arr.reshape(-1))


def write_csv(path: Path, rows: list[tuple[object, object, object]], header: tuple[str, ...] = ("emotion", "pixels", "Usage")) -> Path:
    """``rows``: (emotion, pixels, Usage); an ndarray ``pixels`` is written space-separated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for emotion, pixels, usage in rows:
            w.writerow([emotion, pixels_str(pixels) if isinstance(pixels, np.ndarray) else pixels, usage])
    return path


def learnable_dataset(root: Path, classes: tuple[int, ...], n_train_per_class: int, n_test_per_class: int,
                      seed: int = 0) -> Path:
    """A folder dataset where the class is visible (bright block position), interleaved by class."""
    rng = np.random.default_rng(seed)
    train = [(c, learnable_face(c, rng)) for _ in range(n_train_per_class) for c in classes]
    test = [(c, learnable_face(c, rng)) for _ in range(n_test_per_class) for c in classes]
    return write_folder(root, {"train": train, "test": test})


def fail_during_epoch(train_one_epoch: Callable, fail: Callable[[], None], epoch: int = 2, batch: int = 2
                      ) -> tuple[Callable, dict]:
    """A ``train.fit.train_one_epoch`` that calls ``fail()`` at batch ``batch`` of epoch ``epoch``.

    With the defaults that is after epoch 1's checkpoint and after one optimiser step of epoch 2,
    so the in-memory model, optimiser, scheduler and RNG have moved on past the checkpoint.
    Returns the replacement and its call counters (``{"epochs": ..., "batches": ...}``).
    """
    calls = {"epochs": 0, "batches": 0}

    def failing(model, data, optimizer, scheduler, criterion, augment, *args, **kwargs):
        calls["epochs"] += 1
        if calls["epochs"] < epoch:
            return train_one_epoch(model, data, optimizer, scheduler, criterion, augment, *args, **kwargs)

        def augment_then_fail(faces, generator):
            calls["batches"] += 1
            if calls["batches"] == batch:
                fail()
            return augment(faces, generator)

        return train_one_epoch(model, data, optimizer, scheduler, criterion, augment_then_fail, *args, **kwargs)

    return failing, calls
