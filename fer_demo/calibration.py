"""Calibrated probabilities: temperature scaling and the measures that check it.

A network trained with cross-entropy is usually over-confident: its "93% happy" is right
less than 93% of the time. Temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017) divides the logits by one scalar T > 0 fitted on held-out data by
minimising the negative log-likelihood; it never changes which class wins.

With test-time augmentation the shown output is the mean of the views' softmaxes, so T is
fitted for that averaged output, one T per TTA mode (``view_probabilities``).

Measures (all on probabilities (N, C) and integer labels (N,)):

- ECE: expected calibration error with 15 equal-width confidence bins (Guo et al.; Naeini
  et al. 2015): sum over bins of |accuracy - mean confidence| weighted by the bin's share.
- NLL: mean negative log-probability of the true class.
- Brier score: mean over images of the squared distance between the probability vector
  and the one-hot label (sum over classes; 0 is perfect, 2 the worst).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

ECE_BINS = 15
# Search interval for T: far wider than any sensible network needs (0.05 sharpens 20x).
T_BOUNDS = (0.05, 20.0)
# When the runner-up class is within this many probability points of the top class, the
# result names both ("happy or surprise"). Why 0.15: with calibrated probabilities, faces
# whose top-two margin is below it are the ones where the top label is right barely more
# often than the runner-up (the export measures both rates on the evaluation split and
# writes them into the card, and the Model page shows them).
CLOSE_CALL_MARGIN = 0.15


def view_probabilities(view_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over views of softmax(logits / T): (V, N, C) or (N, C) logits -> (N, C) float64."""
    z = view_logits.double()
    if z.ndim == 2:
        z = z.unsqueeze(0)
    if z.ndim != 3:
        raise ValueError(f"logits must be (N, C) or (V, N, C), got shape {tuple(view_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(z / temperature, dim=-1).mean(dim=0)


def _labels(labels: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64)


def nll(probs: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int]) -> float:
    y = _labels(labels)
    p = probs.double()[torch.arange(len(y)), y].clamp_min(1e-12)
    return float(-p.log().mean())


def brier(probs: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int]) -> float:
    y = _labels(labels)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).double()
    return float(((probs.double() - onehot) ** 2).sum(dim=1).mean())


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin [lo, hi): how many faces, their mean confidence, and how many were right."""

    lo: float
    hi: float
    count: int
    confidence: float  # mean top-class probability in the bin (nan when empty)
    accuracy: float  # share of the bin whose top class is the true label (nan when empty)


def reliability(probs: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int], bins: int = ECE_BINS
                ) -> list[ReliabilityBin]:
    """Equal-width bins of the top-class probability; the last bin includes 1.0."""
    y = _labels(labels)
    conf, pred = probs.double().max(dim=1)
    right = (pred == y).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    idx = torch.clamp(torch.bucketize(conf, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        n = int(m.sum())
        out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), n,
                                  float(conf[m].mean()) if n else math.nan, float(right[m].mean()) if n else math.nan))
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int],
                               bins: int = ECE_BINS) -> float:
    total = len(_labels(labels))
    if total == 0:
        raise ValueError("ECE of an empty set is undefined")
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in reliability(probs, labels, bins)
                     if b.count))


def calibration_metrics(probs: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int]) -> dict[str, float]:
    """accuracy, ece, nll, brier of probabilities (N, C) against labels (N,)."""
    y = _labels(labels)
    return {"accuracy": float((probs.argmax(1) == y).double().mean()), "ece": expected_calibration_error(probs, y),
            "nll": nll(probs, y), "brier": brier(probs, y)}


def fit_temperature(view_logits: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int],
                    bounds: tuple[float, float] = T_BOUNDS, iterations: int = 80) -> float:
    """The T minimising the NLL of ``view_probabilities(view_logits, T)``.

    A golden-section search over log T in ``bounds`` (the NLL is unimodal in T for the one-
    view case, convex in 1/T; deterministic and dependency-free). Returns T rounded to 4 digits.
    """
    y = _labels(labels)
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on zero images")

    def loss(log_t: float) -> float:
        return nll(view_probabilities(view_logits, math.exp(log_t)), y)

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    g = (math.sqrt(5) - 1) / 2
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = loss(c), loss(d)
    for _ in range(iterations):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = loss(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = loss(d)
    return round(math.exp((lo + hi) / 2), 4)


@dataclass(frozen=True)
class CloseCall:
    """How often the top label is right when the top two are within the margin, measured."""

    margin: float
    share: float  # of evaluation faces that are close calls
    top1_accuracy: float  # the top label is right, among close calls
    top2_accuracy: float  # one of the two named labels is right, among close calls
    runner_up_accuracy: float  # the runner-up is right, among close calls

    def to_dict(self) -> dict:
        return asdict(self)


def is_close_call(p1: float, p2: float, margin: float = CLOSE_CALL_MARGIN) -> bool:
    """True when the runner-up's probability is within ``margin`` of the top class's."""
    return p1 - p2 < margin


def close_call_stats(probs: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int],
                     margin: float = CLOSE_CALL_MARGIN) -> CloseCall:
    y = _labels(labels)
    top2 = probs.double().topk(2, dim=1)
    close = (top2.values[:, 0] - top2.values[:, 1]) < margin
    n = int(close.sum())
    if n == 0:
        return CloseCall(margin, 0.0, math.nan, math.nan, math.nan)
    first = top2.indices[close, 0] == y[close]
    second = top2.indices[close, 1] == y[close]
    return CloseCall(margin, n / len(y), float(first.double().mean()), float((first | second).double().mean()),
                     float(second.double().mean()))


__all__ = ["view_probabilities", "fit_temperature", "expected_calibration_error", "nll", "brier", "reliability",
           "ReliabilityBin", "calibration_metrics", "CloseCall", "close_call_stats", "is_close_call",
           "CLOSE_CALL_MARGIN", "ECE_BINS"]
