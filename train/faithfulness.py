"""Do the heatmaps explain the model? Two measurements for every CAM method the app offers.

1. **Removal** (ROAD, Rong et al. 2022, as shipped in ``pytorch_grad_cam.metrics.road``):
   replace the top 10 / 20 / 40% of the face's pixels by the CAM with noisy linear imputation
   and record the change in the explained class's (calibrated) probability. The same is done
   for the same fraction of *random pixels* and, as a stricter baseline, of a *random blob*
   map (5x5 noise upsampled like a CAM, so the removed region has a CAM's shape). A map that
   explains the model lowers the probability much more than either baseline.
2. **Model randomisation** (Adebayo et al., "Sanity Checks for Saliency Maps", 2018): the same
   faces and target classes explained by a network with random weights; the Spearman rank
   correlation between the trained and the random network's maps should be low. A method
   that draws the same picture for a random network is not explaining the model.

The explained class is each face's predicted class (what the app explains by default); the
probability is ``softmax(logits / T)`` with the release's temperature, as the app shows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst
from scipy.stats import spearmanr
from tqdm import tqdm

from fer_demo.explain import CAM_METHODS, Explainer
from fer_demo.model import FACE_SIZE, INPUT_SIZE, build_model
from fer_demo.transforms import eval_transform

FRACTIONS = (0.10, 0.20, 0.40)
# The floor of the release: top-20% removal must lower the explained probability at least this
# many times as much as removing 20% random pixels (averaged over the sample).
FLOOR_RATIO = 2.0


class CalibratedSoftmaxTarget:
    """pytorch-grad-cam target: the probability of ``category`` at temperature ``t``."""

    def __init__(self, category: int, temperature: float = 1.0) -> None:
        self.category, self.temperature = category, temperature

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        out = model_output if model_output.ndim == 1 else model_output[0]
        return torch.softmax(out.float() / self.temperature, dim=-1)[self.category]


@dataclass
class MethodFaithfulness:
    method: str
    drop: dict[str, float]  # fraction ("10%") -> mean decrease of the explained probability, CAM removal
    drop_random_pixels: dict[str, float]
    drop_random_blobs: dict[str, float]
    ratio_20: float  # drop at 20% / random-pixel drop at 20%
    ratio_20_blobs: float
    rank_correlation_random_model: float  # mean Spearman rho, trained vs random-weights maps
    degenerate_maps: int  # faces whose map was constant (nothing to rank or remove)
    rank_correlation_se: float = float("nan")  # standard error of that mean over the faces
    class_discriminative: bool = True  # False: the map ignores the target class (EigenCAM)

    def to_dict(self) -> dict:
        return asdict(self)


def _crop(cams48: np.ndarray) -> np.ndarray:
    off = (FACE_SIZE - INPUT_SIZE) // 2
    return cams48[:, off : off + INPUT_SIZE, off : off + INPUT_SIZE]


def _random_blobs(n: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    side = INPUT_SIZE // 8  # the CAM layer's resolution for a 40x40 input (5x5)
    return np.stack([cv2.resize(rng.random((side, side)).astype(np.float32), (INPUT_SIZE, INPUT_SIZE),
                                interpolation=cv2.INTER_LINEAR) for _ in range(n)])


def _drops(metric_percentile: int, x: torch.Tensor, maps: np.ndarray, targets: list, model: torch.nn.Module
           ) -> np.ndarray:
    """Decrease of the explained probability (positive = it fell) after ROAD removal per ``maps``."""
    metric = ROADMostRelevantFirst(percentile=metric_percentile)
    return -np.asarray(metric(x, maps.astype(np.float32), targets, model), dtype=np.float64).reshape(-1)


def spearman_per_face(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        if np.ptp(a[i]) > 0 and np.ptp(b[i]) > 0:
            out[i] = spearmanr(a[i].ravel(), b[i].ravel()).statistic
    return out


def measure(model: torch.nn.Module, faces: np.ndarray, temperature: float = 1.0,
            methods: tuple[str, ...] = tuple(CAM_METHODS), seed: int = 0, batch_size: int = 50,
            progress: bool = False) -> list[MethodFaithfulness]:
    """Faithfulness of each method on uint8 faces (N, 48, 48) (see the module docstring)."""
    model.eval()
    explainer = Explainer(model)
    torch.manual_seed(seed + 1)
    random_model = build_model().eval()  # same architecture, random weights (torchvision's init)
    random_explainer = Explainer(random_model)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        logits = model(eval_transform(torch.from_numpy(faces)))
    predicted = logits.argmax(1).tolist()
    random_pixels = rng.random((len(faces), INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    blobs = _random_blobs(len(faces), rng)

    results = []
    for method in tqdm(methods, desc="CAM methods", disable=not progress):
        sums = {k: {f: 0.0 for f in FRACTIONS} for k in ("cam", "pixels", "blobs")}
        rhos, degenerate = [], 0
        for start in range(0, len(faces), batch_size):
            chunk = faces[start : start + batch_size]
            tgt = predicted[start : start + batch_size]
            cams = _crop(explainer.explain(chunk, tgt, method))
            rand = _crop(random_explainer.explain(chunk, tgt, method))
            degenerate += int(sum(np.ptp(c) == 0 for c in cams))
            rhos.extend(spearman_per_face(cams, rand).tolist())
            x = eval_transform(torch.from_numpy(chunk))
            targets = [CalibratedSoftmaxTarget(t, temperature) for t in tgt]
            for frac in FRACTIONS:
                pct = round(100 * (1 - frac))
                torch.manual_seed(seed)  # the imputer's noise: the same draws for every method
                sums["cam"][frac] += _drops(pct, x, cams, targets, model).sum()
                torch.manual_seed(seed)
                sums["pixels"][frac] += _drops(pct, x, random_pixels[start : start + len(chunk)], targets,
                                               model).sum()
                torch.manual_seed(seed)
                sums["blobs"][frac] += _drops(pct, x, blobs[start : start + len(chunk)], targets, model).sum()
        n = len(faces)
        mean = {k: {f"{round(100 * f)}%": v[f] / n for f in FRACTIONS} for k, v in sums.items()}
        r = np.asarray(rhos, dtype=np.float64)
        finite = r[np.isfinite(r)]
        se = float(finite.std(ddof=1) / np.sqrt(len(finite))) if len(finite) > 1 else float("nan")
        results.append(MethodFaithfulness(
            method=method, drop=mean["cam"], drop_random_pixels=mean["pixels"], drop_random_blobs=mean["blobs"],
            ratio_20=_ratio(mean["cam"]["20%"], mean["pixels"]["20%"]),
            ratio_20_blobs=_ratio(mean["cam"]["20%"], mean["blobs"]["20%"]),
            rank_correlation_random_model=float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
            degenerate_maps=degenerate, rank_correlation_se=se,
            class_discriminative=method not in CLASS_AGNOSTIC))
    return results


# A method "passes" the model-randomisation check when its maps' mean rank correlation with
# those of a random-weights network stays below this (0 = unrelated, 1 = the same picture),
# with the upper end of its 95% interval over the sampled faces, not just the mean.
SANITY_MAX_RHO = 0.5
# Methods whose map does not depend on the class asked about: they cannot answer "why happy?"
# (the app's target choice), so they are measured but never the default.
CLASS_AGNOSTIC = frozenset({"eigencam"})


def report(model: torch.nn.Module, images: torch.Tensor, temperature: float = 1.0, n: int = 300, seed: int = 0,
           split: str = "test", progress: bool = False) -> dict:
    """Measure ``n`` faces drawn (seeded) from ``images`` (uint8 (N, 48, 48)); a JSON-able report."""
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[: min(n, len(images))]
    faces = images[idx].numpy()
    results = measure(model, faces, temperature=temperature, seed=seed, progress=progress)
    return {"num_faces": len(faces), "seed": seed, "split": split, "temperature": temperature,
            "fractions": list(FRACTIONS), **_verdicts(results, len(faces))}


def rederive(rep: dict) -> dict:
    """A stored report (``faithfulness.json``) with its verdicts (default method, checks, table)
    re-derived from its measurements under the current rules; the measurements are unchanged."""
    results = [MethodFaithfulness(**{k: v for k, v in m.items() if k in MethodFaithfulness.__dataclass_fields__})
               for m in rep["methods"]]
    return {**rep, **_verdicts(results, rep["num_faces"])}


def _verdicts(results: list[MethodFaithfulness], n: int) -> dict:
    """The rules, the default method, each method's measurements with its check, and the table."""
    return {"floor_ratio": FLOOR_RATIO, "sanity_max_rho": SANITY_MAX_RHO, "max_flat_share": MAX_FLAT_SHARE,
            "best": best_method(results, n),
            "methods": [{**r.to_dict(), "passes_sanity_check": passes_sanity_check(r)} for r in results],
            "table": markdown_table(results, n)}


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("inf") if a > 0 else float("nan")


