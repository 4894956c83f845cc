"""Command line: ``python -m train {fit,status,export,calibrate,evaluate} ...``.

    python -m train fit --data ../shared/data/fer2013 --out runs/release
    python -m train fit --out runs/release --resume          # continue a killed run (same flags)
    python -m train status --out runs/release                # where a run stands, ETA, hardware
    python -m train export --run runs/release --to weights   # fp16 release + card + metrics + calibration
    python -m train calibrate --weights weights/fer_vgg19.safetensors --data ROOT   # re-fit T of a release
    python -m train card --weights weights/fer_vgg19.safetensors   # MODEL_CARD.md from the release files
    python -m train evaluate --weights weights/fer_vgg19.safetensors --data ROOT [--split test] [--tta flip]
    python -m train export-onnx --out fer_vgg19.onnx --data ROOT [--int8]   # ONNX (+ int8), checked on PublicTest
    python -m train robustness --weights weights/fer_vgg19.safetensors --data ROOT --votes VOTES --photos PHOTOS
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import sys
from pathlib import Path

import torch

from fer_demo.classify import card_temperatures
from fer_demo.model_card import model_card_markdown
from fer_demo.weights import ModelCard, ModelFileError, card_path, load_model, save_model
from train.calibrate import calibrate
from train.config import TrainConfig, add_config_args, config_from_args, config_from_dict
from train.data import load_split
from train.engine import evaluate
from train.metrics import plot_confusion, plot_history, plot_reliability
from train.status import compute_summary

RELEASE_NAME = "fer_vgg19.safetensors"
# What export measures about the model it ships, beside the weights.
RELEASE_MEASUREMENTS = ("calibration.json", "reliability.png", "faithfulness.json", "MODEL_CARD.md", "reference.csv.gz",
                        "robustness.json")


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
    e.add_argument("--ferplus", default=None, help="score against FER+ majority labels (fer2013new.csv; CSV --data)")
    s = sub.add_parser("status", help="where a run stands: epochs, best accuracy, throughput, ETA, hardware")
    s.add_argument("--out", required=True, help="run directory of python -m train fit")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    c = sub.add_parser("calibrate", help="fit the release's temperature per TTA mode and write its calibration")
    c.add_argument("--weights", required=True, help=".safetensors release file (its card is updated in place)")
    c.add_argument("--data", required=True, help="FER2013 folder root or CSV: its evaluation split (PublicTest)")
    r = sub.add_parser("reference", help="write the monitoring reference (reference.csv.gz) beside a release")
    r.add_argument("--weights", required=True, help=".safetensors release file")
    r.add_argument("--data", required=True, help="FER2013 folder root or CSV: its evaluation split (PublicTest)")
    mc = sub.add_parser("card", help="redraw a release's plots and MODEL_CARD.md from its own files")
    mc.add_argument("--weights", required=True, help=".safetensors release file")
    x = sub.add_parser("export", help="write a run's best epoch as the release (fp16) into a folder")
    x.add_argument("--run", required=True, help="run directory of python -m train fit")
    x.add_argument("--to", default="weights", help="destination folder (default: weights)")
    x.add_argument("--data", default=None,
                   help="FER2013 folder root or CSV to score on (default: the run's --data; give it for a run "
                        "trained on another machine)")
    x.add_argument("--epoch", type=int, default=None,
                   help="export this epoch's model (epochs/epoch_NNN.safetensors of a --keep-epochs run) instead of "
                        "the best on PublicTest, e.g. the one chosen on real photos")
    x.add_argument("--no-eval", action="store_true", help="copy the run's metrics instead of re-scoring fp16")
    x.add_argument("--faithfulness-faces", type=int, default=300,
                   help="evaluation faces for the CAM faithfulness report (0: skip; ~2-3 s a face on 2 vCPUs)")
    x.add_argument("--votes", default=None, help="FER+ votes (votes.csv): measure robustness.json too, with "
                   "PublicTest scored against FER+ majority labels (see the robustness command)")
    x.add_argument("--photos", default=None, help="ROOT/<class>/* labelled photos: measure robustness.json too, "
                   "with the whole pipeline on these photos (see the robustness command)")
    rb = sub.add_parser("robustness", help="measure a release on real photos, FER+ labels, corruptions and "
                        "abstention; robustness.json beside the weights")
    rb.add_argument("--weights", default="weights/fer_vgg19.safetensors", help=".safetensors release file")
    rb.add_argument("--data", default=None, help="FER2013 folder root: PublicTest clean, abstention and corruptions")
    rb.add_argument("--votes", default=None, help="FER+ votes (votes.csv): PublicTest against FER+ majority labels")
    rb.add_argument("--photos", default=None, help="ROOT/<class>/* labelled photos (e.g. sfew-dev): the whole pipeline")
    rb.add_argument("--corruption-faces", type=int, default=None,
                    help="corrupt a class-stratified subset of this many PublicTest faces (default all; 0: skip)")
    rb.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the films [2000]")
    o = sub.add_parser("export-onnx", help="write a release as ONNX (fp32, and int8 with --int8) and check it against "
                       "PyTorch on PublicTest")
    o.add_argument("--weights", default="weights/fer_vgg19.safetensors", help=".safetensors release file")
    o.add_argument("--out", required=True, help="the .onnx file to write")
    o.add_argument("--data", default=None, help="FER2013 folder root or CSV: check on its PublicTest split "
                   "(top-1 agreement >= 99.5%%, probabilities within 0.02; fails otherwise)")
    o.add_argument("--int8", action="store_true", help="also write <out stem>.int8.onnx (onnxruntime static "
                   "quantization, calibrated on --data's Training faces), only if it passes the same check")
    o.add_argument("--calibration-faces", type=int, default=300, help="Training faces to calibrate int8 on [300]")
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
    data = load_split(args.data, args.split, progress=sys.stderr.isatty(), ferplus=args.ferplus)
    # Score what the app shows: the card's temperature for this TTA mode (none: uncalibrated weights).
    temperature = card_temperatures(card.extra).get(args.tta)
    metrics, _ = evaluate(model, data, batch_size=args.batch_size, tta=args.tta, progress=sys.stderr.isatty(),
                          temperature=temperature)
    metrics["weights"] = str(args.weights)
    print(json.dumps(metrics, indent=2))
    c = metrics["calibration"]
    rows = [("before scaling (T=1)", c["before"])] + ([(f"after scaling (T={c['temperature']:g})", c["after"])]
                                                       if "after" in c else [])
    print(f"accuracy {metrics['accuracy']:.4f} ({args.tta} TTA, {metrics['num_images']} images)", file=sys.stderr)
    for name, m in rows:
        print(f"{name:>24}: ECE {m['ece']:.4f}  NLL {m['nll']:.4f}  Brier {m['brier']:.4f}", file=sys.stderr)
    return metrics


def write_model_card(dest: Path) -> Path:
    """``MODEL_CARD.md`` beside the release, from its card, ``faithfulness.json`` and ``robustness.json``."""
    from train.robustness import read_robustness

    card = json.loads(card_path(dest).read_text())
    faith_path = dest.parent / "faithfulness.json"
    faith = json.loads(faith_path.read_text()) if faith_path.is_file() else None
    out = dest.parent / "MODEL_CARD.md"
    out.write_text(model_card_markdown(card, faith, front_matter=True, robustness=read_robustness(dest)))
    return out


def cmd_robustness(weights: str | Path, data: str | None, votes: str | None, photos: str | None,
                   corruption_faces: int | None = None, n_boot: int = 2000, command: str | None = None) -> Path:
    """Measure the release and write ``robustness.json`` beside it (``train.robustness``)."""
    from train.robustness import measure, summary_lines, write_chosen_thresholds, write_robustness

    load_model(weights)  # a readable release, or a clear error before minutes of work
    report = measure(weights, data, votes, photos, corruption_faces=corruption_faces, n_boot=n_boot,
                     progress=sys.stderr.isatty(), command=command)
    out = write_robustness(weights, report)
    card = write_chosen_thresholds(weights, report)
    print("\n".join(summary_lines(report)))
    print(f"wrote {out}" + (f"; abstention floors {report.photos['selective']['choice']['thresholds']} into {card}"
                            if card else ""))
    return out


def cmd_card(args: argparse.Namespace) -> None:
    """Redraw a release's plots from its own files (metrics, calibration, history) and its MODEL_CARD.md."""
    dest = Path(args.weights)
    _, card = load_model(dest)  # a readable release, or a clear error
    to = dest.parent
    metrics = card.extra.get("metrics")
    if metrics:
        plot_confusion(metrics["confusion_matrix"], to / "confusion.png",
                       f"PublicTest ({metrics['num_images']} images) — accuracy {metrics['accuracy']:.4f}")
    if card.extra.get("calibration"):
        plot_reliability(card.extra["calibration"], to / "reliability.png")
    if (to / "history.csv").is_file():
        with open(to / "history.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows and {"train_loss", "val_loss", "train_acc", "val_acc"} <= set(rows[0]):
            plot_history(rows, to / "curves.png")
    faith_path = to / "faithfulness.json"
    if faith_path.is_file():  # the verdicts under the current rules (the measurements stay as measured)
        from train.faithfulness import rederive

        faith_path.write_text(json.dumps(rederive(json.loads(faith_path.read_text())), indent=2) + "\n")
    print(f"wrote {write_model_card(dest)} and the plots in {to}")


def write_reference(weights: str | Path, data_root: str, progress: bool = True) -> Path:
    """The monitoring reference (``train.reference``; imported here so ``fit`` does not need pandas)."""
    from train.reference import write_reference as write

    return write(weights, data_root, progress=progress)


def write_faithfulness(dest: Path, data_root: str, faces: int) -> dict:
    """Measure every CAM method on ``faces`` evaluation faces; ``faithfulness.json`` beside the release."""
    from train.faithfulness import report as faithfulness_report  # pytorch-grad-cam: export only, not fit

    model, card = load_model(dest)
    data = load_split(data_root, "test", progress=False)
    rep = faithfulness_report(model, data.images, card_temperatures(card.extra).get("none", 1.0), faces,
                              progress=True)
    (dest.parent / "faithfulness.json").write_text(json.dumps(rep, indent=2) + "\n")
    print(rep["table"])
    return rep


def write_calibrated_release(dest: Path, data_root: str, metrics: dict) -> dict:
    """Calibrate the release file ``dest`` (as shipped) on ``data_root``'s evaluation split and write
    the card's ``calibration`` and ``metrics``, ``metrics.json``, ``calibration.json``,
    ``reliability.png`` and ``confusion.png`` beside it. ``metrics``: fields to keep (epoch, ...)."""
    shipped, card = load_model(dest)
    data = load_split(data_root, "test")
    calibration, by_mode = calibrate(shipped, data, progress=True)
    new = by_mode["none"]
    new.update({k: metrics[k] for k in ("epoch", "weights", "weights_dtype") if k in metrics})
    new["data"] = data_root
    for tta in ("flip", "tencrop"):
        new[f"accuracy_tta_{tta}"] = by_mode[tta]["accuracy"]
    extra = {**card.extra, "metrics": new, "calibration": calibration}
    before = ((card.extra.get("calibration") or {}).get("temperature") or {}).get("none")
    if "abstention" in extra and before != calibration["temperature"]["none"]:
        # Its floors were chosen on probabilities at the old temperature: they no longer mean the same.
        del extra["abstention"]
        print("the card's abstention floors were chosen at another temperature and are dropped: the app uses "
              "fer_demo.quality.DEFAULT_THRESHOLDS until python -m train robustness --photos ... chooses new ones")
    save_model(shipped, dest, ModelCard.current(**extra), dtype=torch.float16)
    to = dest.parent
    (to / "metrics.json").write_text(json.dumps(new, indent=2) + "\n")
    (to / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
    plot_reliability(calibration, to / "reliability.png")
    plot_confusion(new["confusion_matrix"], to / "confusion.png",
                   f"PublicTest ({new['num_images']} images) — accuracy {new['accuracy']:.4f}")
    t = calibration["temperature"]
    m = calibration["modes"]["none"]
    print(f"calibrated {dest}: T none/flip/tencrop {t['none']:g}/{t['flip']:g}/{t['tencrop']:g}; "
          f"ECE {m['before']['ece']:.4f} -> {m['after']['ece']:.4f}")
    return new


def cmd_calibrate(args: argparse.Namespace) -> dict:
    dest = Path(args.weights)
    _, card = load_model(dest)
    metrics = write_calibrated_release(dest, args.data, card.extra.get("metrics") or {})
    write_model_card(dest)
    return metrics


def cmd_export(args: argparse.Namespace) -> Path:
    run, to = Path(args.run), Path(args.to)
    source = run / "best.safetensors"
    if args.epoch is not None:
        source = run / "epochs" / f"epoch_{args.epoch:03d}.safetensors"
        if not source.is_file():
            kept = sorted(p.name for p in (run / "epochs").glob("epoch_*.safetensors")) if (run / "epochs").is_dir() else []
            raise ModelFileError(f"{source}: no such epoch file; this run kept {kept or 'none'} "
                                    "(python -m train fit --keep-epochs keeps every epoch)")
    model, card = load_model(source)
    training = card.extra.get("training", {})
    metrics = card.extra.get("metrics", {})
    data = args.data or training["data"]
    # What the shipped epoch cost, by hardware (the run's history up to that epoch), for the card.
    training["compute"] = compute_summary(run, metrics.get("epoch"))
    training["epochs_done"] = compute_summary(run)["epochs"]  # so the card can tell a finished run from an interim one
    to.mkdir(parents=True, exist_ok=True)
    dest = to / RELEASE_NAME
    for stale in RELEASE_MEASUREMENTS:  # a previous model's measurements must not describe this one
        (to / stale).unlink(missing_ok=True)
    extra = {k: v for k, v in card.extra.items() if k != "calibration"}
    save_model(model, dest, ModelCard.current(**{**extra, "training": training}))  # fp16
    for name in ("history.csv", "curves.png"):
        if (run / name).is_file():
            shutil.copy2(run / name, to / name)
    if args.no_eval:
        (to / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        plot_confusion(metrics["confusion_matrix"], to / "confusion.png",
                       f"PublicTest ({metrics['num_images']} images) — accuracy {metrics['accuracy']:.4f}")
    else:  # score and calibrate what we ship: the fp16 weights, reloaded, on the run's evaluation split
        metrics = write_calibrated_release(dest, data, {**metrics, "weights_dtype": "float16"})
        if args.faithfulness_faces > 0:
            write_faithfulness(dest, data, args.faithfulness_faces)
        print(f"wrote {write_reference(dest, data)} (monitoring reference)")
    if args.votes is not None or args.photos is not None:
        cmd_robustness(dest, data, args.votes, args.photos, command=getattr(args, "command_line", None))
    write_model_card(dest)
    print(f"wrote {dest} (+ card, metrics.json, confusion.png); accuracy {metrics['accuracy']:.4f}")
    return dest


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    # What robustness.json records as the command that measured it: this call's own arguments.
    args.command_line = "python -m train " + shlex.join(sys.argv[1:] if argv is None else argv)
    from fer_demo.model import ImageNetWeightsUnavailable
    from train.data import DataError
    from train.fit import CheckpointWriteError, ResumeError, fit
    from train.onnx_export import OnnxUnavailable
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
        elif args.command == "calibrate":
            cmd_calibrate(args)
        elif args.command == "card":
            cmd_card(args)
        elif args.command == "robustness":
            if args.data is None and args.photos is None:
                print("error: nothing to measure: give the FER2013 folder (--data), labelled photos (--photos) or both",
                      file=sys.stderr)
                return 2
            if args.votes is not None and args.data is None:
                print("error: --votes needs the FER2013 folder (--data): it scores PublicTest", file=sys.stderr)
                return 2
            cmd_robustness(args.weights, args.data, args.votes, args.photos, args.corruption_faces, args.bootstrap,
                           command=args.command_line)
            write_model_card(Path(args.weights))
        elif args.command == "reference":
            print(f"wrote {write_reference(args.weights, args.data, progress=sys.stderr.isatty())}")
        elif args.command == "export-onnx":
            from train.onnx_export import cmd_export_onnx

            if args.int8 and args.data is None:
                print("error: --int8 needs --data (the FER2013 root): the int8 model is calibrated on its Training "
                      "faces and checked on its PublicTest", file=sys.stderr)
                return 2
            if args.calibration_faces < 1:
                print(f"error: --calibration-faces must be >= 1, got {args.calibration_faces}", file=sys.stderr)
                return 2
            check = cmd_export_onnx(args.weights, args.out, args.data, int8=args.int8,
                                    calibration_faces=args.calibration_faces)
            if check is not None and not check.passed:
                print("error: the ONNX model does not give the PyTorch model's answers", file=sys.stderr)
                return 1
        elif args.command == "status":
            from train.status import format_status, run_status

            st = run_status(args.out)
            print(json.dumps(st.to_dict(), indent=2) if args.json else format_status(st))
    except (DataError, ModelFileError, ResumeError, StatusError, ImageNetWeightsUnavailable, CheckpointWriteError,
            OnnxUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the run directory: not a directory, no permission, disk full
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot write{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
