"""Measure FER2013's face framing: where MTCNN's landmarks fall in the 48x48 crops.

    python benchmarks/fer_framing.py --data ../shared/data/fer2013 --per-class 60

The alignment template in ``fer_demo/align.py`` (EYE_CENTER_Y, EYE_DIST, EYE_MOUTH_DIST)
comes from this measurement on PublicTest with the defaults (60 images per class, seed 0:
385 of 416 faces found; medians: eye midpoint (0.504, 0.391), eye distance 0.374,
eye-to-mouth 0.411, mouth 0.791 of the side; the larger of the two size estimates varies
least, 18.3% std vs 19.1% / 19.2%, and its median is 1.035). Each 48x48 face is upscaled 4x and padded with gray, because MTCNN needs
some context around a face that fills the frame. Optionally writes a side-by-side picture
of aligned example faces over FER2013 faces (--compare PATH) to check the framing by eye.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo import align as A  # noqa: E402
from fer_demo.detect import FaceDetector  # noqa: E402
from fer_demo.io import load_image  # noqa: E402
from fer_demo.model import EMOTIONS, FACE_SIZE  # noqa: E402

UPSCALE, PAD = 4, 48


def measure(files: list[Path]) -> np.ndarray:
    """Rows (eye_x, eye_y, mouth_x, mouth_y, eye_dist, eye_mouth, roll_deg) in 48px units."""
    det = FaceDetector(max_side=10_000, min_face_frac=0.2, min_score=0.0)
    rows = []
    for f in files:
        g = Image.open(f).convert("L").resize((FACE_SIZE * UPSCALE,) * 2, Image.BICUBIC)
        faces = det.detect(ImageOps.expand(g, PAD, fill=128).convert("RGB"))
        if not faces:
            continue
        le, re, _, ml, mr = (faces[0].landmarks - PAD) / UPSCALE
        eye, mouth = (le + re) / 2, (ml + mr) / 2
        roll = np.degrees(np.arctan2(re[1] - le[1], re[0] - le[0]))
        rows.append([*eye, *mouth, np.linalg.norm(re - le), np.linalg.norm(mouth - eye), roll])
    return np.array(rows)


def compare(path: Path, fer_files: list[Path]) -> None:
    det = FaceDetector()
    crops = []
    for name in ("astronaut.jpg", "grace_hopper.jpg", "group_three_faces.jpg"):
        image = load_image(ROOT / "examples" / name)
        crops += [A.align_face(image, f).gray for f in det.detect(image)]
    fer = [np.asarray(Image.open(f).convert("L")) for f in fer_files[: len(crops)]]
    s = 144
    sheet = Image.new("L", (len(crops) * s, 2 * s))
    for row, faces in enumerate((crops, fer)):
        for i, face in enumerate(faces):
            sheet.paste(Image.fromarray(face).resize((s, s), Image.NEAREST), (i * s, row * s))
    draw = ImageDraw.Draw(sheet)
    for row in (0, 1):  # template eye line and FER2013's median mouth line
        for frac in (A.EYE_CENTER_Y, 0.79):
            draw.line([(0, row * s + frac * s), (sheet.width, row * s + frac * s)], fill=255)
    sheet.save(path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013")
    p.add_argument("--split", default="test")
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", type=Path, default=None, help="write a comparison PNG here")
    args = p.parse_args()
    rng = random.Random(args.seed)
    files: list[Path] = []
    for c in EMOTIONS:
        fs = sorted((args.data / args.split / c).glob("*.jpg"))
        if not fs:
            print(f"no images in {args.data / args.split / c}", file=sys.stderr)
            return 1
        rng.shuffle(fs)
        files += fs[: args.per_class]
    r = measure(files)
    print(f"faces found: {len(r)} of {len(files)}")
    side = FACE_SIZE
    for i, name in enumerate(["eye_mid_x", "eye_mid_y", "mouth_mid_x", "mouth_mid_y", "eye_dist", "eye_mouth"]):
        q = np.percentile(r[:, i], [25, 50, 75]) / side
        print(f"{name:12s} median {q[1]:.3f} of the side (IQR {q[0]:.3f}..{q[2]:.3f})")
    de, dm = r[:, 4], r[:, 5]
    a, b = np.median(de), np.median(dm)
    for name, v in [("eye_dist", de / a), ("eye_mouth", dm / b), ("max of both", np.maximum(de / a, dm / b))]:
        print(f"size estimate {name:12s}: std {np.std(v / np.median(v)):.3f}, median {np.median(v):.3f}")
    if args.compare:
        compare(args.compare, files[::-1])
        print(f"wrote {args.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
