"""This checkout against a baseline commit, side by side in one run: how much faster, and the same answers.

    python benchmarks/speed.py                      # against 601a8e0, 15 interleaved rounds
    python benchmarks/speed.py --baseline HEAD~3 --repeats 25
    python benchmarks/speed.py --agreement          # also: the same answers as the fp32 reference

The baseline is extracted with ``git archive`` into a temporary folder (weights and examples come
with it). Each side runs in its own subprocess (its own ``fer_demo``, same Python and torch); the
parent asks them for one timing at a time, alternating baseline and this checkout case by case,
so load from anything else on the machine hits both alike. After ``--warmup`` untimed rounds it
prints the median milliseconds of each side, their ratio, and issue 21's floor for that ratio.

Cases (one face; ``examples/grace_hopper.jpg`` cropped and resized to the photo size):
- ``Predictor.predict`` end to end (uint8 array in: detect, align, classify, overlays) with
  Grad-CAM and without a CAM, at 256x256 and 640x480;
- classification + heatmap per face at batch 1 (``Explainer.explain_with_probabilities``, the
  path ``predict`` takes), and classification alone (``EmotionClassifier.predict``);
- the detector alone at 640x480 (for reading the end-to-end numbers).

``--agreement`` compares this checkout's serving path with ``precision="reference"`` (the fp32
FERNet as trained) on all of PublicTest (top-1 agreement, largest probability difference) and on
300 faces' Grad-CAM heatmaps (Spearman rank correlation): issue 21 asks for >= 99.5%, <= 0.02 and
>= 0.98. ``--faces`` counts the faces each side's detector finds on the examples, on
``../shared/data/sfew-dev`` and on 300 PublicTest faces upscaled to 192x192 (no face may be lost).
Each side runs as its ``Predictor`` does by default, which is what its app's photo tab runs: this
checkout's detector and classifier network on ``fer_demo.limits.ANALYSIS_THREADS`` threads (set per
call, for the calling thread; None: torch's default), the baseline's on torch's default. The header
prints both. Timings are wall-clock; the load average is
printed with them. ``--threads N`` sets torch's thread count in both workers (the network's own
setting still applies on top); on a machine busy with other work ``--threads 1`` keeps two OpenMP
threads per worker from waiting on each other, but it is not how the app runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "601a8e0"
PHOTO = "examples/grace_hopper.jpg"
# case -> issue 21's floor on (baseline ms / this checkout's ms); None: shown, no floor.
CASES = {
    "predict gradcam 256x256": 2.0,
    "predict gradcam 640x480": 1.6,
    "predict no CAM 256x256": 1.5,
    "predict no CAM 640x480": 1.5,
    "classify + heatmap, 1 face": 2.5,
    "classify only, 1 face": None,
    "detect 640x480": None,
}
PUBLIC_TEST = ROOT.parent / "shared" / "data" / "fer2013" / "test"
SFEW_DEV = ROOT.parent / "shared" / "data" / "sfew-dev"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=DEFAULT_BASELINE, help=f"git revision to compare with [{DEFAULT_BASELINE}]")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (each case once per side per round) [15]")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first [3]")
    p.add_argument("--threads", type=int, default=None, help="torch threads in both workers [torch's default]")
    p.add_argument("--agreement", action="store_true", help="also check this checkout's answers against the "
                   "fp32 reference on PublicTest")
    p.add_argument("--data", type=Path, default=PUBLIC_TEST, help="FER2013 test folder for --agreement")
    p.add_argument("--faces", action="store_true", help="also count the faces both detectors find "
                   "(examples, sfew-dev, upscaled PublicTest)")
    p.add_argument("--sfew", type=Path, default=SFEW_DEV, help="SFEW dev folder for --faces")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    return p


# --- worker: runs inside one checkout -------------------------------------------------------------

def worker(root: Path, threads: int | None) -> int:
    """Answer timing requests on stdin/stdout: a case name in, milliseconds out (JSON lines)."""
    sys.path.insert(0, str(root))
    import torch
    from PIL import Image, ImageOps

    from fer_demo.align import align_face
    from fer_demo.pipeline import Predictor

    if threads:
        torch.set_num_threads(threads)
    predictor = Predictor(root / "weights" / "fer_vgg19.safetensors")
    portrait = Image.open(root / PHOTO).convert("RGB")
    photos = {size: np.asarray(ImageOps.fit(portrait, size, Image.BICUBIC)) for size in ((256, 256), (640, 480))}
    faces = predictor.detector.detect(photos[(640, 480)])
    gray = align_face(photos[(640, 480)], faces[0]).gray[None]
    temperature = predictor.classifier.temperature("none")
    found = {f"{w}x{h}": len(predictor.detector.detect(im)) for (w, h), im in photos.items()}
    run = {
        "predict gradcam 256x256": lambda: predictor.predict(photos[(256, 256)], cam="gradcam"),
        "predict gradcam 640x480": lambda: predictor.predict(photos[(640, 480)], cam="gradcam"),
        "predict no CAM 256x256": lambda: predictor.predict(photos[(256, 256)], cam=None),
        "predict no CAM 640x480": lambda: predictor.predict(photos[(640, 480)], cam=None),
        "classify + heatmap, 1 face": lambda: predictor.explainer.explain_with_probabilities(
            gray, None, "gradcam", temperature),
        "classify only, 1 face": lambda: predictor.classifier.predict(gray),
        "detect 640x480": lambda: predictor.detector.detect(photos[(640, 480)]),
    }
    fast = getattr(predictor.classifier, "fast", None)
    info = {"faces": found, "threads": torch.get_num_threads(),
            "precision": getattr(predictor.classifier, "precision", "reference"),
            # the analysis steps' own thread counts (fer_demo.limits.ANALYSIS_THREADS), where they have them
            "network_threads": getattr(fast, "threads", None),
            "detector_threads": getattr(predictor.detector, "threads", None)}
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        case = line.strip()
        if not case:
            continue
        if case.startswith("count "):
            print(json.dumps(count_faces(predictor.detector, json.loads(case[len("count "):]))), flush=True)
            continue
        t = time.perf_counter()
        run[case]()
        print(json.dumps((time.perf_counter() - t) * 1000), flush=True)
    return 0


def face_sets(sfew: Path, public_test: Path) -> dict[str, list[str]]:
    """Image sets for ``--faces``: name -> file paths ("<path>@192" = that face upscaled to 192x192)."""
    files = sorted(public_test.glob("*/*.jpg"))
    return {
        "examples": [str(p) for p in sorted((ROOT / "examples").glob("*.jpg"))],
        "sfew-dev": [str(p) for p in sorted(sfew.glob("*/*.jpg"))],
        "PublicTest x4 (192x192)": [f"{p}@192" for p in files[:: max(1, len(files) // 300)][:300]],
    }


def count_faces(detector, sets: dict[str, list[str]]) -> dict[str, list[int]]:
    from PIL import Image

    from fer_demo.io import load_image

    out = {}
    for name, paths in sets.items():
        counts = []
        for path in paths:
            if path.endswith("@192"):
                image = Image.open(path[:-4]).convert("RGB").resize((192, 192), Image.BICUBIC)
            else:
                image = load_image(path)
            counts.append(len(detector.detect(image)))
        out[name] = counts
    return out


class Worker:
    def __init__(self, root: Path, threads: int | None) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(root)]
        if threads:
            cmd += ["--threads", str(threads)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root, env=env)
        self.info = json.loads(self.proc.stdout.readline())

    def count(self, sets: dict[str, list[str]]) -> dict[str, list[int]]:
        self.proc.stdin.write("count " + json.dumps(sets) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def time(self, case: str) -> float:
        self.proc.stdin.write(case + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died while timing {case!r}")
        return float(json.loads(line))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def extract(revision: str, dest: Path) -> str:
    """``git archive`` of ``revision`` unpacked into ``dest``; returns the full commit hash."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, check=True,
                             capture_output=True).stdout
    tar = dest / "baseline.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(dest / "tree", filter="data")
    return commit


