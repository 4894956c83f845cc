"""Latency per stage and end to end, on the example photos and on 640x480 / 1920x1080 photos.

    python benchmarks/latency.py                    # 20 repeats, Grad-CAM on
    python benchmarks/latency.py --repeats 3 --cam none

Prints a markdown table of median and p90 milliseconds per image. The product's floor: end
to end (decode + detect + align + classify + Grad-CAM + overlays), one face, 640x480 photo,
median < 250 ms on a 2-core CPU. Run it on an otherwise idle machine: anything else using
the CPU (a training run) inflates every number; the load average is printed with the table.
The last column is this process's CPU time per image (all its threads together): under
load it stays close to what the work costs, and with one thread (--threads 1) it estimates
the idle single-core wall time.

"classify" and "explain" are timed as separate calls (a forward pass each, the CAM also a
backward pass); end to end without test-time augmentation gets the probabilities from the
CAM's own forward pass, so it is cheaper than their sum.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.align import align_face  # noqa: E402
from fer_demo.classify import DEFAULT_WEIGHTS  # noqa: E402
from fer_demo.explain import CAM_METHODS  # noqa: E402
from fer_demo.io import load_image  # noqa: E402
from fer_demo.pipeline import Predictor  # noqa: E402

EXAMPLES = ROOT / "examples"
FLOOR_MS = 250.0  # end to end, one face, 640x480, Grad-CAM on, median


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20, help="timed runs per image and stage [20]")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first [2]")
    p.add_argument("--cam", default="gradcam", choices=[*CAM_METHODS, "none"], help="CAM method or none [gradcam]")
    p.add_argument("--tta", default="none", choices=["none", "flip", "tencrop"], help="test-time augmentation [none]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch's default]")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="classifier .safetensors")
    p.add_argument("--no-examples", action="store_true", help="only the synthetic 640x480 and 1920x1080 photos")
    return p


def photo_of_size(width: int, height: int) -> Image.Image:
    """The astronaut portrait (one smiling face) scaled to the canvas height, centred on a
    blurred, stretched copy of itself: a plausible photo of that size with one face of ~1/4
    of its height."""
    portrait = load_image(EXAMPLES / "astronaut.jpg")
    canvas = portrait.resize((width, height), Image.BILINEAR).filter(ImageFilter.GaussianBlur(8))
    side = min(width, height)
    canvas.paste(portrait.resize((side, side), Image.BICUBIC), ((width - side) // 2, (height - side) // 2))
    return canvas


def jpeg_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def timed(fn: Callable[[], object], repeats: int, warmup: int, cpu: list | None = None) -> np.ndarray:
    """Wall-clock ms per call; with ``cpu``, this process's CPU ms per call are appended to it."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - t) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - c) * 1000)
    return np.array(out)


def fmt(ms: np.ndarray | None) -> str:
    if ms is None:
        return "-"
    return f"{np.median(ms):.0f} / {np.percentile(ms, 90):.0f}"


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.repeats < 1:
        print("--repeats must be at least 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    cam = None if args.cam == "none" else args.cam
    predictor = Predictor(args.weights)
    inputs: list[tuple[str, bytes]] = []
    if not args.no_examples:
        for path in sorted(EXAMPLES.glob("*.jpg")):
            inputs.append((path.name, path.read_bytes()))
    inputs += [("synthetic 640x480", jpeg_bytes(photo_of_size(640, 480))),
               ("synthetic 1920x1080", jpeg_bytes(photo_of_size(1920, 1080)))]

    rows = []
    floor_ms = None
    for name, data in inputs:
        image = load_image(data)
        faces = predictor.detector.detect(image)
        rgb = np.asarray(image)
        aligned = [align_face(rgb, f) for f in faces]
        gray = np.stack([a.gray for a in aligned]) if aligned else np.zeros((0, 48, 48), np.uint8)
        r, w = args.repeats, args.warmup
        t_detect = timed(lambda: predictor.detector.detect(image), r, w)
        t_align = timed(lambda: [align_face(rgb, f) for f in faces], r, w) if faces else None
        t_classify = timed(lambda: predictor.classifier.predict(gray, tta=args.tta), r, w) if faces else None
        targets = [int(i) for i in predictor.classifier.predict(gray).argmax(axis=1)] if faces else []
        t_explain = timed(lambda: predictor.explainer.explain(gray, targets, cam), r, w) if faces and cam else None
        cpu: list[float] = []
        t_total = timed(lambda: predictor.analyze(data, cam=cam, tta=args.tta), r, w, cpu)
        rows.append((name, f"{image.size[0]}x{image.size[1]}", len(faces), t_detect, t_align, t_classify,
                     t_explain, t_total, np.array(cpu)))
        if name == "synthetic 640x480":
            floor_ms = float(np.median(t_total))

    print(f"\nLatency, ms per image, median / p90 over {args.repeats} runs; CAM: {args.cam}, TTA: {args.tta}; "
          f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}, "
          f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print("| image | size | faces | detect | align | classify | explain | end to end | end to end, CPU time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, n, *times in rows:
        print(f"| {name} | {size} | {n} | " + " | ".join(fmt(t) for t in times) + " |")
    if floor_ms is not None:
        verdict = "meets" if floor_ms < FLOOR_MS else "MISSES"
        print(f"\nEnd to end, 640x480, one face, CAM {args.cam}: median {floor_ms:.0f} ms: {verdict} "
              f"the {FLOOR_MS:.0f} ms floor (meaningful only for --cam gradcam on an idle 2-core CPU).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
