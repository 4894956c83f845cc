"""The one preprocessing path shared by training, evaluation and serving.

Faces enter as uint8 grayscale tensors of shape (N, 48, 48) (FER2013's framing; the app's
aligner produces the same). ``eval_transform`` is what every served or evaluated face goes
through; ``TrainAugment`` is its randomised counterpart for training and ends in the same
normalisation. Both work on whole batches so the CPU does tensor math, not per-image PIL.

Both start by equalising each face's histogram (``equalize_faces``): FER2013's own faces already
are (training set: per-face mean 0.51 +- 0.04 and standard deviation 0.30 +- 0.02 of the 0-1
range; 0.1% below 0.25), while a face cut from a photo is not (the examples' crops: 0.23-0.24),
so without it every served face would be a lower-contrast input than any the model learnt from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import equalize

from fer_demo.model import FACE_SIZE, INPUT_SIZE, MEAN, STD


def _check_faces(faces: torch.Tensor) -> torch.Tensor:
    if faces.dtype != torch.uint8:
        raise TypeError(f"faces must be uint8 (N, {FACE_SIZE}, {FACE_SIZE}), got dtype {faces.dtype}")
    if faces.ndim == 4 and faces.shape[1] == 1:
        faces = faces[:, 0]
    if faces.ndim != 3 or tuple(faces.shape[1:]) != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"faces must have shape (N, {FACE_SIZE}, {FACE_SIZE}), got {tuple(faces.shape)}")
    return faces


def equalize_faces(faces: torch.Tensor) -> torch.Tensor:
    """(N, 48, 48) uint8 -> the same faces, each histogram-equalised (torchvision's ``equalize``)."""
    return equalize(faces.unsqueeze(1)).squeeze(1)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 normalised with the model's MEAN/STD (shape kept)."""
    return (x.float() / 255.0 - MEAN) / STD


def model_view(faces: torch.Tensor) -> torch.Tensor:
    """(N, 48, 48) uint8 faces -> (N, 40, 40) uint8: the pixels the network sees without TTA
    (equalised, centre crop), before normalisation. The monitor measures brightness and contrast here."""
    faces = equalize_faces(_check_faces(faces))
    off = (FACE_SIZE - INPUT_SIZE) // 2
    return faces[:, off : off + INPUT_SIZE, off : off + INPUT_SIZE]


def eval_transform(faces: torch.Tensor) -> torch.Tensor:
    """(N, 48, 48) uint8 faces -> (N, 1, 40, 40) float32 network input (centre crop)."""
    return normalize(model_view(faces)).unsqueeze(1).contiguous()


def tta_views(faces: torch.Tensor, mode: str) -> torch.Tensor:
    """Test-time views of each face: (V, N, 1, 40, 40).

    ``mode``: ``"none"`` (centre crop, V=1), ``"flip"`` (centre + mirror, V=2) or
    ``"tencrop"`` (four corners + centre, each also mirrored, V=10).
    """
    faces = equalize_faces(_check_faces(faces))
    x = normalize(faces).unsqueeze(1)
    s, c = INPUT_SIZE, FACE_SIZE - INPUT_SIZE
    centre = x[..., c // 2 : c // 2 + s, c // 2 : c // 2 + s]
    if mode == "none":
        views = [centre]
    elif mode == "flip":
        views = [centre, centre.flip(-1)]
    elif mode == "tencrop":
        crops = [centre] + [x[..., i : i + s, j : j + s] for i in (0, c) for j in (0, c)]
        views = crops + [v.flip(-1) for v in crops]
    else:
        raise ValueError(f"Invalid TTA mode {mode!r}. Only 'none', 'flip' and 'tencrop' are supported.")
    return torch.stack([v.contiguous() for v in views])


@dataclass(frozen=True)
class TrainAugment:
    """Random geometric + photometric augmentation of a whole batch, then normalisation.

    One ``affine_grid``/``grid_sample`` per batch does flip, rotation, scale and shift and
    samples the 40x40 crop directly from the 48x48 face. The tensor math runs where the faces
    are (a GPU trainer passes them on the GPU); the random draws always come from the CPU
    ``generator``, so a seed gives the same random draws on any device.
    """

    max_rotation: float = 10.0  # degrees
    scale: tuple[float, float] = (0.9, 1.1)  # zoom range of the crop
    max_shift: float = 4.0  # pixels, in the 48x48 frame (the 40px crop has 4px of slack)
    flip: bool = True  # horizontal mirror with p=0.5
    brightness: float = 0.2  # multiplicative jitter of contrast/brightness, +-
    erase_p: float = 0.5  # probability of one random erased rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)  # fraction of the crop erased

    def __call__(self, faces: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, 48, 48) uint8 -> (N, 1, 40, 40) float32, normalised like ``eval_transform``."""
        faces = equalize_faces(_check_faces(faces))
        n, dev = faces.shape[0], faces.device
        g = generator

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return (torch.rand(n, generator=g) * (hi - lo) + lo).to(dev)

        x = faces.float().unsqueeze(1) / 255.0
        angle = uniform(-self.max_rotation, self.max_rotation) * math.pi / 180
        zoom = uniform(*self.scale)
        # theta maps output coords ([-1, 1] over the 40px crop) to input coords ([-1, 1] over 48px).
        ratio = INPUT_SIZE / FACE_SIZE / zoom
        flip = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        sign = torch.where(flip, -1.0, 1.0).to(dev)
        cos, sin = torch.cos(angle) * ratio, torch.sin(angle) * ratio
        shift = 2 * self.max_shift / FACE_SIZE
        theta = torch.zeros(n, 2, 3, device=dev)
        theta[:, 0, 0] = cos * sign
        theta[:, 0, 1] = -sin
        theta[:, 1, 0] = sin * sign
        theta[:, 1, 1] = cos
        theta[:, 0, 2] = uniform(-shift, shift)
        theta[:, 1, 2] = uniform(-shift, shift)
        grid = F.affine_grid(theta, [n, 1, INPUT_SIZE, INPUT_SIZE], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

        if self.brightness > 0:
            gain = uniform(1 - self.brightness, 1 + self.brightness).view(n, 1, 1, 1)
            mean = x.mean(dim=(2, 3), keepdim=True)
            x = ((x - mean) * gain + mean * uniform(1 - self.brightness / 2, 1 + self.brightness / 2).view(n, 1, 1, 1)).clamp(0, 1)

        x = (x - MEAN) / STD
        if self.erase_p > 0:
            area = uniform(*self.erase_area) * INPUT_SIZE * INPUT_SIZE
            aspect = torch.exp(uniform(math.log(0.5), math.log(2.0)))
            h = (area * aspect).sqrt().clamp(1, INPUT_SIZE)
            w = (area / aspect).sqrt().clamp(1, INPUT_SIZE)
            top = uniform(0, 1) * (INPUT_SIZE - h)
            left = uniform(0, 1) * (INPUT_SIZE - w)
            rows = torch.arange(INPUT_SIZE, device=dev).view(1, -1, 1)
            cols = torch.arange(INPUT_SIZE, device=dev).view(1, 1, -1)
            mask = (
                (rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
                & (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1))
            )
            mask &= (torch.rand(n, generator=g) < self.erase_p).to(dev).view(-1, 1, 1)
            x = x.masked_fill(mask.unsqueeze(1), 0.0)  # 0 = the dataset mean after normalising
        return x.contiguous()
