"""Calibration of a release: temperature per TTA mode, fitted on the evaluation split.

``python -m train export`` calls ``calibrate`` on the weights it ships (fp16, reloaded), so
the card's temperatures, ECE/NLL/Brier before and after, reliability bins and close-call
rates describe exactly what the app serves. Fitting and reporting on the same split is what
temperature scaling's authors do with a validation set; ``cross_validated`` adds a 2-fold
figure (fit on one half, measure on the other) so the in-sample number is not the only one.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from fer_demo.calibration import (CLOSE_CALL_MARGIN, ECE_BINS, close_call_stats, expected_calibration_error,
                                  fit_temperature, reliability, view_probabilities)
from train.data import FaceDataset
from train.engine import predict_view_logits, view_logits_metrics

TTA_MODES = ("none", "flip", "tencrop")


def _bins(probs: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    return [{k: (None if v != v else round(v, 5)) for k, v in asdict(b).items()} for b in reliability(probs, labels)]


def two_fold_ece(view_logits: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict:
    """Fit T on one random half, measure ECE on the other, both ways; the mean of the two."""
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    halves = (perm[: len(perm) // 2], perm[len(perm) // 2 :])
    before, after, temps = [], [], []
    for fit_idx, test_idx in (halves, halves[::-1]):
        t = fit_temperature(view_logits[:, fit_idx], labels[fit_idx])
        temps.append(t)
        before.append(expected_calibration_error(view_probabilities(view_logits[:, test_idx]), labels[test_idx]))
        after.append(expected_calibration_error(view_probabilities(view_logits[:, test_idx], t), labels[test_idx]))
    return {"ece_before": sum(before) / 2, "ece_after": sum(after) / 2, "temperatures": temps}


def calibrate(model: torch.nn.Module, data: FaceDataset, modes: tuple[str, ...] = TTA_MODES, progress: bool = False
              ) -> tuple[dict, dict[str, dict]]:
    """Fit a temperature per TTA mode on ``data``.

    Returns ``(calibration, metrics_by_mode)``: the card's ``calibration`` section and, per mode,
    the metrics of the calibrated output (``train.engine.view_logits_metrics``).
    """
    cal: dict = {"method": "temperature scaling (Guo et al. 2017), NLL minimised by golden-section search",
                 "fitted_on": data.split, "num_images": len(data), "ece_bins": ECE_BINS, "temperature": {},
                 "modes": {}}
    by_mode: dict[str, dict] = {}
    for mode in modes:
        z = predict_view_logits(model, data.images, tta=mode, progress=progress, desc=f"calibrate {mode}")
        t = fit_temperature(z, data.labels)
        m = view_logits_metrics(z, data.labels, data.split, data.source, mode, t)
        by_mode[mode] = m
        cal["temperature"][mode] = t
        cal["modes"][mode] = {"before": m["calibration"]["before"], "after": m["calibration"]["after"]}
        if mode == "none":
            cal["reliability"] = {"before": _bins(view_probabilities(z), data.labels),
                                  "after": _bins(view_probabilities(z, t), data.labels)}
            cal["cross_validated"] = two_fold_ece(z, data.labels)
            cal["close_call"] = close_call_stats(view_probabilities(z, t), data.labels, CLOSE_CALL_MARGIN).to_dict()
    return cal, by_mode


__all__ = ["calibrate", "two_fold_ece", "TTA_MODES"]
