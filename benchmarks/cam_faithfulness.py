"""Faithfulness of every CAM method the app offers, on PublicTest faces (``train.faithfulness``).

    python benchmarks/cam_faithfulness.py                                  # 300 faces, prints the table
    python benchmarks/cam_faithfulness.py --faces 300 --out weights/faithfulness.json   # what the Model page shows

Removal (ROAD from ``pytorch_grad_cam.metrics``) of the top 10/20/40% of pixels by each CAM
against random pixels and random blobs, and the rank correlation with the maps of a
random-weights network (Adebayo et al. 2018). Uses the release's calibration temperature for
the probabilities. ~2-3 s per face for all five methods on a 2-vCPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.classify import DEFAULT_WEIGHTS, card_temperatures  # noqa: E402
from fer_demo.weights import load_model  # noqa: E402
from train.data import load_split  # noqa: E402
from train.faithfulness import FLOOR_RATIO, report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013"), help="FER2013 root or CSV")
    p.add_argument("--faces", type=int, default=300, help="faces sampled from the evaluation split [300]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    args = p.parse_args(argv)
    model, card = load_model(args.weights)
    data = load_split(args.data, "test", progress=False)
    rep = report(model, data.images, card_temperatures(card.extra).get("none", 1.0), args.faces, args.seed,
                 progress=True)
    print(rep["table"])
    best = next(m for m in rep["methods"] if m["method"] == rep["best"])
    verdict = "meets" if best["ratio_20"] >= FLOOR_RATIO else "does NOT meet"
    print(f"\nbest method: {rep['best']} (top-20% removal {best['ratio_20']:.1f}x random pixels; "
          f"{verdict} the {FLOOR_RATIO:g}x floor)")
    if args.out:
        args.out.write_text(json.dumps(rep, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