def passes_sanity_check(r: MethodFaithfulness) -> bool:
    """The upper end of the 95% interval of the mean rank correlation is below ``SANITY_MAX_RHO``."""
    se = r.rank_correlation_se if np.isfinite(r.rank_correlation_se) else 0.0
    return bool(np.isfinite(r.rank_correlation_random_model)
                and r.rank_correlation_random_model + 1.96 * se < SANITY_MAX_RHO)


# A default method must draw something: a map that is flat (all zero: no evidence anywhere after
# the CAM's ReLU) says "no evidence for <class> in this face". Measured on the 38-epoch release,
# Grad-CAM drew a flat map for 50 of 300 PublicTest faces (and for the astronaut example), HiResCAM
# for none.
MAX_FLAT_SHARE = 0.05


def best_method(results: list[MethodFaithfulness], n: int | None = None) -> str:
    """The default: among class-discriminative methods that pass the model-randomisation check and
    draw a flat map for at most ``MAX_FLAT_SHARE`` of the ``n`` faces, the one whose top-20% removal
    lowers the explained probability most relative to random pixels (falls back to all methods if
    none qualifies)."""
    ok = [r for r in results if r.class_discriminative and passes_sanity_check(r) and np.isfinite(r.ratio_20)
          and (n is None or r.degenerate_maps <= MAX_FLAT_SHARE * n)]
    return max(ok or results, key=lambda r: (r.ratio_20, r.drop["20%"])).method


