"""The shared preprocessing (fer_demo.transforms): eval transform, TTA views, train augmentation."""

from __future__ import annotations

import pytest
import torch

from fer_demo.model import FACE_SIZE, INPUT_SIZE, MEAN, STD
from fer_demo.transforms import TrainAugment, equalize_faces, eval_transform, normalize, tta_views

OFF = (FACE_SIZE - INPUT_SIZE) // 2


@pytest.fixture
def faces() -> torch.Tensor:
    return torch.randint(0, 256, (6, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_eval_transform_shape_dtype_normalisation(faces):
    x = eval_transform(faces)
    assert x.shape == (6, 1, INPUT_SIZE, INPUT_SIZE) and x.dtype == torch.float32 and x.is_contiguous()
    crop = equalize_faces(faces)[:, OFF : OFF + INPUT_SIZE, OFF : OFF + INPUT_SIZE].float() / 255.0
    torch.testing.assert_close(x[:, 0], (crop - MEAN) / STD)
    # The extremes map to the known normalised values.
    lo = eval_transform(torch.zeros(1, FACE_SIZE, FACE_SIZE, dtype=torch.uint8))
    hi = eval_transform(torch.full((1, FACE_SIZE, FACE_SIZE), 255, dtype=torch.uint8))
    torch.testing.assert_close(lo, torch.full_like(lo, -MEAN / STD))
    torch.testing.assert_close(hi, torch.full_like(hi, (1 - MEAN) / STD))
    # (N, 1, 48, 48) input is accepted as well.
    torch.testing.assert_close(eval_transform(faces.unsqueeze(1)), x)
    torch.testing.assert_close(normalize(torch.tensor([0, 255], dtype=torch.uint8)),
                               torch.tensor([-MEAN / STD, (1 - MEAN) / STD]))


@pytest.mark.parametrize("mode, views", [("none", 1), ("flip", 2), ("tencrop", 10)])
def test_tta_views_shapes(faces, mode, views):
    v = tta_views(faces, mode)
    assert v.shape == (views, 6, 1, INPUT_SIZE, INPUT_SIZE) and v.dtype == torch.float32
    # The first view is always the eval transform's centre crop.
    torch.testing.assert_close(v[0], eval_transform(faces))
    if mode == "flip":
        torch.testing.assert_close(v[1], eval_transform(faces).flip(-1))
    if mode == "tencrop":
        norm = normalize(equalize_faces(faces)).unsqueeze(1)
        c = FACE_SIZE - INPUT_SIZE
        torch.testing.assert_close(v[1], norm[..., :INPUT_SIZE, :INPUT_SIZE])  # top-left
        torch.testing.assert_close(v[4], norm[..., c:, c:])  # bottom-right
        torch.testing.assert_close(v[5:], v[:5].flip(-1))  # second half mirrors the first


def test_every_face_is_histogram_equalised_first():
    """FER2013's faces are equalised (contrast ~0.30); a face cut from a photo is not (~0.23): the
    shared path equalises both, so a dull or dark face reaches the network like a FER2013 one."""
    g = torch.Generator().manual_seed(0)
    face = torch.randint(0, 256, (1, FACE_SIZE, FACE_SIZE), generator=g, dtype=torch.uint8)
    dull = (face.float() * 0.3 + 60).round().to(torch.uint8)  # low contrast, dark: values 60-136
    eq = equalize_faces(dull)
    assert eq.min() < 10 and eq.max() > 245 and 0.27 < eq.float().std() / 255 < 0.32
    assert equalize_faces(dull).shape == dull.shape and eq.dtype == torch.uint8
    # The ranking of pixels is kept (a monotone map), and the dull face now reads like the original.
    order = dull.flatten().argsort(stable=True)
    assert (eq.flatten()[order].diff() >= 0).all()
    after = (eval_transform(dull) - eval_transform(face)).abs().mean()
    before = (normalize(dull) - normalize(face)).abs().mean()  # what the network saw without it
    assert after < 0.35 * before, (after, before)  # measured 0.27 (the dull face has 77 grey levels, not 256)
    # Flat faces stay flat (nothing to equalise).
    flat = torch.full((1, FACE_SIZE, FACE_SIZE), 77, dtype=torch.uint8)
    assert torch.equal(equalize_faces(flat), flat)


def test_tta_views_invalid_mode(faces):
    with pytest.raises(ValueError, match="Invalid TTA mode 'rot90'"):
        tta_views(faces, "rot90")


def test_train_augment_deterministic_per_seed(faces):
    aug = TrainAugment()
    a = aug(faces, _gen(7))
    b = aug(faces, _gen(7))
    c = aug(faces, _gen(8))
    assert a.shape == (6, 1, INPUT_SIZE, INPUT_SIZE) and a.dtype == torch.float32 and a.is_contiguous()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    for x in (a, c):
        assert torch.isfinite(x).all()
        # Values stay in the normalised range of [0, 1] pixels.
        assert x.min() >= -MEAN / STD - 1e-5 and x.max() <= (1 - MEAN) / STD + 1e-5
    # The augmentation is random per image, not one draw for the whole batch.
    same = torch.stack([faces[0]] * 4)
    out = aug(same, _gen(3))
    assert not torch.equal(out[0], out[1])


def test_train_augment_extreme_settings_stay_finite(faces):
    aug = TrainAugment(max_rotation=45, scale=(0.5, 1.5), max_shift=8, brightness=0.9, erase_p=1.0, erase_area=(0.5, 0.9))
    x = aug(faces, _gen(0))
    assert x.shape == (6, 1, INPUT_SIZE, INPUT_SIZE) and torch.isfinite(x).all()
    # erase_p=1: every image has an erased rectangle of exact zeros (the dataset mean).
    assert all(((x[i] == 0).sum() >= 0.5 * INPUT_SIZE * INPUT_SIZE * 0.5) for i in range(len(x)))


def test_train_augment_without_augmentation_equals_eval_transform(faces):
    """Training and serving share the preprocessing: no augmentation == the centre crop."""
    aug = TrainAugment(max_rotation=0.0, scale=(1.0, 1.0), max_shift=0.0, flip=False, brightness=0.0, erase_p=0.0)
    for seed in (0, 1):
        torch.testing.assert_close(aug(faces, _gen(seed)), eval_transform(faces), atol=1e-5, rtol=0)


def test_train_augment_flip_only_mirrors(faces):
    """flip with nothing else: each output is the centre crop or its mirror image."""
    aug = TrainAugment(max_rotation=0.0, scale=(1.0, 1.0), max_shift=0.0, flip=True, brightness=0.0, erase_p=0.0)
    out = aug(faces, _gen(5))
    ref = eval_transform(faces)
    flipped = 0
    for i in range(len(faces)):
        if torch.allclose(out[i], ref[i], atol=1e-5):
            continue
        torch.testing.assert_close(out[i], ref[i].flip(-1), atol=1e-5, rtol=0)
        flipped += 1
    out_many = aug(torch.cat([faces] * 8), _gen(6))
    ref_many = eval_transform(torch.cat([faces] * 8))
    n_same = sum(torch.allclose(o, r, atol=1e-5) for o, r in zip(out_many, ref_many))
    assert 0 < n_same < len(out_many)  # p=0.5: both outcomes occur in 48 draws


@pytest.mark.parametrize("fn", [eval_transform, lambda f: tta_views(f, "none"), lambda f: TrainAugment()(f, _gen(0))])
def test_wrong_dtype_or_shape_raises(fn):
    with pytest.raises(TypeError, match="uint8"):
        fn(torch.zeros(2, FACE_SIZE, FACE_SIZE, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"shape \(N, 48, 48\)"):
        fn(torch.zeros(2, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"shape \(N, 48, 48\)"):
        fn(torch.zeros(FACE_SIZE, FACE_SIZE, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"shape \(N, 48, 48\)"):
        fn(torch.zeros(2, 3, FACE_SIZE, FACE_SIZE, dtype=torch.uint8))
