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


# --- PhotoCorrupt: the corruptions as a training augmentation (host side) ---------------------------

def test_photo_corrupt_corrupts_the_drawn_share_and_repeats_with_the_seed():
    import torch

    from fer_demo.transforms import TrainAugment
    from train.corruptions import PhotoCorrupt

    x = torch.from_numpy(faces(64))
    base = TrainAugment(max_rotation=0, scale=(1, 1), max_shift=0, flip=False, brightness=0, erase_p=0)

    def augmented(p):  # the trainer's order: PhotoCorrupt on the host, then TrainAugment, one generator
        g = torch.Generator().manual_seed(1)
        return base(PhotoCorrupt(p)(x, g), g)

    plain = base(x, torch.Generator().manual_seed(1))
    none = augmented(0.0)
    assert none.shape == plain.shape
    every, again = augmented(1.0), augmented(1.0)
    assert torch.equal(every, again)  # the trainer's generator decides every draw
    changed = (every - none).abs().flatten(1).amax(1) > 1e-3
    assert changed.float().mean() > 0.9  # p=1: (nearly) every face differs (a mild corruption can be undone by rounding)
    half = augmented(0.5)
    share = ((half - none).abs().flatten(1).amax(1) > 1e-3).float().mean().item()
    assert 0.25 < share < 0.75
    assert torch.equal(x, torch.from_numpy(faces(64)))  # the dataset's faces are not modified in place
    with pytest.raises(ValueError, match="photo_aug"):
        PhotoCorrupt(1.5)
    assert PhotoCorrupt(0.0)(x, torch.Generator()) is x  # nothing drawn to corrupt: the batch as it was


def test_photo_corrupt_takes_faces_on_the_cpu_only():
    import torch

    from train.corruptions import PhotoCorrupt

    with pytest.raises(ValueError, match="on the CPU"):
        PhotoCorrupt(0.5)(torch.zeros(2, 48, 48, dtype=torch.uint8, device="meta"), torch.Generator())

def test_photo_corruption_draws_come_from_the_trainers_generator_before_the_base_augment():
    """The contract a seed's reproducibility rests on: from the trainer's generator, in this order,
    which faces are hit (share p), each one's kind and severity, then one numpy seed for the
    corruptions' own randomness; the faces are corrupted in index order; the base augment then
    draws from the generator where the corruption left it."""
    import torch

    from train.corruptions import PhotoCorrupt

    n, p = 48, 0.5
    x = torch.from_numpy(faces(n))
    twin = torch.Generator().manual_seed(5)
    hit = torch.rand(n, generator=twin) < p
    kind = torch.randint(len(CORRUPTIONS), (n,), generator=twin)
    severity = torch.randint(1, len(SEVERITIES) + 1, (n,), generator=twin)
    rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=twin)))
    expect = faces(n)
    for i in torch.nonzero(hit).flatten().tolist():
        expect[i] = CORRUPTIONS[list(CORRUPTIONS)[int(kind[i])]](expect[i:i + 1], int(severity[i]), rng)[0]
    assert 0 < int(hit.sum()) < n

    seen = {}

    def base(batch, generator):  # stands in for TrainAugment: records what it is given and draws
        seen["faces"], seen["next"] = batch.clone(), torch.rand(3, generator=generator)
        return batch

    gen = torch.Generator().manual_seed(5)
    base(PhotoCorrupt(p)(x, gen), gen)  # what the trainer does with each batch (train.engine)
    assert np.array_equal(seen["faces"].numpy(), expect)
    assert torch.equal(seen["next"], torch.rand(3, generator=twin))
    assert torch.equal(x, torch.from_numpy(faces(n)))  # not modified in place
