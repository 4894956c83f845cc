"""fer_demo.io.load_image: every accepted input becomes upright 8-bit RGB; bad input a clear error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from fer_demo import io as fio
from fer_demo import limits
from fer_demo.io import InvalidImageError, load_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient_rgb(w: int = 64, h: int = 48) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


# --- refused inputs ---------------------------------------------------------------------

def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(path)
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(b"")


def test_missing_file(tmp_path):
    with pytest.raises(InvalidImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt):
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    data = encode(noisy, fmt)
    with pytest.raises(InvalidImageError, match="truncated|corrupt"):
        load_image(data[: len(data) // 2])


def test_truncated_example_photo():
    data = (EXAMPLES / "astronaut.jpg").read_bytes()
    with pytest.raises(InvalidImageError, match="truncated"):
        load_image(data[: len(data) // 3])


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny valid 1x1 PNG whose header claims width x height (a decompression bomb's header)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    body = bytes(data[ihdr : ihdr + 4 + 13])
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize("side", [8000, 50000])  # 64 MP (PIL warns) and 2.5 GP (PIL raises)
def test_decompression_bomb_is_refused_from_the_header(side):
    bomb = _png_with_size(side, side)
    assert len(bomb) < 200
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(bomb)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) declares ``width`` x ``height``: what a 12000x12000
    photo's header says, without 144 megapixels to encode."""
    data = bytearray(encode(gradient_rgb(), "JPEG", quality=50))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("make", [_png_with_size, jpeg_declaring])
@pytest.mark.parametrize("side", [8000, 12000, 50000])  # PIL warns at 64 MP, raises at 144 MP and 2.5 GP
def test_one_clean_message_for_every_image_over_the_pixel_limit(make, side):
    """Issue 22: past twice the limit PIL raised its own words ("could be decompression bomb DOS
    attack") and the visitor got them; every too-large image gets the same message now."""
    with pytest.raises(InvalidImageError) as refused:
        load_image(make(side, side))
    assert str(refused.value) == fio.too_large_message(side, side)
    assert str(refused.value) == (f"image too large: {side}x{side} = {side * side / 1e6:.1f} megapixels; "
                                  f"at most {limits.MAX_PIXELS / 1e6:.0f} megapixels are accepted")


def test_pil_refuses_bombs_too():
    assert Image.MAX_IMAGE_PIXELS == limits.MAX_PIXELS


def test_too_many_bytes(monkeypatch, tmp_path):
    data = encode(gradient_rgb(), "PNG")
    monkeypatch.setattr(fio, "MAX_UPLOAD_BYTES", len(data) - 1)
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(data)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(path)


def test_too_small():
    with pytest.raises(InvalidImageError, match="too small.*16x16"):
        load_image(encode(Image.new("RGB", (16, 16)), "PNG"))
    with pytest.raises(InvalidImageError, match="too small"):
        load_image(np.zeros((100, 10, 3), dtype=np.uint8))
    assert load_image(Image.new("RGB", (limits.MIN_SIDE, limits.MIN_SIDE))).size == (limits.MIN_SIDE,) * 2


def test_bad_arrays_and_types():
    with pytest.raises(InvalidImageError, match="uint8"):
        load_image(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(InvalidImageError, match="shape"):
        load_image(np.zeros((32, 32, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="path, bytes"):
        load_image(12345)


# --- accepted inputs --------------------------------------------------------------------

def check_rgb(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == size
    arr = np.asarray(image)
    assert arr.dtype == np.uint8 and arr.shape == (size[1], size[0], 3)
    return arr


def test_every_source_type_gives_the_same_pixels(tmp_path):
    original = gradient_rgb()
    data = encode(original, "PNG")
    path = tmp_path / "g.png"
    path.write_bytes(data)
    expected = np.asarray(original)
    for src in (path, str(path), data, bytearray(data), original, expected):
        arr = check_rgb(load_image(src), original.size)
        np.testing.assert_array_equal(arr, expected)


def test_returns_a_copy_of_a_pil_input():
    original = gradient_rgb()
    out = load_image(original)
    assert out is not original
    out.putpixel((0, 0), (1, 2, 3))
    assert original.getpixel((0, 0)) != (1, 2, 3)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((32, 40, 4), dtype=np.uint8)
    rgba[:, :20] = (255, 0, 0, 255)  # opaque red left half, transparent right half
    for src in (encode(Image.fromarray(rgba, "RGBA"), "PNG"), rgba):
        arr = check_rgb(load_image(src), (40, 32))
        assert tuple(arr[5, 5]) == (255, 0, 0)
        assert tuple(arr[5, 35]) == (255, 255, 255)


def test_la_and_palette_transparency():
    la = Image.new("LA", (30, 30), (0, 0))  # black, fully transparent
    assert tuple(np.asarray(load_image(encode(la, "PNG")))[0, 0]) == (255, 255, 255)
    p = Image.new("P", (30, 30), 0)
    p.putpalette([10, 20, 30] + [0] * 765)
    p.info["transparency"] = 0
    assert tuple(np.asarray(load_image(encode(p, "PNG", transparency=0)))[0, 0]) == (255, 255, 255)


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (32, 32), (255, 0, 0, 0))  # pure cyan ink
    image = load_image(encode(cmyk, "JPEG", quality=95))
    r, g, b = np.asarray(image)[16, 16].astype(int)
    assert r < 40 and g > 215 and b > 215


def test_16_bit_png_is_scaled_not_clipped():
    arr16 = np.zeros((24, 32), dtype=np.uint16)
    arr16[:, :16] = 65535
    arr16[:, 16:] = 32896  # 128 * 257
    src = Image.fromarray(arr16)
    data = encode(src, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    arr = check_rgb(load_image(data), (32, 24))
    assert tuple(arr[0, 0]) == (255, 255, 255)
    assert tuple(arr[0, 20]) == (128, 128, 128)


def test_grayscale_becomes_gray_rgb():
    gray = Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (30, 1)), "L")
    arr = check_rgb(load_image(encode(gray, "PNG")), (50, 30))
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    np.testing.assert_array_equal(arr[..., 0], np.asarray(gray))
    check_rgb(load_image(np.asarray(gray)), (50, 30))  # 2-D arrays too


def test_palette_gif_first_frame():
    frames = [Image.new("RGB", (30, 30), c).convert("P") for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    arr = check_rgb(load_image(buf.getvalue()), (30, 30))
    r, g, b = arr[15, 15].astype(int)
    assert r > 200 and g < 50 and b < 50


def test_exif_orientation_is_applied():
    upright = Image.new("RGB", (60, 40), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 60, 10))  # red band along the top
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera writes
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    arr = check_rgb(load_image(data), (60, 40))
    assert arr[2, 30, 0] > 200 and arr[2, 30, 2] < 60  # red on top
    assert arr[35, 30, 2] > 200 and arr[35, 30, 0] < 60  # blue below


def test_exif_rotated_example_is_upright():
    rotated = load_image(EXAMPLES / "grace_hopper_exif_rotated.jpg")
    upright = load_image(EXAMPLES / "grace_hopper.jpg")
    assert Image.open(EXAMPLES / "grace_hopper_exif_rotated.jpg").size == upright.size[::-1]
    assert rotated.size == upright.size
    diff = np.abs(np.asarray(rotated, dtype=int) - np.asarray(upright, dtype=int)).mean()
    assert diff < 3  # same picture up to JPEG re-encoding
    mirrored = np.asarray(ImageOps.flip(upright), dtype=int)
    assert np.abs(np.asarray(rotated, dtype=int) - mirrored).mean() > 20  # and not some other orientation
