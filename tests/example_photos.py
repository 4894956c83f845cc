"""The example photos in examples/ and how many faces each one shows (see examples/README.md)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FACE_COUNTS = {
    "astronaut.jpg": 1,
    "grace_hopper.jpg": 1,
    "grace_hopper_exif_rotated.jpg": 1,
    "group_three_faces.jpg": 3,
    "no_face_cat.jpg": 0,
}
