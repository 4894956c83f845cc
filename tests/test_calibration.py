"""fer_demo.calibration: the measures on hand-checked cases, and temperature scaling on toy
models whose miscalibration is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fer_demo.calibration import (CLOSE_CALL_MARGIN, brier, calibration_metrics, close_call_stats,
                                  expected_calibration_error, fit_temperature, is_close_call, nll, reliability,
                                  view_probabilities)


def calibrated_toy(n: int = 20000, classes: int = 7, scale: float = 2.0, seed: int = 0):
    """Logits whose softmax is the true label distribution: labels are *drawn* from softmax(z)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=g) * scale
    labels = torch.multinomial(torch.softmax(z.double(), 1), 1, generator=g).squeeze(1)
    return z, labels


def test_measures_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    assert nll(probs, labels) == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.5)) / 4)
    assert brier(probs, labels) == pytest.approx((0.02 + 0.72 + 0.18 + 0.5) / 4)
    bins = reliability(probs, labels, bins=10)
    assert sum(b.count for b in bins) == 4
    # 0.5 -> bin [0.5, 0.6); 0.6 -> [0.6, 0.7); 0.7 -> [0.7, 0.8); 0.9 -> [0.9, 1.0]
    by_lo = {round(b.lo, 1): b for b in bins if b.count}
    assert set(by_lo) == {0.5, 0.6, 0.7, 0.9}
    assert by_lo[0.6].accuracy == 0.0 and by_lo[0.9].accuracy == 1.0
    # ECE = mean over the 4 one-face bins of |right - confidence|.
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx((0.1 + 0.6 + 0.3 + 0.5) / 4)
    assert reliability(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))[-1].count == 1  # 1.0 is in the last bin


def test_a_calibrated_model_has_small_ece_and_temperature_one():
    z, y = calibrated_toy()
    assert expected_calibration_error(view_probabilities(z), y) < 0.02
    assert fit_temperature(z, y) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("sharpen", [3.0, 0.5])
def test_temperature_undoes_known_miscalibration(sharpen):
    """Logits multiplied by 3 are over-confident (T should come out ~3 > 1); by 0.5 under-confident."""
    z, y = calibrated_toy()
    bad = z * sharpen
    t = fit_temperature(bad, y)
    assert t == pytest.approx(sharpen, rel=0.08)
    assert (t > 1) == (sharpen > 1)
    before = calibration_metrics(view_probabilities(bad), y)
    after = calibration_metrics(view_probabilities(bad, t), y)
    assert after["ece"] < before["ece"] and after["ece"] < 0.02 and after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]  # one view: scaling never changes the argmax


def test_views_are_averaged_after_scaling():
    z = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]])  # two views of one face that disagree
    p = view_probabilities(z, 2.0)
    assert p.shape == (1, 2) and torch.allclose(p, torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    single = torch.tensor([[2.0, 0.0]])
    assert torch.allclose(view_probabilities(single, 2.0), torch.softmax(single.double() / 2, 1))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        view_probabilities(single, 0.0)


def test_close_calls():
    assert is_close_call(0.45, 0.40) and not is_close_call(0.60, 0.40)
    assert is_close_call(0.50, 0.50 - CLOSE_CALL_MARGIN + 1e-6) and not is_close_call(0.50, 0.50 - CLOSE_CALL_MARGIN - 1e-6)
    probs = torch.tensor([[0.45, 0.40, 0.15], [0.45, 0.40, 0.15], [0.9, 0.05, 0.05], [0.40, 0.35, 0.25]])
    labels = torch.tensor([0, 1, 0, 2])
    s = close_call_stats(probs, labels, 0.15)
    assert s.share == 0.75
    assert s.top1_accuracy == pytest.approx(1 / 3) and s.runner_up_accuracy == pytest.approx(1 / 3)
    assert s.top2_accuracy == pytest.approx(2 / 3)
    none = close_call_stats(torch.tensor([[0.9, 0.1]]), torch.tensor([0]), 0.15)
    assert none.share == 0.0 and math.isnan(none.top1_accuracy)


def test_inputs_as_numpy_and_lists():
    probs = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
    assert nll(probs, np.array([0, 1])) == pytest.approx(nll(probs, [0, 1]))
    with pytest.raises(ValueError):
        fit_temperature(torch.zeros(0, 7), [])