# --- agreement with the fp32 reference --------------------------------------------------------------

def agreement(data: Path) -> list[str]:
    sys.path.insert(0, str(ROOT))
    import torch
    from PIL import Image
    from scipy.stats import spearmanr

    from fer_demo.classify import EmotionClassifier
    from fer_demo.explain import Explainer

    files = sorted(data.glob("*/*.jpg"))
    if not files:
        return [f"no PublicTest faces under {data}: agreement not measured"]
    faces = np.stack([np.asarray(Image.open(f).convert("L")) for f in files])
    ref = EmotionClassifier(precision="reference")
    fast = EmotionClassifier()
    t = ref.temperature("none")
    ref_exp = Explainer(ref.model, ref.card.cam_target_layer)
    fast_exp = Explainer(fast.model, fast.card.cam_target_layer, fast=fast.fast)
    p_ref = np.concatenate([ref.predict(faces[i:i + 256]) for i in range(0, len(faces), 256)])
    p_fast = np.concatenate([fast.predict(faces[i:i + 256]) for i in range(0, len(faces), 256)])
    agree = float((p_ref.argmax(1) == p_fast.argmax(1)).mean())
    diff = np.abs(p_ref - p_fast).max(axis=1)
    picked = faces[:: len(faces) // 300][:300]
    rho = []
    for i in range(0, len(picked), 50):
        a, _ = ref_exp.explain_with_probabilities(picked[i:i + 50], None, "gradcam", t)
        b, _ = fast_exp.explain_with_probabilities(picked[i:i + 50], None, "gradcam", t)
        for x, y in zip(a[:, 4:44, 4:44], b[:, 4:44, 4:44]):
            fx, fy = np.ptp(x) == 0, np.ptp(y) == 0
            rho.append((1.0 if fx and fy else 0.0) if fx or fy else float(spearmanr(x.ravel(), y.ravel())[0]))
    rho = np.array(rho)
    del torch
    return [
        f"\nSame answers as the fp32 reference (precision={fast.precision!r} against 'reference'), "
        f"{len(faces)} PublicTest faces:",
        f"- top-1 agreement {agree:.2%} ({int((p_ref.argmax(1) != p_fast.argmax(1)).sum())} faces differ; floor 99.5%)",
        f"- largest probability difference {diff.max():.4f} (99th percentile {np.percentile(diff, 99):.4f}; floor 0.02)",
        f"- Grad-CAM heatmaps, {len(rho)} faces: Spearman rank correlation mean {rho.mean():.4f}, "
        f"5th percentile {np.percentile(rho, 5):.4f}, lowest {rho.min():.4f} (floor 0.98 on the mean)",
    ]


# --- parent -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.threads)
    if args.repeats < 1:
        print("--repeats must be at least 1", file=sys.stderr)
        return 2
    command = "python " + " ".join(shlex.quote(a) for a in [f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fer-speed-") as tmp:
        commit = extract(args.baseline, Path(tmp))
        sides = {"baseline": Worker(Path(tmp) / "tree", args.threads), "this": Worker(ROOT, args.threads)}
        try:
            counts = None
            if args.faces:
                sets = face_sets(args.sfew, args.data)
                counts = {side: w.count(sets) for side, w in sides.items()}
            times: dict[str, dict[str, list[float]]] = {s: {c: [] for c in CASES} for s in sides}
            for r in range(args.warmup + args.repeats):
                for case in CASES:
                    # alternate which side goes first, so neither always runs on a warmer cache
                    order = list(sides) if r % 2 == 0 else list(sides)[::-1]
                    for side in order:
                        ms = sides[side].time(case)
                        if r >= args.warmup:
                            times[side][case].append(ms)
        finally:
            for w in sides.values():
                w.close()
    load_after = os.getloadavg()

    print(f"\n{command}")
    print(f"baseline {commit[:10]} ({args.baseline}) against this checkout {head}{' + uncommitted changes' if dirty else ''}; "
          f"median ms of {args.repeats} interleaved rounds after {args.warmup} warm-up")
    net = {side: f"detector {w.info.get('detector_threads') or 'torch default'}, "
              f"network {w.info.get('network_threads') or 'torch default'}" for side, w in sides.items()}
    print(f"CPUs: {os.cpu_count()}, torch threads: baseline {sides['baseline'].info['threads']}, "
          f"this {sides['this'].info['threads']}; threads per step: baseline {net['baseline']}; "
          f"this {net['this']}; precision: this {sides['this'].info['precision']}; "
          f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print(f"faces found: baseline {sides['baseline'].info['faces']}, this {sides['this'].info['faces']}\n")
    print("| case | baseline ms | this ms | speed-up | floor | |")
    print("|---|---:|---:|---:|---:|---|")
    missed = 0
    for case, floor in CASES.items():
        b, t = float(np.median(times["baseline"][case])), float(np.median(times["this"][case]))
        ratio = b / t
        verdict = "" if floor is None else ("meets" if ratio >= floor else "MISSES")
        missed += verdict == "MISSES"
        print(f"| {case} | {b:.1f} | {t:.1f} | {ratio:.2f}x | {'-' if floor is None else f'{floor:.1f}x'} | {verdict} |")
    if counts is not None:
        print("\nFaces found (detector of each side, same images):\n")
        print("| images | n | baseline faces | this faces | images where the counts differ |")
        print("|---|---:|---:|---:|---:|")
        for name in counts["baseline"]:
            b, t = np.array(counts["baseline"][name]), np.array(counts["this"][name])
            print(f"| {name} | {len(b)} | {b.sum()} | {t.sum()} | {int((b != t).sum())} |")
    if args.agreement:
        print("\n".join(agreement(args.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
