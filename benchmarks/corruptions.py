"""PublicTest clean (FER2013 labels and FER+ majority labels) and under photo-like corruptions.

    python benchmarks/corruptions.py --data ../shared/data/fer2013 \
        --votes ../shared/data/ferplus/votes.csv [--out corruptions.json] [--limit 1000]

The classifier path only (no detection: PublicTest faces are already 48x48 crops), batched, exactly as
served: ``EmotionClassifier.predict`` with no test-time augmentation, i.e. the app's preprocessing
(``fer_demo.transforms.eval_transform``, which equalises each face) after the corruption. The
corruptions (``train.corruptions``: blur, noise, JPEG, low resolution upscaled, dim, over-exposed,
occlusion, in-plane rotation, perspective turn) are applied to the 48x48 face at 3 strengths each,
deterministically (seeded); the measuring is ``train.publictest``, shared with ``python -m train
robustness``. Prints a markdown table: accuracy per corruption and strength, the mean
over strengths, and the mean over all corruptions (the number the issue's floor compares);
``--out`` writes the same as JSON. ``--limit N`` scores a class-stratified random subset of N faces
(same subset every run) for a quicker estimate.

The FER+ row scores the faces that have a FER+ majority label (``train.votes``); FER2013's and FER+'s
labels disagree on a third of faces, so the two numbers are never mixed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.classify import DEFAULT_WEIGHTS, EmotionClassifier  # noqa: E402
from train.data import load_split  # noqa: E402
from train.hardware import describe  # noqa: E402
from train.publictest import (clean_scores, corruption_markdown, corruption_table, ferplus_majority,  # noqa: E402
                              predict_probs, stratified)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013", help="FER2013 folder root")
    p.add_argument("--votes", type=Path, default=None, help="path-keyed FER+ votes (votes.csv) for the FER+ row")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--limit", type=int, default=None, help="score a stratified subset of this many faces")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    data = load_split(args.data, "test", progress=not args.no_progress)
    faces, labels = data.images.numpy(), data.labels.numpy()
    clf = EmotionClassifier(args.weights)
    t0 = time.perf_counter()
    result: dict = {"data": data.source, "weights": str(args.weights), "tta": "none", "hardware": asdict(describe())}

    pred = predict_probs(clf, faces).argmax(axis=1)
    fp = None
    if args.votes is not None:
        fp = ferplus_majority(args.data, args.votes)
        if len(fp) != len(labels):
            raise SystemExit(f"{args.data}/test: {len(fp)} files but {len(labels)} faces decoded; cannot match votes")
    result["clean"] = clean_scores(pred, labels, fp)

    idx = stratified(labels, args.limit, args.seed) if args.limit else np.arange(len(labels))
    sub_labels = labels[idx]
    result["corrupted_faces"] = int(len(idx))
    result["clean_on_subset"] = float((pred[idx] == sub_labels).mean())
    table = corruption_table(clf, faces[idx], sub_labels, args.seed, progress=not args.no_progress)
    result["corruptions"] = table["corruptions"]
    result["mean_corruption_accuracy"] = table["mean_corruption_accuracy"]
    result["seconds"] = round(time.perf_counter() - t0, 1)

    c = result["clean"]
    print(f"PublicTest ({c['fer2013_labels']['faces']} faces), FER2013 labels: {c['fer2013_labels']['accuracy']:.4f}")
    if "ferplus_majority" in c:
        print(f"PublicTest ({c['ferplus_majority']['faces']} faces with a FER+ majority), FER+ majority labels: "
              f"{c['ferplus_majority']['accuracy']:.4f}")
    print(f"\ncorruptions on {len(idx)} faces (clean accuracy on them {result['clean_on_subset']:.4f}), FER2013 labels:\n")
    print(corruption_markdown(table))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
