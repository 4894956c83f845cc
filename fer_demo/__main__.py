"""Command line: analyse photos in batch; report drift of a deployed demo.

    python -m fer_demo predict examples/                      # human-readable lines
    python -m fer_demo predict a.jpg b.png --json > out.jsonl  # one JSON record per image
    python -m fer_demo predict photos/ --cam gradcam --out annotated/
    python -m fer_demo predict clip.mp4 --json --fps 5        # one JSON record per sampled frame
    python -m fer_demo predict clip.mp4 --out results/        # + annotated MP4, timeline plot, CSV
    python -m fer_demo monitor --log monitor.jsonl --out report.html   # needs requirements-monitor.txt

PATHs are image or video files (MP4, MOV, WebM) or folders (their images and videos, not
recursive). A file that is not a usable image or video gets an error record and the batch goes
on. Exit status: 0 if at least one input was analysed, 1 if every input failed (or none was
found), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from fer_demo.classify import DEFAULT_WEIGHTS, TTA_MODES
from fer_demo.explain import CAM_METHODS, DEFAULT_CAM
from fer_demo.io import InvalidImageError
from fer_demo.model import EMOTIONS
from fer_demo.video import InvalidVideoError, check_fps
from fer_demo.weights import ModelFileError

# File name endings taken from folders (explicitly named files are always tried).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
# Files with these endings are analysed as videos (fer_demo.video), frame by frame.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_demo", description="Facial-expression recognition.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="detect faces and classify their expressions",
                       description="Detect faces in photos, classify each face's expression and explain it.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image or video files, or folders of them")
    p.add_argument("--json", action="store_true",
                   help="print one JSON record per image, and per sampled frame of a video (JSON lines)")
    p.add_argument("--cam", default=None, choices=[*CAM_METHODS, "none"],
                   help=f"explanation method, or none (faster) [default: {DEFAULT_CAM} for photos, none for videos]")
    p.add_argument("--target", default=None, choices=EMOTIONS,
                   help="explain this emotion for every face instead of the predicted one (photos only)")
    p.add_argument("--tta", default="none", choices=list(TTA_MODES),
                   help="test-time augmentation for classification (photos only) [default: none]")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for annotated images and per-face crops/overlays (PNG); for a video: the "
                        "annotated video (MP4), the timeline plot (PNG) and the per-frame records (CSV)")
    p.add_argument("--fps", type=float, default=None,
                   help="video frames analysed per second of video "
                        "[default: limits.VIDEO_DEFAULT_FPS = 5; at most limits.VIDEO_MAX_FPS = 10]")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                   help=f"classifier .safetensors (with its .json card) [default: {DEFAULT_WEIGHTS}]")
    p.add_argument("--max-faces", type=int, default=None, help="analyse at most this many faces per image")
    p.add_argument("--no-abstain", action="store_true",
                   help="give every face an expression, even one the quality check cannot read reliably "
                        "(too small, blurred, dark, turned away); by default such a face is answered "
                        "\"can't read this face reliably (why)\" (JSON: label null, abstained true, guess)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    m = sub.add_parser("monitor", help="drift report of a monitoring log against the training reference",
                       description="Build an Evidently drift report (HTML) of the app's monitoring log "
                                   "(FER_MONITOR_LOG) against the reference shipped with the weights.")
    m.add_argument("--log", type=Path, required=True, help="the JSON-lines log the app wrote")
    m.add_argument("--out", type=Path, default=Path("report.html"), help="HTML report to write [default: report.html]")
    m.add_argument("--reference", type=Path, default=DEFAULT_WEIGHTS.parent / "reference.csv.gz",
                   help="reference statistics [default: reference.csv.gz beside the shipped weights]")
    m.add_argument("--last", type=int, default=None, help="only the last N records")
    return parser


def run_monitor(args: argparse.Namespace) -> int:
    from fer_demo.monitor_report import MonitorReportError, build_report

    try:
        table = build_report(args.log, args.reference, args.out, args.last)
    except MonitorReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table.to_string(index=False))
    print(f"wrote {args.out}: {int(table['drifted'].sum())} of {len(table)} features drifted")
    return 0


def expand_paths(paths: Sequence[str | Path]) -> list[tuple[Path, str | None]]:
    """Inputs in the order given, folders expanded to their images (sorted by name).

    Each item is (path, None) to analyse, or (path, error message) for a path that does not exist.
    """
    items: list[tuple[Path, str | None]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            items.extend((p, None) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")
                         and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        elif path.exists():
            items.append((path, None))
        else:
            items.append((path, f"{path}: no such file or folder"))
    return items


def _out_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in used:  # same file name in two folders
        n += 1
        stem = f"{path.stem}-{n}"
    used.add(stem)
    return stem


def _write_outputs(out: Path, stem: str, prediction, cam: str | None) -> None:
    from fer_demo.pipeline import annotate

    out.mkdir(parents=True, exist_ok=True)
    annotate(prediction, show_regions=cam is not None).save(out / f"{stem}.annotated.png")
    for i, face in enumerate(prediction.faces):
        Image.fromarray(face.aligned_rgb).save(out / f"{stem}.face{i}.png")
        if face.overlay is not None:
            Image.fromarray(face.overlay).save(out / f"{stem}.face{i}.{cam}.png")


def _describe(path: Path, prediction) -> str:
    if not prediction.faces:
        return f"{path}: no face found"
    parts = []
    for f in prediction.faces:
        why = f", CAM for {f.target}" if f.target is not None else ""
        parts.append(f"{f.verdict} at {','.join(map(str, f.box))}{why}")
    more = f" ({prediction.notice})" if prediction.truncated else ""
    n = len(prediction.faces)
    return f"{path}: {n} face{'s' if n != 1 else ''}: " + "; ".join(parts) + more


def is_video(path: Path) -> bool:
    """Whether the CLI treats ``path`` as a video (by its file name ending)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def _video_stem(out: Path, stem: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return out / stem


def analyze_video_path(predictor, path: Path, args: argparse.Namespace, emit, used: set[str]) -> None:
    """One video: a JSON record per sampled frame (``--json``) or a summary line; ``--out`` files.

    Raises:
        InvalidVideoError: the file is not a usable video.
    """
    from contextlib import ExitStack

    from fer_demo import limits
    from fer_demo.video import RecordsCSV, analyze_video, probe_video

    cam = None if args.cam in (None, "none") else args.cam
    fps = limits.VIDEO_DEFAULT_FPS if args.fps is None else args.fps
    base = None if args.out is None else _video_stem(args.out, _out_stem(path, used))
    annotated = None if base is None else base.with_name(base.name + ".annotated.mp4")
    duration = probe_video(path).duration  # no length limit here: that one is the web page's
    with ExitStack() as stack:
        # Records go out as frames are analysed (JSON lines, CSV): memory does not grow with the length.
        out_csv = None if base is None else stack.enter_context(
            RecordsCSV(base.with_name(base.name + ".csv"), predictor.classes))
        bar = stack.enter_context(tqdm(total=round(duration, 1) or None, desc=path.name, unit="s video",
                                       file=sys.stderr, leave=False, disable=args.no_progress or None,
                                       bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} s [{elapsed}<{remaining}]"))

        def frame_record(result) -> None:
            if args.json:
                emit({"path": str(path), "frame": result.index, "time": round(result.t, 3),
                      "detected": result.detected, "faces": [f.to_dict(result.classes) for f in result.faces]}, "")
            if out_csv is not None:
                out_csv.write(result)
            bar.update(max(0.0, (min(result.t, duration) if duration else result.t) - bar.n))

        try:
            analysis = analyze_video(predictor, path, fps=fps, cam=cam, annotated_path=annotated,
                                     on_frame=frame_record, keep_frames=False)
        except BaseException:  # no half-written CSV left behind (analyze_video removes its video)
            if out_csv is not None:
                out_csv.close()
                out_csv.path.unlink(missing_ok=True)
            raise
    if not args.json:
        emit({}, f"{path}: {analysis.summary()}")
    if base is not None:
        analysis.save_timeline(base.with_name(base.name + ".timeline.png"))


def predict_main(args: argparse.Namespace) -> int:
    from fer_demo import limits
    from fer_demo.pipeline import Predictor

    cam = None if args.cam == "none" else (args.cam or DEFAULT_CAM)
    if args.max_faces is not None and args.max_faces < 1:
        print("error: --max-faces must be at least 1", file=sys.stderr)
        return 2
    if args.fps is not None:
        try:
            check_fps(args.fps)  # the one rule for a sampling rate (fer_demo.video)
        except ValueError:
            print(f"error: --fps must be above 0 and at most {limits.VIDEO_MAX_FPS}", file=sys.stderr)
            return 2
    items = expand_paths(args.paths)
    try:
        predictor = Predictor(weights_path=args.weights, max_faces=args.max_faces or limits.MAX_FACES,
                              abstain=not args.no_abstain)
    except ModelFileError as e:
        print(f"error: cannot load the classifier: {e}", file=sys.stderr)
        return 2
    ok = failed = 0
    used: set[str] = set()

    def emit(record: dict, line: str) -> None:
        print(json.dumps(record) if args.json else line, flush=True)

    for path, message in tqdm(items, desc="images", unit="img", file=sys.stderr, disable=args.no_progress or None):
        if message is None and is_video(path):
            try:
                analyze_video_path(predictor, path, args, emit, used)
                ok += 1
                continue
            except InvalidVideoError as e:
                message = str(e)
            except Exception as e:  # noqa: BLE001 - one bad file must not end a batch of thousands
                message = f"could not be analysed ({type(e).__name__}: {e})"
        if message is None:
            try:
                prediction = predictor.analyze(path, cam=cam, target=args.target, tta=args.tta)
            except InvalidImageError as e:
                message = str(e)
            except Exception as e:  # noqa: BLE001 - one bad file must not end a batch of thousands
                message = f"could not be analysed ({type(e).__name__}: {e})"
        if message is not None:
            failed += 1
            emit({"path": str(path), "error": message}, f"{path}: error: {message}")
            continue
        ok += 1
        record = {"path": str(path), **prediction.to_dict()}
        emit(record, _describe(path, prediction))
        if args.out is not None:
            _write_outputs(args.out, _out_stem(path, used), prediction, cam)
    if ok == 0:
        print(f"error: no image could be analysed ({failed} failed)" if failed else "error: no image found",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.command == "monitor":
        return run_monitor(args)
    if args.command == "predict":
        return predict_main(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse's choices prevent this


if __name__ == "__main__":
    sys.exit(main())
