"""PublicTest clean (FER2013 labels and FER+ majority labels) and under photo-like corruptions.

    python benchmarks/corruptions.py --data ../shared/data/fer2013 \
        --votes ../shared/data/ferplus/votes.csv [--out corruptions.json] [--limit 1000]

The classifier path only (no detection: PublicTest faces are already 48x48 crops), batched, exactly as
served: ``EmotionClassifier.predict`` with no test-time augmentation, i.e. the app's preprocessing
(``fer_demo.transforms.eval_transform``, which equalises each face) after the corruption. The
corruptions (``train.corruptions``: blur, noise, JPEG, low resolution upscaled, dim, over-exposed,
occlusion, in-plane rotation, perspective turn) are applied to the 48x48 face at 3 strengths each,
deterministically (seeded). Prints a markdown table: accuracy per corruption and strength, the mean
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
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.classify import DEFAULT_WEIGHTS, EmotionClassifier  # noqa: E402
from train.corruptions import CORRUPTIONS, SEVERITIES, corrupt  # noqa: E402
from train.data import IMAGE_SUFFIXES, labelled_files, load_split  # noqa: E402
from train.hardware import describe  # noqa: E402
from train.votes import majority_labels  # noqa: E402


def predict(clf: EmotionClassifier, faces: np.ndarray, batch: int = 512) -> np.ndarray:
    """Predicted class index per face, in batches."""
    return np.concatenate([clf.predict(faces[i:i + batch]).argmax(axis=1) for i in range(0, len(faces), batch)])


def stratified(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of a random subset of about ``n`` faces with the classes in their proportions (sorted)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, max(1, round(n * len(idx) / len(labels))), replace=False))
    return np.sort(np.concatenate(keep))


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

    pred = predict(clf, faces)
    result["clean"] = {"fer2013_labels": {"accuracy": float((pred == labels).mean()), "faces": int(len(labels))}}
    if args.votes is not None:
        files, _ = labelled_files(args.data / "test", args.data, IMAGE_SUFFIXES)
        if len(files) != len(labels):
            raise SystemExit(f"{args.data}/test: {len(files)} files but {len(labels)} faces decoded; cannot match votes")
        votes = majority_labels(args.votes)
        fp = np.array([-1 if votes.get(f.relative_to(args.data).as_posix()) is None
                       else votes[f.relative_to(args.data).as_posix()] for f in files])
        has = fp >= 0
        result["clean"]["ferplus_majority"] = {"accuracy": float((pred[has] == fp[has]).mean()), "faces": int(has.sum())}

    idx = stratified(labels, args.limit, args.seed) if args.limit else np.arange(len(labels))
    sub_faces, sub_labels = faces[idx], labels[idx]
    result["corrupted_faces"] = int(len(idx))
    result["clean_on_subset"] = float((pred[idx] == sub_labels).mean())
    table: dict[str, dict] = {}
    jobs = [(name, s) for name in CORRUPTIONS for s in SEVERITIES]
    for k, (name, s) in enumerate(tqdm(jobs, desc="corruptions", unit="run", disable=args.no_progress)):
        bad = corrupt(sub_faces, name, s, seed=args.seed * 1000 + k)
        acc = float((predict(clf, bad) == sub_labels).mean())
        table.setdefault(name, {"by_severity": {}})["by_severity"][str(s)] = acc
    for row in table.values():
        row["mean"] = float(np.mean(list(row["by_severity"].values())))
    result["corruptions"] = table
    result["mean_corruption_accuracy"] = float(np.mean([r["mean"] for r in table.values()]))
    result["seconds"] = round(time.perf_counter() - t0, 1)

    c = result["clean"]
    print(f"PublicTest ({c['fer2013_labels']['faces']} faces), FER2013 labels: {c['fer2013_labels']['accuracy']:.4f}")
    if "ferplus_majority" in c:
        print(f"PublicTest ({c['ferplus_majority']['faces']} faces with a FER+ majority), FER+ majority labels: "
              f"{c['ferplus_majority']['accuracy']:.4f}")
    print(f"\ncorruptions on {len(idx)} faces (clean accuracy on them {result['clean_on_subset']:.4f}), FER2013 labels:\n")
    print("| corruption | " + " | ".join(f"strength {s}" for s in SEVERITIES) + " | mean |")
    print("|---|" + "---:|" * (len(SEVERITIES) + 1))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row['by_severity'][str(s)]:.3f}" for s in SEVERITIES) + f" | {row['mean']:.3f} |")
    print(f"| **mean of all** | | | | **{result['mean_corruption_accuracy']:.3f}** |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
