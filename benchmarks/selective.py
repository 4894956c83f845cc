"""Selective prediction: accuracy on the faces the app answers against the share it answers.

    python benchmarks/real_photos.py --data ../shared/data/sfew-dev --out sfew.json
    python benchmarks/selective.py --photos sfew.json --data ../shared/data/fer2013 --plot risk_coverage.png

Two sets: the faces found in real photos (the JSON of ``benchmarks/real_photos.py``, which holds each
scored face's quality measurements, ``fer_demo.quality``) and PublicTest (the classifier path: each
48x48 face is assessed as a face of 48 px without landmarks, so there size and pose never refuse).

For each set it draws risk-coverage curves (coverage = share of faces answered, accuracy on the
answered ones) for (a) the calibrated confidence alone, swept, and (b) the quality floors of
``fer_demo.quality.DEFAULT_THRESHOLDS`` (size, sharpness, brightness, pose, detector score) with the
confidence floor swept on top, (c) the margin floor swept instead; and it reports the operating point
of the release's own thresholds (``fer_demo.quality.card_thresholds`` of ``--weights``: the floors its
card chose): its coverage, the accuracy on the answered faces, and the accuracy on all faces found
(abstention off). On the photos it also prints what ``train.selective.choose`` would choose on them
and how that choice does on films it was not chosen on (``train.selective.cross_validate``). On the photos it also gives the figures over *all* photos (a photo without a face counted as
not answered). The measuring is ``train.selective``, shared with ``python -m train robustness``.
Writes the curves and the points as JSON (``--out``) and a PNG plot (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.model import EMOTIONS  # noqa: E402
from fer_demo.quality import DEFAULT_THRESHOLDS, QualityThresholds, card_thresholds  # noqa: E402
from fer_demo.weights import card_path  # noqa: E402
from train.selective import photo_choice, photo_selective, publictest_selective  # noqa: E402

def photo_set(path: Path, thresholds: QualityThresholds) -> dict:
    """Curves for the faces in a ``real_photos.py`` JSON, plus the point over all photos."""
    records = json.loads(path.read_text())["records"]
    out = photo_selective(records, thresholds)
    out["source"] = str(path)
    out["would_choose"] = photo_choice(records, DEFAULT_THRESHOLDS)[1]
    return out


def publictest_set(data_root: Path, weights: Path, thresholds: QualityThresholds, cache: Path | None = None) -> dict:
    """Curves for PublicTest through the classifier, each face assessed as a 48 px face without pose.

    ``cache``: an .npz of the probabilities, written on the first run and read on later ones (same weights).
    """
    from fer_demo.classify import EmotionClassifier
    from train.data import load_split
    from train.publictest import predict_probs

    data = load_split(data_root, "test", progress=False)
    faces, labels = data.images.numpy(), data.labels.numpy()
    if cache is not None and cache.is_file():
        probs = np.load(cache)["probs"]
    else:
        probs = predict_probs(EmotionClassifier(weights), faces)
        if cache is not None:
            np.savez(cache, probs=probs)
    out = publictest_selective(faces, labels, probs, thresholds)
    out["source"] = data.source
    return out


def plot(sets: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4.5), squeeze=False)
    for ax, (name, s) in zip(axes[0], sets.items()):
        for key, style, label in (("confidence_only", "o-", "confidence alone"),
                                  ("quality_and_confidence", "s-", "quality floors + confidence"),
                                  ("quality_and_margin", "^-", "quality floors + confidence + margin")):
            pts = [p for p in s[key] if p["answered"]]
            ax.plot([p["coverage"] for p in pts], [p["answered_accuracy"] for p in pts], style, ms=3, label=label)
        c = s["chosen"]
        ax.plot([c["coverage"]], [c["answered_accuracy"]], "r*", ms=14, label="the release's thresholds")
        ax.axhline(s["all_faces_accuracy"], color="grey", ls="--", lw=1, label="no abstention")
        ax.axvline(0.7, color="grey", ls=":", lw=1)
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("coverage (share of faces answered)")
        ax.set_ylabel("accuracy on the answered faces")
        ax.set_title(f"{name} ({s['faces']} faces)")
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, required=True, help="JSON written by benchmarks/real_photos.py --out")
    p.add_argument("--data", type=Path, default=None, help="FER2013 folder root: add PublicTest")
    p.add_argument("--weights", type=Path, default=ROOT / "weights" / "fer_vgg19.safetensors")
    p.add_argument("--cache", type=Path, default=None, help="PublicTest probabilities .npz to reuse (same weights)")
    p.add_argument("--out", type=Path, default=None, help="write curves and points as JSON")
    p.add_argument("--plot", type=Path, default=None, help="write the risk-coverage plot (PNG)")
    args = p.parse_args(argv)
    t = card_thresholds(json.loads(card_path(args.weights).read_text()))
    sets = {"photos": photo_set(args.photos, t)}
    if args.data is not None:
        sets["PublicTest"] = publictest_set(args.data, args.weights, t, args.cache)
    print(f"thresholds: {t}")
    for name, s in sets.items():
        c = s["chosen"]
        print(f"{name}: {s['faces']} faces, accuracy with no abstention {s['all_faces_accuracy']:.3f}; "
              f"the release's thresholds answer {c['coverage']:.1%} ({c['answered']}) at {c['answered_accuracy']:.3f} "
              f"({c['gain_points']:+.1f} points); refused for {c['refused_for']}")
        if "over_all_photos" in s:
            o = s["over_all_photos"]
            print(f"  over all {o['photos']} photos: answered {o['coverage']:.1%}")
        if s.get("would_choose"):
            w, cv = s["would_choose"], s["would_choose"]["cross_validated"]
            print(f"  train.selective.choose on these faces: min_confidence {w['thresholds']['min_confidence']:g}, "
                  f"min_margin {w['thresholds']['min_margin']:g}" + (f"; chosen on other films: {cv['coverage']:.1%} answered at "
                                            f"{cv['answered_accuracy']:.3f} ({cv['gain_points']:+.1f} points, "
                                            f"5-95% {cv['gain_points_p05_p95'][0]:+.1f} to "
                                            f"{cv['gain_points_p05_p95'][1]:+.1f})" if cv else ""))
        print("  confidence alone: " + ", ".join(
            f">={q['min_confidence']:.2f}: {q['coverage']:.0%}/{q['answered_accuracy']:.3f}"
            for q in s["confidence_only"][::4]))
        print("  quality floors + confidence: " + ", ".join(
            f">={q['min_confidence']:.2f}: {q['coverage']:.0%}/{q['answered_accuracy']:.3f}"
            for q in s["quality_and_confidence"][::4]))
        print("  quality floors + margin: " + ", ".join(
            f">={q['min_margin']:.2f}: {q['coverage']:.0%}/{q['answered_accuracy']:.3f}"
            for q in s["quality_and_margin"][::2]))
    result = {"thresholds": t.__dict__, "classes": list(EMOTIONS), "sets": sets}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(sets, args.plot)
    return result


if __name__ == "__main__":
    main()