def markdown_table(results: list[MethodFaithfulness], n: int) -> str:
    lines = [f"Mean decrease of the explained class's probability over {n} PublicTest faces when the top "
             "10 / 20 / 40% of pixels are replaced (ROAD imputation), against the same fraction of random "
             "pixels and of random blobs; rho: rank correlation of the maps with those of a "
             "random-weights network (low is good); flat maps: faces whose map is flat, i.e. no evidence "
             "anywhere (the default method must draw a map for at least 95% of the faces).", "",
             "| method | CAM 10% | CAM 20% | CAM 40% | random px 20% | random blobs 20% | CAM / random px (20%) "
             "| CAM / blobs (20%) | rho vs random model (95% CI) | randomisation check | flat maps |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        se = r.rank_correlation_se if np.isfinite(r.rank_correlation_se) else 0.0
        check = "passes" if passes_sanity_check(r) else "fails"
        if not r.class_discriminative:
            check += " (ignores the class)"
        lines.append(f"| {r.method} | {r.drop['10%']:.3f} | {r.drop['20%']:.3f} | {r.drop['40%']:.3f} | "
                     f"{r.drop_random_pixels['20%']:.3f} | {r.drop_random_blobs['20%']:.3f} | {r.ratio_20:.1f}x | "
                     f"{r.ratio_20_blobs:.1f}x | {r.rank_correlation_random_model:.2f} "
                     f"({r.rank_correlation_random_model - 1.96 * se:.2f}-{r.rank_correlation_random_model + 1.96 * se:.2f})"
                     f" | {check} | {r.degenerate_maps / n:.0%} |")
    return "\n".join(lines)


__all__ = ["CLASS_AGNOSTIC", "measure", "report", "MethodFaithfulness", "best_method", "passes_sanity_check", "SANITY_MAX_RHO",
           "MAX_FLAT_SHARE", "rederive", "markdown_table", "FRACTIONS", "FLOOR_RATIO",
           "CalibratedSoftmaxTarget", "spearman_per_face"]
