"""Everything people upload to a public demo, as files: ``make_inputs(folder)``.

Each ``Input`` says what a correct answer is: either one clear error (a phrase of the message
``fer_demo.io`` gives) or a result with a number of faces. The same files go through the
Predictor (test_robustness.py), the CLI and the running app (test_robustness_app.py).
All made from the example photos (public domain), nothing downloaded.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fer_demo import limits

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ASTRONAUT = EXAMPLES / "astronaut.jpg"
ROTATED = EXAMPLES / "grace_hopper_exif_rotated.jpg"
CAT = EXAMPLES / "no_face_cat.jpg"
# The astronaut's face in astronaut.jpg (x1, y1, x2, y2), generously.
FACE = (150, 20, 270, 180)


@dataclass(frozen=True)
class Input:
    name: str
    path: Path
    error: str | None = None  # a phrase of the expected message; None: a result is expected
    faces: int | None = None  # exact number of faces analysed (None: any)
    truncated: bool = False  # more faces than limits.MAX_FACES: the result says it was cut

    def __str__(self) -> str:
        return self.name


def _astronaut() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


def _png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels, all black: ~50 MB of pixels in ~50 KB of file."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _video(path: Path) -> None:
    """A short real MP4 (OpenCV), or an MP4 header if this OpenCV build cannot write one."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    if writer.isOpened():
        for i in range(5):
            writer.write(np.full((48, 64, 3), i * 40, np.uint8))
        writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 1000)


def _crowd(rows: int = 7, cols: int = 8, tile: int = 128) -> Image.Image:
    """rows x cols copies of the astronaut's face, each mirrored or not: a 56-face crowd."""
    face = _astronaut().crop(FACE).resize((tile, round(tile * 1.33)))
    crowd = Image.new("RGB", (cols * tile, rows * face.height), (90, 90, 90))
    for r in range(rows):
        for c in range(cols):
            f = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if (r + c) % 2 else face
            crowd.paste(f, (c * tile, r * face.height))
    return crowd


def make_inputs(folder: Path) -> list[Input]:
    """Write every case into ``folder``; returns them in a fixed order."""
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = _astronaut()
    jpeg = ASTRONAUT.read_bytes()
    inputs: list[Input] = []

    def add(name: str, filename: str, data: bytes | Image.Image, **expect) -> None:
        path = folder / filename
        if isinstance(data, Image.Image):
            kwargs = {"quality": 92} if filename.endswith(".jpg") else {}
            data.save(path, **kwargs)
        else:
            path.write_bytes(data)
        inputs.append(Input(name, path, **expect))

    # Not images at all.
    add("text", "notes.jpg", b"Dear diary, today I uploaded a text file.\n" * 20, error="not an image")
    add("pdf", "document.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        error="not an image")
    _video(folder / "clip.mp4")
    inputs.append(Input("video", folder / "clip.mp4", error="not an image"))
    add("empty", "empty.jpg", b"", error="empty file")
    # Broken images.
    add("truncated jpeg", "truncated.jpg", jpeg[: len(jpeg) // 2], error="truncated")
    png = io.BytesIO()
    astronaut.save(png, "PNG")
    add("truncated png", "truncated.png", png.getvalue()[: len(png.getvalue()) // 2], error="truncated")
    add("decompression bomb", "bomb.png", _png_bomb(), error="image too large")
    # Sizes and shapes.
    add("24 megapixels", "big_24mp.jpg", astronaut.resize((6000, 4000)), faces=1)
    add("16x16", "tiny.png", astronaut.resize((16, 16)), error="image too small")
    add("extreme aspect wide", "strip_wide.png", astronaut.resize((4000, 24)), faces=0)
    add("extreme aspect tall", "strip_tall.png", astronaut.resize((24, 4000)), faces=0)
    panorama = Image.new("RGB", (astronaut.width * 4, astronaut.height), (200, 200, 200))
    panorama.paste(astronaut, (astronaut.width * 3 // 2, 0))
    add("panorama 4:1", "panorama.jpg", panorama, faces=1)
    # Colour modes and formats.
    rgba = astronaut.convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, np.uint8)
    alpha[:, : rgba.width // 4] = 0  # a transparent stripe away from the face
    rgba.putalpha(Image.fromarray(alpha))
    add("rgba transparent", "transparent.png", rgba, faces=1)
    add("cmyk jpeg", "cmyk.jpg", astronaut.convert("CMYK"), faces=1)
    gray16 = np.asarray(astronaut.convert("L"), np.uint16) * 257
    add("16-bit png", "gray16.png", Image.fromarray(gray16), faces=1)
    add("grayscale", "gray.jpg", astronaut.convert("L"), faces=1)
    gif = io.BytesIO()
    frames = [astronaut.convert("P"), Image.open(CAT).convert("RGB").resize(astronaut.size).convert("P")]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    add("palette gif (first frame)", "animated.gif", gif.getvalue(), faces=1)
    add("exif rotated", "exif_rotated.jpg", ROTATED.read_bytes(), faces=1)
    # Content.
    add("no face", "cat.jpg", CAT.read_bytes(), faces=0)
    add("crowd of 56", "crowd.jpg", _crowd(), faces=limits.MAX_FACES, truncated=True)
    x1, y1, x2, y2 = FACE
    cut = astronaut.crop((x1 + (x2 - x1) * 2 // 5, 0, astronaut.width, astronaut.height))  # left 40% cut off
    add("face cut by the border", "cut_face.jpg", cut, faces=None)
    return inputs
