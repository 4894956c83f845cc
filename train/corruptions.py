"""Photo-like corruptions of 48x48 grayscale faces, in the spirit of ImageNet-C (Hendrycks & Dietterich 2019).

Each corruption is a plain function ``(faces uint8 (N, 48, 48), severity 1..3, rng) -> uint8 (N, 48, 48)``
built on OpenCV, so the corruption benchmark (``benchmarks/corruptions.py``) and a training augmentation
can share them. They act on the face *before* the app's preprocessing (``fer_demo.transforms``), which
equalises every face's histogram: a purely monotonic change of grey levels (plain dimming) is undone by
that equalisation, so "dim" and "over-exposed" model what is lost on a real camera instead: dim light
keeps few grey levels and adds sensor noise; over-exposure clips the highlights.

Severities (1 mild .. 3 strong), on the 48 px face:

- ``blur``: Gaussian blur, sigma 0.7 / 1.2 / 2.0 px
- ``noise``: additive Gaussian noise, sigma 8 / 16 / 28 grey levels
- ``jpeg``: JPEG quality 30 / 15 / 7
- ``low_res``: down to 24 / 16 / 12 px, back up to 48 bilinearly
- ``dim``: light x0.3 / 0.15 / 0.07, quantised, + read noise sigma 1.5 grey levels
- ``overexposed``: light x1.6 / 2.2 / 3.0, clipped at 255
- ``occlusion``: a black rectangle over 12% / 20% / 30% of the face, at a random place
- ``rotation``: in-plane turn of 10 / 20 / 30 degrees, random sign
- ``perspective``: out-of-plane turn: one side of the face shrunk by 12% / 22% / 32%, random side
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch


SEVERITIES = (1, 2, 3)


def _check(faces: np.ndarray, severity: int) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 3:
        raise ValueError(f"faces must be uint8 (N, H, W) grayscale, got {faces.dtype} {faces.shape}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity={severity!r}; only {', '.join(map(str, SEVERITIES))} are supported")
    return faces


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def blur(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.7, 1.2, 2.0)[severity - 1]
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for f in faces])


def noise(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (8.0, 16.0, 28.0)[severity - 1]
    return _u8(faces.astype(np.float32) + rng.normal(0.0, sigma, faces.shape))


def jpeg(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    q = (30, 15, 7)[severity - 1]
    return np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_GRAYSCALE)
                     for f in faces])


def low_res(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    s = (24, 16, 12)[severity - 1]
    h, w = faces.shape[1:]
    return np.stack([cv2.resize(cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA), (w, h),
                                interpolation=cv2.INTER_LINEAR) for f in faces])


def dim(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    k = (0.3, 0.15, 0.07)[severity - 1]
    return _u8(faces.astype(np.float32) * k + rng.normal(0.0, 1.5, faces.shape))


def overexposed(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    k = (1.6, 2.2, 3.0)[severity - 1]
    return _u8(faces.astype(np.float32) * k)


def occlusion(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    area = (0.12, 0.20, 0.30)[severity - 1]
    out = faces.copy()
    h, w = faces.shape[1:]
    for f in out:
        aspect = rng.uniform(0.5, 2.0)
        rh = int(round(min(h, np.sqrt(area * h * w / aspect))))
        rw = int(round(min(w, area * h * w / max(rh, 1))))
        y, x = rng.integers(0, h - rh + 1), rng.integers(0, w - rw + 1)
        f[y:y + rh, x:x + rw] = 0
    return out


def rotation(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    deg = (10.0, 20.0, 30.0)[severity - 1]
    h, w = faces.shape[1:]
    out = []
    for f in faces:
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), deg * rng.choice((-1.0, 1.0)), 1.0)
        out.append(cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def perspective(faces: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    shrink = (0.12, 0.22, 0.32)[severity - 1]
    h, w = faces.shape[1:]
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    out = []
    for f in faces:
        d = shrink * (h - 1) / 2
        dst = src.copy()
        side = (1, 2) if rng.random() < 0.5 else (0, 3)  # right or left edge recedes
        dst[side[0], 1] += d
        dst[side[1], 1] -= d
        xs = (1, 2) if side == (1, 2) else (0, 3)
        sign = -1 if side == (1, 2) else 1
        for i in xs:
            dst[i, 0] += sign * shrink * (w - 1) / 2  # and the face narrows towards it
        m = cv2.getPerspectiveTransform(src, dst)
        out.append(cv2.warpPerspective(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "blur": blur, "noise": noise, "jpeg": jpeg, "low_res": low_res, "dim": dim, "overexposed": overexposed,
    "occlusion": occlusion, "rotation": rotation, "perspective": perspective,
}


def corrupt(faces: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``faces`` (uint8 (N, H, W)) with corruption ``name`` at ``severity`` (1..3); deterministic per ``seed``.

    Returns a new uint8 array of the same shape; the input is not changed.

    Raises:
        ValueError: an unknown ``name``, a severity outside 1..3, or faces that are not uint8 (N, H, W).
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"Invalid corruption {name!r}. Only {', '.join(CORRUPTIONS)} are supported.")
    faces = _check(faces, severity)
    if len(faces) == 0:
        return faces.copy()
    out = CORRUPTIONS[name](faces, severity, np.random.default_rng(seed))
    return np.ascontiguousarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class PhotoCorrupt:
    """Training augmentation, host side: a share ``p`` of the faces each get one random corruption
    of ``CORRUPTIONS`` at a random severity (uint8, before equalisation, as a camera would spoil the
    face). The corruptions are OpenCV, which works on host memory, so the trainer runs this on each
    batch while it is still on the CPU, before the copy to the device
    (``train.engine.train_one_epoch(corrupt=...)``); ``TrainAugment`` (geometry, light, erasing,
    normalisation) follows on the device.

    The draws come from the trainer's ``generator``, before ``TrainAugment``'s, so a seed repeats an
    epoch exactly, on any device.
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"photo_aug={self.p!r}: the share of corrupted faces must lie in [0, 1]")

    def __call__(self, faces: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, 48, 48) uint8 on the CPU -> the same with the drawn faces corrupted (a new tensor when
        any is; ``faces`` itself is never modified).

        Raises:
            ValueError: ``faces`` are not on the CPU (corrupt them before they are copied to the device).
        """
        if faces.device.type != "cpu":
            raise ValueError(f"PhotoCorrupt takes the faces on the CPU (before the copy to the device), "
                             f"got them on {faces.device}")
        n = faces.shape[0]
        hit = torch.rand(n, generator=generator) < self.p
        kind = torch.randint(len(CORRUPTIONS), (n,), generator=generator)
        severity = torch.randint(1, len(SEVERITIES) + 1, (n,), generator=generator)
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        if not hit.any():
            return faces
        rng = np.random.default_rng(seed)
        arr = faces.numpy().copy()
        names = list(CORRUPTIONS)
        for i in torch.nonzero(hit).flatten().tolist():
            fn = CORRUPTIONS[names[int(kind[i])]]
            arr[i] = fn(arr[i:i + 1], int(severity[i]), rng)[0]
        return torch.from_numpy(arr)
