"""Command line: ``python -m train {fit,evaluate,export} ...``.

    python -m train fit --data ../shared/data/fer2013 --out runs/release
    python -m train fit --out runs/release --resume          # continue a killed run (same flags)
    python -m train status --out runs/release                # where a run stands, ETA, hardware
    python -m train export --run runs/release --to weights   # fp16 release + card + metrics
    python -m train evaluate --weights weights/fer_vgg19.safetensors --data ROOT [--split test] [--tta flip]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


from fer_demo.weights import ModelCard, load_model, save_model
from train.config import TrainConfig, add_config_args, config_from_args, config_from_dict
from train.data import load_split
from train.engine import evaluate
from train.metrics import plot_confusion

RELEASE_NAME = "fer_vgg19.safetensors"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="train a model")
    add_config_args(f)
    f.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint; flags not given are the run's own")
    f.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    e = sub.add_parser("evaluate", help="print metrics JSON of a model on a dataset")
    e.add_argument("--weights", required=True, help=".safetensors file with its .json card beside it")
    e.add_argument("--data", required=True, help="FER2013 folder root or CSV")
    e.add_argument("--split", default="test", help="train, test (PublicTest) or private (CSV only)")
    e.add_argument("--tta", nargs="?", const="flip", default="none", choices=["none", "flip", "tencrop"],
                   help="test-time augmentation (--tta alone means flip)")
    e.add_argument("--batch-size", type=int, default=256)
    s = sub.add_parser("status", help="where a run stands: epochs, best accuracy, throughput, ETA, hardware")
    s.add_argument("--out", required=True, help="run directory of python -m train fit")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    x = sub.add_parser("export", help="write a run's best epoch as the release (fp16) into a folder")
    x.add_argument("--run", required=True, help="run directory of python -m train fit")
    x.add_argument("--to", default="weights", help="destination folder (default: weights)")
    x.add_argument("--tencrop", action="store_true", help="also score ten-crop TTA (10x the evaluation time)")
    x.add_argument("--no-eval", action="store_true", help="copy the run's metrics instead of re-scoring fp16")
    return p


def saved_config(out: str) -> TrainConfig | None:
    """The config a run in ``out`` was started with (its config.json), for ``fit --resume``."""
    path = Path(out) / "config.json"
    try:
        return config_from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # fit's own checks say what is wrong with the run directory


def cmd_evaluate(args: argparse.Namespace) -> dict:
    model, card = load_model(args.weights)
    data = load_split(args.data, args.split, progress=sys.stderr.isatty())
    metrics, _ = evaluate(model, data, batch_size=args.batch_size, tta=args.tta, progress=sys.stderr.isatty())
    metrics["weights"] = str(args.weights)
    print(json.dumps(metrics, indent=2))
    return metrics


def cmd_export(args: argparse.Namespace) -> Path:
    run, to = Path(args.run), Path(args.to)
    model, card = load_model(run / "best.safetensors")
    training = card.extra.get("training", {})
    metrics = card.extra.get("metrics", {})
    to.mkdir(parents=True, exist_ok=True)
    dest = to / RELEASE_NAME
    save_model(model, dest, ModelCard.current(**card.extra))  # fp16
    if not args.no_eval:
        # Score what we ship: the fp16 weights, reloaded, on the run's evaluation split.
        shipped, _ = load_model(dest)
        data = load_split(training["data"], "test")
        metrics, _ = evaluate(shipped, data, progress=True)
        metrics.update(epoch=card.extra.get("metrics", {}).get("epoch"), data=training["data"], weights_dtype="float16")
        for tta in ("flip",) + (("tencrop",) if args.tencrop else ()):
            m, _ = evaluate(shipped, data, tta=tta, progress=True)
            metrics[f"accuracy_tta_{tta}"] = m["accuracy"]
        save_model(model, dest, ModelCard.current(**{**card.extra, "metrics": metrics}))
    (to / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion(metrics["confusion_matrix"], to / "confusion.png",
                   f"PublicTest ({metrics['num_images']} images) — accuracy {metrics['accuracy']:.4f}")
    for name in ("history.csv", "curves.png"):
        if (run / name).is_file():
            shutil.copy2(run / name, to / name)
    print(f"wrote {dest} (+ card, metrics.json, confusion.png); accuracy {metrics['accuracy']:.4f}")
    return dest


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from fer_demo.model import ImageNetWeightsUnavailable
    from fer_demo.weights import ModelFileError
    from train.data import DataError
    from train.fit import CheckpointWriteError, ResumeError, fit
    from train.status import StatusError

    try:
        if args.command == "fit":
            base = saved_config(getattr(args, "out", TrainConfig.out)) if args.resume else None
            metrics = fit(config_from_args(args, base), resume=args.resume, device=args.device)
            print(json.dumps({k: metrics[k] for k in ("accuracy", "macro_f1", "epoch")}))
        elif args.command == "evaluate":
            cmd_evaluate(args)
        elif args.command == "export":
            cmd_export(args)
        elif args.command == "status":
            from train.status import format_status, run_status

            st = run_status(args.out)
            print(json.dumps(st.to_dict(), indent=2) if args.json else format_status(st))
    except (DataError, ModelFileError, ResumeError, StatusError, ImageNetWeightsUnavailable, CheckpointWriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the run directory: not a directory, no permission, disk full
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot write{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
