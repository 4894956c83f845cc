"""The whole pipeline on labelled real photos: the app's own ``Predictor``, every photo counted.

    python benchmarks/real_photos.py --data ../shared/data/sfew-dev [--out sfew.json] [--crops /tmp/crops]

``--data`` is a ``ROOT/<class>/*`` folder of photos (class folders named as ``fer_demo.model.EMOTIONS``;
other folders are an error). Each photo goes through ``Predictor.analyze`` exactly as the app runs it
(default detector settings, no heatmap, no test-time augmentation); the **largest** face of each photo
(box area) is scored (the labelled person is usually the main face) and a photo without a face counts
as wrong. Abstention is off here: the label is scored even when the face's quality assessment would
refuse it (``benchmarks/selective.py`` measures abstention from this script's JSON).

Prints accuracy, balanced accuracy, per-class recall, the confusion matrix (with a "no face" column),
the share of the most-predicted class among the answers, the photos without a face, and 95%
bootstrap intervals that resample whole films (``train.scoring.film_of``: frames of one film are
correlated). The measuring is ``train.real_photos`` (shared with ``python -m train robustness``). ``--out`` writes all of it and one record per photo (file name, film, label, probabilities,
box, quality) as JSON; keep that file out of the repository when the photos' licence says so (SFEW).

Detector settings can be overridden to measure alternatives (``--max-side``, ``--min-face-frac``,
``--min-score``, ``--thresholds``); without them the app's defaults (``fer_demo.limits``,
``fer_demo.detect``) are used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.classify import DEFAULT_WEIGHTS  # noqa: E402
from fer_demo.detect import FaceDetector  # noqa: E402
from fer_demo.pipeline import Predictor  # noqa: E402
from train.dataset import DataError  # noqa: E402
from train.real_photos import labelled_photos as _labelled_photos  # noqa: E402
from train.real_photos import report, run_photos, summarise  # noqa: E402


def labelled_photos(root: Path) -> list[tuple[Path, int]]:
    """``train.real_photos.labelled_photos``, a bad folder ending the script with its message."""
    try:
        return _labelled_photos(root)
    except DataError as e:
        raise SystemExit(f"--data {e}") from None


def build_predictor(args: argparse.Namespace) -> Predictor:
    """The app's Predictor, with the detector settings given on the command line (else the app's)."""
    overrides = {k: v for k, v in (("max_side", args.max_side), ("min_face_frac", args.min_face_frac),
                                   ("min_score", args.min_score), ("thresholds", args.thresholds)) if v is not None}
    detector = FaceDetector(**overrides) if overrides else None
    return Predictor(args.weights, detector=detector, abstain=False)  # scored as answered; quality recorded


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="ROOT/<class>/*.jpg folder of labelled photos")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="classifier release (.safetensors)")
    p.add_argument("--out", type=Path, default=None, help="write the scores and one record per photo as JSON")
    p.add_argument("--crops", type=Path, default=None, help="save each scored face as the network saw it here")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the films [2000]")
    p.add_argument("--max-side", type=int, default=None, help="detector: longer side of the detection copy")
    p.add_argument("--min-face-frac", type=float, default=None, help="detector: smallest face / shorter side")
    p.add_argument("--min-score", type=float, default=None, help="detector: final face probability to keep")
    p.add_argument("--thresholds", type=float, nargs=3, default=None, help="detector: MTCNN stage thresholds")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    photos = labelled_photos(args.data)
    predictor = build_predictor(args)
    d = predictor.detector
    settings = {"weights": str(args.weights), "max_side": d.max_side, "min_face_frac": d.min_face_frac,
                "min_score": d.min_score, "thresholds": list(d.thresholds), "autocontrast": d.autocontrast, "face": "largest", "tta": "none"}
    t0 = time.perf_counter()
    records = run_photos(predictor, photos, args.crops, progress=not args.no_progress)
    score = summarise(records, args.bootstrap)
    print(f"settings: {json.dumps(settings)}  ({time.perf_counter() - t0:.0f} s)")
    print(report(score))
    result = {"data": str(args.data), "settings": settings, "score": score, "records": records}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
