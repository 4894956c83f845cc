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
