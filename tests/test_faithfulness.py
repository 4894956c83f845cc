"""train.faithfulness: the choice of the default CAM method, the pieces it is built from, and a
small real measurement on the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train.faithfulness import (FRACTIONS, MAX_FLAT_SHARE, CalibratedSoftmaxTarget, MethodFaithfulness, best_method,
                                measure, passes_sanity_check, rederive, report, spearman_per_face)


def result(method: str, ratio: float, rho: float, se: float = 0.01, discriminative: bool = True
           ) -> MethodFaithfulness:
    drop = {"10%": 0.01, "20%": 0.02 * ratio, "40%": 0.08}
    return MethodFaithfulness(method, drop, {"10%": 0.01, "20%": 0.02, "40%": 0.04},
                              {"10%": 0.01, "20%": 0.03, "40%": 0.05}, ratio, ratio * 2 / 3, rho, 0, se,
                              discriminative)


def test_default_is_the_most_faithful_class_discriminative_method_that_passes_randomisation():
    results = [result("gradcam", 4.2, 0.07), result("hirescam", 6.1, 0.50, se=0.02),  # borderline: CI crosses 0.5
               result("layercam", 5.5, 0.82), result("eigencam", 5.8, 0.34, discriminative=False)]
    assert [passes_sanity_check(r) for r in results] == [True, False, False, True]
    assert best_method(results) == "gradcam"
    results.append(result("clear", 5.0, 0.20))
    assert best_method(results) == "clear"  # passes, and removes more than gradcam
    assert best_method([result("a", 3.0, 0.9), result("b", 4.0, 0.9)]) == "b"  # nobody passes: the most faithful


def test_a_method_that_draws_flat_maps_for_many_faces_is_not_the_default():
    many_flat = result("gradcam", 7.8, 0.05)
    many_flat.degenerate_maps = 50
    few_flat = result("hirescam", 5.6, 0.41)
    few_flat.degenerate_maps = 3
    assert best_method([many_flat, few_flat], n=300) == "hirescam"
    assert best_method([many_flat, few_flat]) == "gradcam"  # no face count: the share is unknown
    many_flat.degenerate_maps = 15  # exactly 5%
    assert best_method([many_flat, few_flat], n=300) == "gradcam"


def test_stored_verdicts_are_rederived_under_the_current_rules():
    flat = result("gradcam", 7.8, 0.05)
    flat.degenerate_maps = 50
    stored = {"num_faces": 300, "best": "gradcam", "table": "old",
              "methods": [{**r.to_dict(), "passes_sanity_check": True} for r in (flat, result("hirescam", 5.6, 0.41))]}
    new = rederive(stored)
    assert new["best"] == "hirescam" and new["max_flat_share"] == MAX_FLAT_SHARE
    assert [m["drop"] for m in new["methods"]] == [m["drop"] for m in stored["methods"]]  # measurements kept
    assert "| 17% |" in new["table"] and "flat maps" in new["table"]


def test_spearman_per_face():
    a = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert spearman_per_face(a, a)[0] == pytest.approx(1.0)
    assert spearman_per_face(a, -a)[0] == pytest.approx(-1.0)
    assert np.isnan(spearman_per_face(a, np.zeros_like(a))[0])  # a flat map has no ranking


def test_calibrated_softmax_target():
    logits = torch.tensor([2.0, 0.0, -1.0])
    t = CalibratedSoftmaxTarget(0, temperature=2.0)
    assert float(t(logits)) == pytest.approx(float(torch.softmax(logits / 2, 0)[0]))
    assert float(t(logits.unsqueeze(0))) == pytest.approx(float(t(logits)))


@pytest.mark.integration
@pytest.mark.slow
def test_a_small_measurement_on_the_shipped_weights(release_weights):
    from fer_demo.weights import load_model

    model, _ = load_model(release_weights)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48]
    faces = np.clip(200 - 0.08 * ((x - 24) ** 2 + (y - 22) ** 2) + rng.normal(0, 25, (4, 48, 48)), 0, 255)
    faces = torch.from_numpy(faces.astype(np.uint8))
    rep = report(model, faces, temperature=0.8, n=4, seed=0)
    assert rep["num_faces"] == 4 and {m["method"] for m in rep["methods"]} == {"gradcam", "gradcam++", "hirescam",
                                                                               "layercam", "eigencam"}
    for m in rep["methods"]:
        assert set(m["drop"]) == {f"{round(100 * f)}%" for f in FRACTIONS}
        assert all(np.isfinite(v) for v in m["drop"].values())
        assert -1 <= m["rank_correlation_random_model"] <= 1 or np.isnan(m["rank_correlation_random_model"])
    assert rep["best"] in {m["method"] for m in rep["methods"]} and "| gradcam |" in rep["table"]
    # The imputation noise is seeded: the same call gives the same numbers.
    once = measure(model, faces.numpy(), temperature=0.8, methods=("gradcam",), seed=0)
    again = measure(model, faces.numpy(), temperature=0.8, methods=("gradcam",), seed=0)
    assert once[0].drop == again[0].drop and once[0].drop_random_pixels == again[0].drop_random_pixels
