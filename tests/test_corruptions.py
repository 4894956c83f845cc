"""train.corruptions: every corruption keeps the shape and dtype, changes the face, grows with strength."""

from __future__ import annotations

import numpy as np
import pytest

from train.corruptions import CORRUPTIONS, SEVERITIES, corrupt


def faces(n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    base = (128 + 60 * np.sin(xx / 4) * np.cos(yy / 5)).astype(np.float32)
    return np.clip(base + rng.normal(0, 10, (n, 48, 48)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_changes_face_more_with_strength(name):
    x = faces()
    before = x.copy()
    dist = []
    for s in SEVERITIES:
        y = corrupt(x, name, s, seed=3)
        assert y.shape == x.shape and y.dtype == np.uint8
        dist.append(float(np.abs(y.astype(float) - x).mean()))
        assert np.array_equal(y, corrupt(x, name, s, seed=3))  # deterministic
    assert np.array_equal(x, before)  # input untouched
    assert dist[0] > 0.5
    assert dist[0] < dist[2]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="Only"):
        corrupt(faces(), "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(faces(), "blur", 4)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(faces().astype(np.float32), "blur", 1)
    assert corrupt(np.zeros((0, 48, 48), np.uint8), "noise", 2).shape == (0, 48, 48)


# --- PhotoAugment: the corruptions as a training augmentation ---------------------------------------

def test_photo_augment_corrupts_the_drawn_share_and_repeats_with_the_seed():
    import torch

    from fer_demo.transforms import TrainAugment
    from train.corruptions import PhotoAugment

    x = torch.from_numpy(faces(64))
    base = TrainAugment(max_rotation=0, scale=(1, 1), max_shift=0, flip=False, brightness=0, erase_p=0)
    plain = base(x, torch.Generator().manual_seed(1))
    none = PhotoAugment(base, 0.0)(x, torch.Generator().manual_seed(1))
    assert none.shape == plain.shape
    every = PhotoAugment(base, 1.0)(x, torch.Generator().manual_seed(1))
    again = PhotoAugment(base, 1.0)(x, torch.Generator().manual_seed(1))
    assert torch.equal(every, again)  # the trainer's generator decides every draw
    changed = (every - none).abs().flatten(1).amax(1) > 1e-3
    assert changed.float().mean() > 0.9  # p=1: (nearly) every face differs (a mild corruption can be undone by rounding)
    half = PhotoAugment(base, 0.5)(x, torch.Generator().manual_seed(1))
    share = ((half - none).abs().flatten(1).amax(1) > 1e-3).float().mean().item()
    assert 0.25 < share < 0.75
    assert torch.equal(x, torch.from_numpy(faces(64)))  # the dataset's faces are not modified in place
    with pytest.raises(ValueError, match="photo_aug"):
        PhotoAugment(base, 1.5)
